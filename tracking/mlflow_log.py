"""Log comparisons to MLflow; metric batches, artifacts and statuses go through a writer thread.

Each run gets its config as params (once), evaluation metrics with their step in batches
(``log_batch``), its per-step curve as one CSV artifact, the comparison figure as HTML, and
a final status: FINISHED, FAILED (diverged or crashed) or KILLED (cancelled).
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from dlopt_core.experiments.compare import Comparison, RunResult
from dlopt_core.plots import curves_data, curves_figure
from dlopt_core.engine.loop import Record
from tracking.store import EXPERIMENT, StoreSettings, client, experiment_id, settings

_STATUS = {"finished": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "cancelled": "KILLED"}
_EVAL_METRICS = ("train_loss", "val_loss", "val_metric", "lr", "epoch")
# MLflow accepts at most 1000 metrics per log_batch call.
_BATCH_LIMIT = 1000


class MlflowObserver:
    """A :class:`dlopt_core.experiments.compare.RunObserver` that writes every run to MLflow."""

    def __init__(
        self,
        *,
        experiment: str = EXPERIMENT,
        store: StoreSettings | None = None,
        flush_seconds: float = 2.0,
        figure_html: bool = True,
    ) -> None:
        self.store = store or settings()
        self.experiment = experiment
        self.flush_seconds = flush_seconds
        self.figure_html = figure_html
        self.run_ids: dict[int, str] = {}
        self.errors: list[str] = []
        self._pending: dict[int, list[Metric]] = {}
        self._steps: dict[int, list[tuple[int, float, float, float]]] = {}
        self._last_flush = time.monotonic()
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._drain, name="dlopt-mlflow", daemon=True)
        self._writer.start()
        self._experiment_id: str | None = None

    def describe(self) -> str:
        return f"logged to MLflow experiment {self.experiment!r} at {self.store.mlflow_uri}"

    # -- RunObserver hooks (called from the training thread: only queue work here) --

    def run_started(self, run: RunResult) -> None:
        self._pending[run.index] = []
        self._steps[run.index] = []
        # Created here, before any step (about 10 ms a run on SQLite): a writer thread busy
        # with SQLAlchemy during training would hold the GIL and slow every step.
        self._guarded(lambda: self._create(run))

    def record(self, run: RunResult, rec: Record) -> None:
        if rec.batch_loss is not None:
            self._steps[run.index].append((rec.step, rec.batch_loss, rec.lr, rec.wall_time))
        if rec.is_eval:
            ms = int(time.time() * 1000)
            self._pending[run.index].extend(
                Metric(key, float(getattr(rec, key)), ms, rec.step)
                for key in _EVAL_METRICS
                if getattr(rec, key) is not None
            )
            self._pending[run.index].append(Metric("wall_time", rec.wall_time, ms, rec.step))
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self._flush_all()

    def run_ended(self, run: RunResult) -> None:
        metrics = self._pending.pop(run.index, [])
        steps = self._steps.pop(run.index, [])
        self._submit(lambda: self._finish(run, metrics, steps))

    def comparison_ended(self, comparison: Comparison) -> None:
        if self.figure_html:
            self._submit(lambda: self._log_figure(comparison))
        self.close()

    def close(self) -> None:
        """Wait until everything queued is written."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()

    # -- writer thread --

    def _submit(self, work: Callable[[], None]) -> None:
        if not self.errors:
            self._queue.put(work)

    def _drain(self) -> None:
        while (work := self._queue.get()) is not None:
            self._guarded(work)

    def _guarded(self, work: Callable[[], None]) -> None:
        # A store error must not stop training; after the first one, logging stops (an
        # unreachable server would otherwise cost a timeout on every call).
        if self.errors:
            return
        try:
            work()
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _client(self) -> Any:
        return client(self.store)

    def _flush_all(self) -> None:
        self._last_flush = time.monotonic()
        for index, metrics in self._pending.items():
            if metrics:
                self._pending[index] = []
                self._submit(lambda index=index, metrics=metrics: self._log(index, metrics))

    def _log(self, index: int, metrics: list[Metric]) -> None:
        for start in range(0, len(metrics), _BATCH_LIMIT):
            self._client().log_batch(self.run_ids[index], metrics=metrics[start : start + _BATCH_LIMIT])

    def _create(self, run: RunResult) -> None:
        if self._experiment_id is None:
            self._experiment_id = experiment_id(self.experiment, self.store)
        cfg = run.config
        tags = {
            "comparison_id": run.comparison_id,
            "optimizer": cfg.optimizer.name,
            "dataset": cfg.data.name,
            "model": cfg.model.name,
            "seed": str(cfg.seed),
            "status": "running",
        }
        created = self._client().create_run(
            self._experiment_id, tags=tags, run_name=f"{cfg.optimizer.label} seed={cfg.seed}"
        )
        self.run_ids[run.index] = created.info.run_id
        params = [Param(k, str(v)) for k, v in cfg.to_dict().items()]
        self._client().log_batch(created.info.run_id, params=params)

    def _log_figure(self, comparison: Comparison) -> None:
        fig = curves_figure(curves_data(comparison), title=f"comparison {comparison.id}")
        html = fig.to_html(include_plotlyjs="cdn", full_html=True)
        for run in comparison.runs:
            if run.index in self.run_ids:
                self._client().log_text(self.run_ids[run.index], html, "comparison.html")

    def _finish(self, run: RunResult, metrics: list[Metric], steps: list[tuple[int, float, float, float]]) -> None:
        run_id = self.run_ids[run.index]
        if metrics:
            self._log(run.index, metrics)
        if steps:
            csv = io.StringIO()
            csv.write("step,batch_loss,lr,wall_time\n")
            csv.writelines(f"{s},{loss!r},{lr!r},{t!r}\n" for s, loss, lr, t in steps)
            self._client().log_text(run_id, csv.getvalue(), "curve.csv")
        tags = [RunTag("status", run.status_text)]
        if run.diverged_step is not None:
            tags.append(RunTag("diverged_step", str(run.diverged_step)))
        if run.error:
            tags.append(RunTag("error", run.error[:5000]))
        self._client().log_batch(run_id, tags=tags)
        self._client().set_terminated(run_id, _STATUS.get(run.status, "FAILED"))
