"""Device choice: auto picks the best available; an unavailable choice is a clear error."""

import pytest
import torch

from dlopt_core.config import RunConfig
from dlopt_core.device import describe_device, resolve_device
from dlopt_core.engine.loop import run


def test_auto_picks_cuda_then_mps_then_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device = resolve_device("auto")
    assert device.type == expected
    assert describe_device(device).split(":")[0].split(" ")[0] in {"CUDA", "MPS", "CPU"}


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_asking_for_an_accelerator_trains_there_or_says_it_is_missing(kind: str) -> None:
    available = torch.cuda.is_available() if kind == "cuda" else torch.backends.mps.is_available()
    cfg = RunConfig.make(device=kind, epochs=1, optimizer={"name": "adam"})
    if available:
        last = list(run(cfg))[-1]
        assert last.status == "finished" and last.val_loss is not None
    else:
        with pytest.raises(ValueError, match=f"device: '{kind}' was asked for but"):
            resolve_device(kind)
