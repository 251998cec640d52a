"""A finished run's weights, read back from MLflow for compression (issue 9).

Every training run stores its final ``state_dict`` as ``state_dict.pt``
(:class:`tracking.mlflow_log.MlflowObserver`). Reading it runs only
``torch.load(..., weights_only=True)`` (:func:`dlopt_core.compression.weights.read_state_dict`):
a crafted artifact is refused and nothing in it executed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from dlopt_core.compression.weights import STATE_DICT_FILE, WeightsError, read_state_dict
from dlopt_core.config import ConfigError, RunConfig
from tracking.store import StoreSettings, client, settings

# A download progress bar on stderr for one small file is noise in the CLI and the server log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__all__ = ["RunWeights", "WeightsError", "load_run_weights"]


@dataclass(frozen=True)
class RunWeights:
    """A run's final weights and the config that trained them (its MLflow params)."""

    run_id: str
    config: RunConfig
    state: dict[str, torch.Tensor]


def load_run_weights(run_id: str, *, store: StoreSettings | None = None) -> RunWeights:
    """The weights and config of run ``run_id``; :class:`WeightsError` says what is wrong.

    Wrong: no such run, params that are not one training run's config, no stored weights (a
    run that was cancelled, diverged, or ran before weights were logged), or an artifact that
    is not a ``state_dict`` loadable with ``weights_only=True``.
    """
    store = store or settings()
    c = client(store)
    try:
        run = c.get_run(run_id)
    except Exception as err:
        raise WeightsError(f"run {run_id!r}: not found in {store.mlflow_uri} ({type(err).__name__})") from None
    try:
        config = RunConfig.from_dict(dict(run.data.params))
    except (ConfigError, ValueError) as err:
        raise WeightsError(f"run {run_id!r}: its params are not a training run's config ({err})") from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = c.download_artifacts(run_id, STATE_DICT_FILE, tmp)
        except Exception:
            status = run.data.tags.get("status", run.info.status.lower())
            raise WeightsError(
                f"run {run_id!r} ({status}): no stored weights ({STATE_DICT_FILE}); only finished runs "
                "trained since weights are logged have them"
            ) from None
        raw = Path(local).read_bytes()
    return RunWeights(run_id, config, read_state_dict(raw, source=f"run {run_id!r}: {STATE_DICT_FILE}"))
