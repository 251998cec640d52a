"""Log a drift race to MLflow: a parent run, a child per learner x seed.

Written through :class:`~tracking.mlflow_log.MlflowObserver`'s writer thread and spool (an
unreachable store costs one timeout, the writes wait in the spool). The parent has the config
as params (``StreamConfig.to_dict()``), the true drift regions as a tag, ``elapsed_s`` and per
detector its mean ``precision``, ``recall``, ``mean_time_to_detect`` and ``false_per_1000`` beside the
``always`` and ``never`` baselines' (``adwin_precision``, ``always_precision``, ...). Each child has tags
``optimizer``, ``policy``, ``seed``, ``learner`` and ``stream``; per step the rolling prequential
``accuracy`` and ``loss``; at its end ``final_accuracy``, ``average_accuracy``, ``recover_steps_<i>``
per drift it recovered from (and tag ``recovered_<i>``), ``resets`` and ``alarms_<detector>``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlopt_core.config import param_text
from dlopt_core.experiments.stream import detector_rows, run_summary
from dlopt_core.stream import BASELINES
from tracking.mlflow_log import _PARENT, _STATUS, MlflowObserver
from tracking.reconcile import run_identity_tags
from tracking.spool import PARENT_TAG, Op

if TYPE_CHECKING:
    from dlopt_core.experiments.stream import LearnerRun, StreamRace

SCORES = ("precision", "recall", "mean_time_to_detect", "false_per_1000")


def _now_ms() -> int:
    return int(time.time() * 1000)


class StreamLogger(MlflowObserver):
    """Writes a drift race's runs to MLflow (``run_ids``: run index -> id, the parent under -1)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(figure_html=False, **options)

    def stream_started(self, race: StreamRace) -> None:
        self._start_comparison(race.id)
        params = {k: param_text(v) for k, v in race.config.to_dict().items()}
        self._open_parent(race.id, race.config.parent_name(), params)
        drifts = " ".join(f"{s}-{e}" for s, e in race.drifts)
        self._write(_PARENT, {"op": "tags", "tags": {"stream": race.config.stream, "kind": race.config.KIND,
                                                      "drift_steps": drifts}})

    def stream_run_started(self, race: StreamRace, run: LearnerRun) -> None:
        cfg = race.config
        learner = cfg.learners[run.learner]
        tags = {
            "comparison_id": race.id, "learner": run.label, "optimizer": learner.name, "policy": learner.policy,
            "seed": str(run.seed), "stream": cfg.stream, "status": "running", **run_identity_tags(),
        }
        if _PARENT in self.run_ids:
            tags[PARENT_TAG] = self.run_ids[_PARENT]
        create: Op = {
            "op": "create", "experiment": self.experiment, "run_name": f"{run.label} seed={run.seed}",
            "tags": tags, "start_time": _now_ms(),
        }
        if _PARENT not in self.run_ids:
            create["parent_of"] = race.id  # the parent waits in the spool: the replay finds it
        params = {k: param_text(v) for k, v in cfg.to_dict().items() if k not in ("learners", "seeds")}
        params |= {"learner": learner.to_spec(), "optimizer.lr": str(learner.lr), "seed": str(run.seed)}
        # Created here, before the run trains: the writer thread would hold the GIL during steps.
        for op in (create, {"op": "params", "params": params}):
            self._write(run.index, op)

    def stream_steps(self, race: StreamRace, run: LearnerRun, start: int) -> None:
        window, ms = race.config.window, _now_ms()
        acc, loss = run.rolling_accuracy(window), run.rolling_loss(window)
        metrics = [[name, series[t], ms, t] for t in range(start, run.steps)
                   for name, series in (("accuracy", acc), ("loss", loss))]
        op: Op = {"op": "metrics", "metrics": metrics}
        self._submit(lambda: self._write(run.index, op))

    def stream_run_ended(self, race: StreamRace, run: LearnerRun) -> None:
        if run.index not in self.run_ids and run.index not in self._spools:
            return  # cancelled before it started: no run to end
        summary, ms = run_summary(race, run), _now_ms()
        tags = {"status": run.status_text}
        if run.error:
            tags["error"] = run.error[:5000]
        metrics = [["resets", float(summary["resets"]), ms, 0]]
        metrics += [[f"alarms_{d}", float(n), ms, 0] for d, n in summary["alarms"].items()]
        for key in ("final_accuracy", "average_accuracy"):
            if summary[key] is not None:
                metrics.append([key, summary[key], ms, 0])
        for d, steps in enumerate(summary["recover_steps"], start=1):
            tags[f"recovered_{d}"] = str(steps is not None).lower()
            if steps is not None:
                metrics.append([f"recover_steps_{d}", float(steps), ms, 0])
        ops: list[Op] = [
            {"op": "metrics", "metrics": metrics},
            {"op": "tags", "tags": tags},
            {"op": "end", "status": _STATUS.get(str(run.status), "FAILED"), "end_time": ms},
        ]
        self._submit(lambda: [self._write(run.index, op) for op in ops])

    def stream_ended(self, race: StreamRace) -> None:
        ms = _now_ms()
        metrics = [["elapsed_s", race.elapsed_s, ms, 0]]
        for row in detector_rows(race):
            for key in SCORES:
                if row[key] is not None:
                    metrics.append([f"{row['name']}_{key}", row[key], ms, 0])
                for b in BASELINES:
                    if (v := row[f"{b}_{key}"]) is not None:
                        metrics.append([f"{b}_{key}", v, ms, 0])
        # The baselines are the same for every detector: one metric each.
        metrics = list({m[0]: m for m in metrics}.values())
        cancelled = any(str(r.status) == "cancelled" for r in race.runs)
        ops: list[Op] = [
            {"op": "metrics", "metrics": metrics},
            {"op": "tags", "tags": {"status": "cancelled" if cancelled else "finished"}},
            {"op": "end", "status": "KILLED" if cancelled else "FINISHED", "end_time": ms},
        ]
        self._submit(lambda: [self._write(_PARENT, op) for op in ops])
        self.close()
