"""Log comparisons to MLflow; metric batches, artifacts and statuses go through a writer thread.

A comparison (and a sweep, a Data-page experiment) is one **parent run** with a **child run**
per optimizer x seed (``mlflow.parentRunId``):

- the parent: the comparison's config as params, once (``ComparisonConfig.to_dict()``, the flat
  form the URL and the CLI use, so the runs browser filters on it and reopens it), the figure
  (``comparison.html``, one self-contained HTML file), ``elapsed_s``, tags ``comparison_id``,
  ``dlopt.role = parent`` and ``status``; FINISHED, or KILLED when the comparison was stopped.
- each child: its run config as params (``RunConfig.to_dict()``: only what applies to that run,
  and all that :meth:`RunConfig.from_dict` needs to rebuild it), evaluation metrics with their
  step in batches (``log_batch``): ``train_loss``, ``running_loss``, ``val_loss``, ``lr``,
  ``epoch``, ``wall_time`` and the validation metric named for what it is (``val_accuracy``
  or ``val_r2``, :func:`val_metric_key`), its per-step curve as one CSV artifact, its final
  weights as a ``state_dict`` (``state_dict.pt``, read back by :mod:`tracking.weights`), and a
  final status: FINISHED, FAILED (diverged, crashed) or KILLED (pruned, cancelled).

The parent is opened by the ``comparison_started`` hook; an observer driven without it (the
compression's training runs) logs its runs without one, unless given a ``parent`` name.

Every write is an operation of :mod:`tracking.spool`. After the first store error the
observer stops talking to the store for the rest of the comparison (an unreachable server
would otherwise cost a timeout on every call) and appends each write to the run's spool
file instead; at the end of the comparison it tries once to replay them. What is still not
written is in :attr:`MlflowObserver.unwritten`, and is written by
:func:`tracking.spool.replay_spool` on a later start.
"""

from __future__ import annotations

import base64
import io
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlopt_core.catalog.datasets import get_dataset_spec
from dlopt_core.uploads.store import user_dataset_tags
from dlopt_core.compression.weights import STATE_DICT_FILE, state_dict_bytes
from dlopt_core.config import param_text
from dlopt_core.experiments.observer import Observer
from dlopt_core.plots import curves_data, curves_figure
from tracking.reconcile import run_identity_tags
from tracking.spool import (
    PARENT_ROLE,
    PARENT_TAG,
    ROLE_TAG,
    Op,
    RunSpool,
    apply,
    replay_files,
)
from tracking.store import EXPERIMENT, StoreSettings, client, settings

if TYPE_CHECKING:
    from dlopt_core.engine.loop import Record
    from dlopt_core.experiments.compare import Comparison, RunResult

# Every status a run can end with (pending/running would mean it never ended: FAILED).
_STATUS = {
    "finished": "FINISHED",
    "diverged": "FAILED",
    "failed": "FAILED",
    "pruned": "KILLED",
    "cancelled": "KILLED",
}
_PARENT = -1  # the parent run's index among a comparison's runs
_EVAL_METRICS = ("train_loss", "running_loss", "val_loss", "lr", "epoch")
_MAX_NAMED = 3  # a parent's name lists up to this many optimizers, else counts them


def val_metric_key(dataset: str) -> str:
    """The MLflow name of a run's validation metric: ``val_accuracy`` or ``val_r2`` by the data's task.

    (The first version logged ``val_metric`` for both; :mod:`tracking.runs` reads all three.)
    """
    return "val_r2" if get_dataset_spec(dataset).task == "regression" else "val_accuracy"


def parent_name(comparison: Comparison) -> str:
    """The parent run's name: the plan's own (a sweep's, a Data-page experiment's), else what
    a comparison compares (``SGD lr=0.1 vs Adam lr=0.001 on moons (mlp), 3 seeds``)."""
    config = comparison.config
    if (named := getattr(config, "parent_name", None)) is not None:
        return named()
    labels = list(dict.fromkeys(r.label for r in comparison.runs))
    what = " vs ".join(labels) if len(labels) <= _MAX_NAMED else f"{len(labels)} optimizers"
    seeds = len(comparison.runs) // max(1, len(labels))
    return f"{what} on {config.data.name} ({config.model.name})" + (f", {seeds} seeds" if seeds > 1 else "")


