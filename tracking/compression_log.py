"""Log a compression to MLflow: every variant is a run, every training run logged as a comparison's.

Each measured variant (the baseline first) becomes a run named by its label, with the method
and its settings as params beside the baseline's setup, the measurements as metrics, and the
baseline's run id as a tag (``baseline_run_id``): the run that trained it here, or the finished
run whose weights were loaded. Training the compression does (the baseline, fine-tuning,
students) is logged by :class:`~tracking.mlflow_log.MlflowObserver`, curves and weights included.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlopt_core.config import param_text
from dlopt_core.experiments.compress.config import CompressionConfig
from dlopt_core.experiments.compress.rows import CompressionRow
from dlopt_core.experiments.observer import Observer
from tracking.mlflow_log import MlflowObserver, val_metric_key
from tracking.reconcile import run_identity_tags
from tracking.spool import apply
from tracking.store import StoreSettings, client, settings

if TYPE_CHECKING:
    from dlopt_core.engine.records import Record
    from dlopt_core.experiments.compare import RunResult
    from dlopt_core.experiments.compress.run import Compression

EXPERIMENT = CompressionConfig.EXPERIMENT
_METRICS = (
    "val_loss", "val_metric", "params", "nonzeros", "bytes", "payload_bytes", "sparse_bytes", "sparsity",
    "latency_b1_ms", "latency_b256_ms", "compiled_b1_ms", "compiled_b256_ms", "cuda_b1_ms", "cuda_b256_ms", "seconds",
)


class CompressionLogger(Observer):
    """A compression observer that writes every variant (and every training run) to MLflow.

    ``run_ids`` maps each row's label to its run (the training runs' are ``training.run_ids``); ``errors`` lists what the store refused
    (after the first error the rows are no longer sent: an unreachable store costs one timeout).
    """

    def __init__(self, *, experiment: str = EXPERIMENT, store: StoreSettings | None = None) -> None:
        self.store = store or settings()
        self.experiment = experiment
        self.training = MlflowObserver(experiment=experiment, store=self.store, figure_html=False)
        self.run_ids: dict[str, str] = {}
        self.errors: list[str] = []
        self._experiments: dict[str, str] = {}
        self._failed = False

    # -- training runs: logged as a comparison's runs --

    def run_started(self, run: RunResult) -> None:
        self.training.run_started(run)

    def record(self, run: RunResult, rec: Record) -> None:
        self.training.record(run, rec)

    def run_ended(self, run: RunResult) -> None:
        self.training.run_ended(run)

    # -- variants --

    def row_done(self, compression: Compression, row: CompressionRow) -> None:
        if self._failed:
            return
        config = compression.config
        # The baseline's run: trained here (the first training run), or the one whose weights were loaded.
        baseline_id = config.baseline_run or self.training.run_ids.get(0, "")
        tags = {
            "compression_id": compression.id, "method": row.method, "badge": row.badge,
            "masked_only": str(row.masked_only).lower(), "baseline_run_id": baseline_id,
            "status": "failed" if row.error else "finished", "dataset": config.data.name, "model": config.model.name,
            **run_identity_tags(),
        }
        if row.error:
            tags["error"] = row.error[:5000]
        for key in ("note", "latency_note", "compiled_note", "cuda_note"):
            if text := getattr(row, key):
                tags[key] = text[:5000]
        params = {k: param_text(v) for k, v in config.baseline_config().to_dict().items()}
        params |= {"method": row.method, **{f"method.{k}": param_text(v) for k, v in row.settings.items()}}
        now = int(time.time() * 1000)
        names = {"val_metric": val_metric_key(config.data.name)}  # logged by what it is
        metrics = [[names.get(k, k), float(v), now, 0] for k in _METRICS if (v := getattr(row, k)) is not None]
        ops: list[dict[str, Any]] = [
            {"op": "create", "experiment": self.experiment, "run_name": f"compress {row.label}", "tags": tags,
             "start_time": now},
            {"op": "params", "params": params},
            {"op": "metrics", "metrics": metrics},
            {"op": "end", "status": "FAILED" if row.error else "FINISHED", "end_time": now},
        ]
        run_id = None
        try:
            c = client(self.store)
            for op in ops:
                run_id = apply(c, op, run_id, store=self.store, experiments=self._experiments)
        except Exception as exc:  # the compression goes on; the page and the CLI show the error
            self._failed = True
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        if run_id is not None:
            self.run_ids[row.label] = run_id

    def compression_ended(self, compression: Compression) -> None:
        self.training.close()
        self.errors += [e for e in self.training.errors if e not in self.errors]

    def describe(self) -> str:
        where = f"MLflow experiment {self.experiment!r} at {self.store.mlflow_uri}"
        return f"not fully logged to {where}: {'; '.join(self.errors)}" if self.errors else f"logged to {where}"
