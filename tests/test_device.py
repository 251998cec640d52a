"""Device choice: auto picks the best available; an unavailable choice is a clear error."""

import os

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


def test_cuda_runs_are_deterministic_by_default_and_can_trade_it_for_speed() -> None:
    from dlopt_core.device import use_determinism

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert RunConfig.make(optimizer={"name": "adam"}).deterministic is True
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    try:
        use_determinism(torch.device("cpu"), False)
        assert torch.backends.cudnn.deterministic == saved[0] and torch.backends.cudnn.benchmark == saved[1]
        use_determinism(torch.device("cuda"), True)
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        use_determinism(torch.device("cuda"), False)
        assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
        torch.use_deterministic_algorithms(saved[2])
