"""A finished run's weights, read back from MLflow for compression (issue 9).

Every training run stores its final ``state_dict`` as ``state_dict.pt``
(:class:`tracking.mlflow_log.MlflowObserver`). Reading it runs only
``torch.load(..., weights_only=True)`` (:func:`dlopt_core.compression.weights.read_state_dict`):
a crafted artifact is refused and nothing in it executed.
"""

from __future__ import annotations

import os
import time
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlopt_core.compression.weights import STATE_DICT_FILE, WeightsError, read_state_dict
from dlopt_core.config import RunConfig
from dlopt_core.errors import ConfigError
from tracking.store import StoreSettings, client, settings

# A download progress bar on stderr for one small file is noise in the CLI and the server log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__all__ = ["RunWeights", "WeightedRun", "WeightsError", "load_run_weights", "runs_with_weights"]


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


@dataclass(frozen=True)
class WeightedRun:
    """A finished run that stored its weights, as a picker lists it."""

    run_id: str
    name: str
    experiment: str
    dataset: str
    model: str
    metric: float | None  # the last validation metric (accuracy or R²)
    started_ms: int

    @property
    def text(self) -> str:
        metric = "" if self.metric is None else f", val {self.metric:.4g}"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started_ms / 1000))
        return f"{self.name}: {self.model} on {self.dataset}{metric} ({self.experiment}, {when})"


def _model_text(run: Any) -> str:
    # The model with its sizes (mlp:hidden=16), which the tag (mlp) leaves out.
    try:
        return RunConfig.from_dict(dict(run.data.params)).model.to_spec()
    except (ConfigError, ValueError):
        return run.data.tags.get("model", "?")


def runs_with_weights(*, limit: int = 100, store: StoreSettings | None = None) -> list[WeightedRun]:
    """The newest finished runs with stored weights, in every experiment (one server-side search)."""
    c = client(store or settings())
    experiments = {e.experiment_id: e.name for e in c.search_experiments()}
    if not experiments:
        return []
    runs = c.search_runs(
        list(experiments), filter_string=f"tags.weights = '{STATE_DICT_FILE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=limit,
    )
    return [
        WeightedRun(
            run.info.run_id, run.info.run_name or run.info.run_id[:8], experiments.get(run.info.experiment_id, "?"),
            run.data.tags.get("dataset", "?"), _model_text(run),
            run.data.metrics.get("val_metric", run.data.metrics.get("val_accuracy", run.data.metrics.get("val_r2"))),
            run.info.start_time or 0,
        )
        for run in runs
    ]
