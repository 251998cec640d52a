"""Log a continual-learning experiment to MLflow: a parent run, a child per optimizer x strategy x seed.

Written through :class:`~tracking.mlflow_log.MlflowObserver`'s writer thread and spool (an
unreachable store costs one timeout, the writes wait in the spool). The parent has the config
as params (``ContinualConfig.to_dict()``) and ``elapsed_s``; each child has tags ``optimizer``
(the registry name), ``optimizer_label``, ``strategy``, ``seed`` and ``sequence``; at step i (after
task i) ``acc_task<j>`` for every task j (a row of the accuracy matrix) and ``anytime_accuracy``;
at its end the summary metrics ``average_accuracy``, ``forgetting``, ``bwt`` and ``fwt``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlopt_core.config import param_text
from tracking.mlflow_log import _PARENT, _STATUS, MlflowObserver
from tracking.reconcile import run_identity_tags
from tracking.spool import PARENT_TAG, Op

if TYPE_CHECKING:
    from dlopt_core.experiments.continual import Continual, ContinualRun


def _now_ms() -> int:
    return int(time.time() * 1000)


class ContinualLogger(MlflowObserver):
    """Writes a continual-learning experiment's runs to MLflow (``run_ids``: run index -> id, the parent under -1)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(figure_html=False, **options)

    def continual_started(self, continual: Continual) -> None:
        cfg = continual.config
        self._start_comparison(continual.id)
        params = {k: param_text(v) for k, v in cfg.to_dict().items()}
        self._open_parent(continual.id, cfg.parent_name(), params)
        self._write(_PARENT, {"op": "tags", "tags": {"sequence": cfg.sequence, "kind": cfg.KIND}})

    def continual_run_started(self, continual: Continual, run: ContinualRun) -> None:
        cfg = continual.config
        optimizer = next(o for o in cfg.optimizers if o.label == run.optimizer)
        tags = {
            "comparison_id": continual.id, "optimizer": optimizer.name, "optimizer_label": run.optimizer,
            "strategy": run.strategy, "seed": str(run.seed), "sequence": cfg.sequence, "dataset": "digits",
            "status": "running", **run_identity_tags(),
        }
        if _PARENT in self.run_ids:
            tags[PARENT_TAG] = self.run_ids[_PARENT]
        create: Op = {
            "op": "create", "experiment": self.experiment, "run_name": f"{run.optimizer} {run.strategy} seed={run.seed}",
            "tags": tags, "start_time": _now_ms(),
        }
        if _PARENT not in self.run_ids:
            create["parent_of"] = continual.id  # the parent waits in the spool: the replay finds it
        params = {k: param_text(v) for k, v in cfg.to_dict().items() if k not in ("optimizer", "strategies", "seeds")}
        params.update({"optimizer": optimizer.to_spec(), "strategy": run.strategy, "seed": str(run.seed)})
        ms = _now_ms()
        initial = [[f"init_acc_task{j}", v, ms, 0] for j, v in enumerate(run.initial)]
        # Created here, before the run trains: the writer thread would hold the GIL during steps.
        for op in (create, {"op": "params", "params": params}, {"op": "metrics", "metrics": initial}):
            self._write(run.index, op)

    def continual_task_done(self, continual: Continual, run: ContinualRun) -> None:
        ms, step = _now_ms(), len(run.rows) - 1
        metrics = [[f"acc_task{j}", v, ms, step] for j, v in enumerate(run.rows[-1])]
        metrics += [["anytime_accuracy", run.anytime[-1], ms, step], ["task_s", run.task_seconds[-1], ms, step]]
        op: Op = {"op": "metrics", "metrics": metrics}
        self._submit(lambda: self._write(run.index, op))

    def continual_run_ended(self, continual: Continual, run: ContinualRun) -> None:
        if run.index not in self.run_ids and run.index not in self._spools:
            return  # cancelled before it started: no run to end
        tags = {"status": run.status_text}
        if run.diverged_task is not None:
            tags["diverged_task"] = str(run.diverged_task)
        if run.error:
            tags["error"] = run.error[:5000]
        ms = _now_ms()
        summary = [[k, v, ms, 0] for k, v in run.measures.items() if v is not None]
        ops: list[Op] = [
            {"op": "metrics", "metrics": [*summary, ["elapsed_s", run.elapsed_s, ms, 0]]},
            {"op": "tags", "tags": tags},
            {"op": "end", "status": _STATUS.get(str(run.status), "FAILED"), "end_time": ms},
        ]
        self._submit(lambda: [self._write(run.index, op) for op in ops])

    def continual_ended(self, continual: Continual) -> None:
        cancelled = any(str(r.status) == "cancelled" for r in continual.runs)
        ops: list[Op] = [
            {"op": "metrics", "metrics": [["elapsed_s", continual.elapsed_s, _now_ms(), 0]]},
            {"op": "tags", "tags": {"status": "cancelled" if cancelled else "finished"}},
            {"op": "end", "status": "KILLED" if cancelled else "FINISHED", "end_time": _now_ms()},
        ]
        self._submit(lambda: [self._write(_PARENT, op) for op in ops])
        self.close()