def weights_op(state: dict[str, Any]) -> Op:
    """The write that stores a run's final ``state_dict`` as :data:`STATE_DICT_FILE`."""
    tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
    return {"op": "file", "path": STATE_DICT_FILE, "base64": base64.b64encode(state_dict_bytes(tensors)).decode()}


def _now_ms() -> int:
    return int(time.time() * 1000)


class MlflowObserver(Observer):
    """A comparison observer that writes every run to MLflow, or to the local spool meanwhile.

    One observer may watch several comparisons one after another; its state (``run_ids``,
    ``errors``, ``unwritten``) describes the latest one.
    """

    def __init__(
        self,
        *,
        experiment: str = EXPERIMENT,
        store: StoreSettings | None = None,
        flush_seconds: float = 2.0,
        figure_html: bool = True,
        parent: str | None = None,
    ) -> None:
        self.store = store or settings()
        # The parent run's name; None: named from the comparison (see parent_name). An observer
        # that is never told comparison_started (compression) makes a parent only when named.
        self.parent = parent
        self.experiment = experiment
        self.flush_seconds = flush_seconds
        self.figure_html = figure_html
        self.run_ids: dict[int, str] = {}
        self.errors: list[str] = []
        self._comparison_id: str | None = None
        self._offline = False
        self._spools: dict[int, RunSpool] = {}
        self._unwritten: int | None = None  # set once the comparison's spool was replayed
        self._lost = 0  # writes the store refused or the spool could not keep
        self._experiments: dict[str, str] = {}
        self._pending: dict[int, list[list[Any]]] = {}
        self._steps: dict[int, list[tuple[int, float, float, float]]] = {}
        self._states: dict[int, dict[str, Any]] = {}  # a finished run's final weights, until it ends
        self._metric_keys: dict[int, str] = {}  # each run's validation metric name
        self._last_flush = time.monotonic()
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._writer: threading.Thread | None = None

    @property
    def unwritten(self) -> int:
        """Writes of the latest comparison not in MLflow: waiting in the spool, or lost.

        Lost: the store refused them (a 4xx, reported in ``errors``) or the disk could not
        keep them. Zero means MLflow holds everything.
        """
        if self._unwritten is not None:
            return self._unwritten + self._lost
        return sum(s.count for s in list(self._spools.values())) + self._lost

    def describe(self) -> str:
        where = f"MLflow experiment {self.experiment!r} at {self.store.mlflow_uri}"
        if self.unwritten:
            kept = self.unwritten - self._lost
            missing = [f"{kept} writes kept in {self.store.spool_dir} until the store answers"] if kept else []
            missing += [f"{self._lost} writes lost (see the errors)"] if self._lost else []
            return f"not fully logged to {where}: {'; '.join(missing)}"
        if self.errors:
            return f"logged to {where} (late: the writes kept while it failed were replayed)"
        return f"logged to {where}"

    # -- Observer hooks for runs (called from the training thread: only queue work here) --

    def comparison_started(self, comparison: Comparison) -> None:
        self._start_comparison(comparison.id)
        to_dict = getattr(comparison.config, "to_dict", None)
        # The config once, in the flat form the URL and the CLI use.
        params = {k: param_text(v) for k, v in to_dict().items()} if to_dict is not None else {}
        self._open_parent(comparison.id, self.parent or parent_name(comparison), params)

    def run_started(self, run: RunResult) -> None:
        if run.comparison_id != self._comparison_id:  # not told comparison_started
            self._start_comparison(run.comparison_id)
            if self.parent is not None:
                self._open_parent(run.comparison_id, self.parent, {})
        self._pending[run.index] = []
        self._steps[run.index] = []
        cfg = run.config
        self._metric_keys[run.index] = val_metric_key(cfg.data.name)
        tags = {
            "comparison_id": run.comparison_id,
            "optimizer": cfg.optimizer.name,
            "dataset": cfg.data.name,
            "model": cfg.model.name,
            "seed": str(cfg.seed),
            "status": "running",
            # Which kernels the run used on a GPU (a CPU run is deterministic either way).
            "determinism": "deterministic" if cfg.deterministic else "fast (not reproducible on CUDA)",
            # batched: trained in one stacked model with others (same curves to float rounding)
            "engine": run.engine or "sequential",
            **run_identity_tags(),
            # An upload: which file, by content (the data set's name is its hash's start).
            **user_dataset_tags(cfg.data.name),
            # What the experiment says of its own runs (a transfer run's arm).
            **getattr(run, "tags", {}),
        }
        create: Op = {
            "op": "create",
            "experiment": self.experiment,
            "run_name": f"{run.label} seed={cfg.seed}",  # a Data-page variant's name, else the optimizer's
            "tags": tags,
            "start_time": _now_ms(),
        }
        if _PARENT in self.run_ids:
            tags[PARENT_TAG] = self.run_ids[_PARENT]
        elif _PARENT in self._spools:
            # The parent waits in the spool too: the replay finds its id by this comparison's id.
            create["parent_of"] = run.comparison_id
        # Created here, before any step (about 10 ms a run on SQLite): a writer thread busy
        # with SQLAlchemy during training would hold the GIL and slow every step.
        self._write(run.index, create)
        self._write(run.index, {"op": "params", "params": {k: param_text(v) for k, v in cfg.to_dict().items()}})

    def record(self, run: RunResult, rec: Record) -> None:
        if rec.state is not None:
            self._states[run.index] = rec.state
        if rec.batch_loss is not None:
            self._steps[run.index].append((rec.step, rec.batch_loss, rec.lr, rec.wall_time))
        if rec.is_eval:
            ms = _now_ms()
            self._pending[run.index].extend(
                [key, float(getattr(rec, key)), ms, rec.step]
                for key in _EVAL_METRICS
                if getattr(rec, key) is not None
            )
            if rec.val_metric is not None:
                self._pending[run.index].append([self._metric_keys[run.index], float(rec.val_metric), ms, rec.step])
            self._pending[run.index].append(["wall_time", rec.wall_time, ms, rec.step])
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self._flush_all()

    def run_ended(self, run: RunResult) -> None:
        index = run.index
        ops: list[Op | Callable[[], Op]] = []
        # What a run measures beyond its records (a transfer arm's shifted and kept source accuracy).
        final = [[k, float(v), _now_ms(), 0] for k, v in getattr(run, "final_metrics", {}).items() if v is not None]
        if metrics := self._pending.pop(index, []) + final:
            ops.append({"op": "metrics", "metrics": metrics})
        if steps := self._steps.pop(index, []):
            csv = io.StringIO()
            csv.write("step,batch_loss,lr,wall_time\n")
            csv.writelines(f"{s},{loss!r},{lr!r},{t!r}\n" for s, loss, lr, t in steps)
            ops.append({"op": "text", "path": "curve.csv", "text": csv.getvalue()})
        tags = {"status": run.status_text}
        if (state := self._states.pop(index, None)) is not None:
            # Serialised on the writer thread: torch.save of a large model must not pause training.
            ops.append(lambda: weights_op(state))
            tags["weights"] = STATE_DICT_FILE
        if run.diverged_step is not None:
            tags["diverged_step"] = str(run.diverged_step)
        if run.error:
            tags["error"] = run.error[:5000]
        ops.append({"op": "tags", "tags": tags})
        ops.append({"op": "end", "status": _STATUS.get(str(run.status), "FAILED"), "end_time": _now_ms()})
        self._submit(lambda: [self._write(index, op() if callable(op) else op) for op in ops])

    def comparison_ended(self, comparison: Comparison) -> None:
        if self.figure_html:
            self._submit(lambda: self._log_figure(comparison))
        if _PARENT in self.run_ids or _PARENT in self._spools:
            cancelled = any(r.status.value == "cancelled" for r in comparison.runs)
            ops: list[Op] = [
                {"op": "metrics", "metrics": [["elapsed_s", comparison.elapsed_s, _now_ms(), 0]]},
                {"op": "tags", "tags": {"status": "cancelled" if cancelled else "finished"}},
                {"op": "end", "status": "KILLED" if cancelled else "FINISHED", "end_time": _now_ms()},
            ]
            self._submit(lambda: [self._write(_PARENT, op) for op in ops])
        self.close()

    def close(self) -> None:
        """Wait until everything queued is written (or spooled), then try the spool once."""
        if self._writer is not None and self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        if self._spools and self._unwritten is None:
            for spool in self._spools.values():
                spool.close()
            result = replay_files(self.store, [s.path for s in self._spools.values()])
            self._unwritten = result.pending
            self._lost += result.dropped
            self.errors += [e for e in result.errors if e not in self.errors]

    # -- writer thread --

    def _start_comparison(self, comparison_id: str) -> None:
        self.close()
        self._comparison_id = comparison_id
        self.run_ids, self.errors = {}, []
        self._offline, self._spools, self._unwritten, self._lost = False, {}, None, 0
        self._writer = threading.Thread(target=self._drain, name="dlopt-mlflow", daemon=True)
        self._writer.start()

    def _open_parent(self, comparison_id: str, name: str, params: dict[str, str]) -> None:
        # Created on this thread before any child: each child's create names it.
        tags = {"comparison_id": comparison_id, ROLE_TAG: PARENT_ROLE, "status": "running", **run_identity_tags()}
        self._write(_PARENT, {
            "op": "create", "experiment": self.experiment, "run_name": name, "tags": tags, "start_time": _now_ms(),
        })
        if params:
            self._write(_PARENT, {"op": "params", "params": params})

    def _submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def _drain(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                work()
            except Exception as exc:  # e.g. building the figure failed: say so, keep going
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _write(self, index: int, op: Op) -> None:
        """Write ``op`` for run ``index`` to the store, or to its spool once the store failed."""
        if not self._offline:
            try:
                run_id = apply(client(self.store), op, self.run_ids.get(index), store=self.store, experiments=self._experiments)
            except Exception as exc:
                # Training goes on; from now on every write of this comparison is spooled.
                self._offline = True
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                if run_id is not None:
                    self.run_ids[index] = run_id
                return
        try:
            if index not in self._spools:
                key = f"{self._comparison_id}-{index}"
                self._spools[index] = RunSpool(self.store, key, self.run_ids.get(index))
            self._spools[index].append(op)
        except OSError as exc:  # the disk failed too: this write is lost, and counted
            self._lost += 1
            self.errors.append(f"could not keep a write in {self.store.spool_dir}: {exc}")

    def _flush_all(self) -> None:
        self._last_flush = time.monotonic()
        for index, metrics in self._pending.items():
            if metrics:
                self._pending[index] = []
                op = {"op": "metrics", "metrics": metrics}
                self._submit(lambda index=index, op=op: self._write(index, op))

    def _log_figure(self, comparison: Comparison) -> None:
        fig = curves_figure(curves_data(comparison), title=f"comparison {comparison.id}")
        # plotly.js goes inside the file, so the figure draws without a network and in
        # MLflow's artifact viewer; at 4.8 MB a copy, one per comparison: on the parent run,
        # or else on the first logged run (its comparison_id tag finds the others).
        html = fig.to_html(include_plotlyjs=True, full_html=True)
        if _PARENT in self.run_ids or _PARENT in self._spools:
            self._write(_PARENT, {"op": "text", "path": "comparison.html", "text": html})
            return
        logged = [r.index for r in comparison.runs if r.index in self.run_ids or r.index in self._spools]
        if logged:
            self._write(logged[0], {"op": "text", "path": "comparison.html", "text": html})
