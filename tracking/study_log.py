"""Log Optuna studies to MLflow: a parent run per study, a nested run per trial.

A :class:`StudyLogger` is an :class:`~dlopt_core.experiments.observer.Observer`; each worker
of a study has its own and logs the trials it ran, when they end (a trial's whole record is
in the study storage by then: its params, the curve it stored, its state). Per trial run:
the trial's run config as params, ``val_loss``, ``train_loss`` and the validation metric named
for what it is (``val_accuracy`` or ``val_r2``) per epoch (``step`` = epoch), tags ``trial_state`` (COMPLETE / PRUNED / FAIL), ``status`` (dlopt's
vocabulary: finished, pruned, diverged, cancelled, failed) and ``diverged_step``, and the end
status FINISHED (complete), KILLED (pruned) or FAILED (failed). Surplus trials (a place
another worker took first, nothing trained) are not logged.

The parent run (tags: optimizer, study, sampler, pruner, storage kind, metric) is shared by
every worker of the study, on every machine: each finds it by its ``dlopt.study`` tag. When
two workers start a new study at once and both create one, every worker settles on the
earliest (checked again after each trial) and the other is retired (tag ``dlopt.role =
duplicate``, KILLED). It is RUNNING while trials are added, FINISHED once
the study holds its trials, KILLED when a worker stopped it before that; ``best_value`` is
logged on it at the number of each trial that improved the study.

Writes go through :mod:`tracking.spool` as MlflowObserver's do: after the first store error
the logger stops talking to the store and keeps each trial's writes in the local spool, which
it replays once when the worker ends (and :func:`tracking.spool.replay_spool` on a later start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracking.mlflow_log import val_metric_key
from tracking.reconcile import run_identity_tags
from tracking.spool import Op, RunSpool, apply, replay_files
from tracking.store import StoreSettings, client, experiment_id, settings

from dlopt_core.config import param_text
from dlopt_core.experiments.observer import Observer
from dlopt_core.experiments.study.config import CURVE_ATTR, DIVERGED_ATTR, StudyConfig
from dlopt_core.experiments.study.store import study_config
from dlopt_core.experiments.study.summary import trial_row

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from dlopt_core.experiments.study.summary import StudySummary
    from dlopt_core.experiments.study_storage import StudyStorage

EXPERIMENT = StudyConfig.EXPERIMENT
STUDY_TAG = "dlopt.study"
ROLE_TAG = "dlopt.role"  # "study" on the parent, "trial" on each trial's run
TRIAL_TAG = "trial_number"
# Optuna's final states, in MLflow's words.
MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_CURVE_METRICS = ("train_loss", "val_loss", "val_metric")  # the stored curve's keys


def _ms(when: Any) -> int:
    return int(when.timestamp() * 1000)


def dlopt_status(trial: FrozenTrial) -> str:
    """The trial's end in the status words the rest of dlopt uses."""
    row = trial_row(trial)
    if row.state == "complete":
        return "finished"
    if row.state == "pruned":
        return "diverged" if row.diverged_step is not None else "pruned"
    return "cancelled" if row.note == "cancelled" else "failed"


class StudyLogger(Observer):
    """Writes one worker's trials of a study to MLflow, nested under the study's parent run."""

    def __init__(self, *, experiment: str = EXPERIMENT, store: StoreSettings | None = None) -> None:
        self.store = store or settings()
        self.experiment = experiment
        self.parent_run_id: str | None = None
        self.run_ids: dict[int, str] = {}  # trial number -> MLflow run id
        self.errors: list[str] = []
        self._config: StudyConfig | None = None
        self._storage_kind = ""
        self._created: str | None = None  # the parent run this worker created, if it did
        self._experiments: dict[str, str] = {}
        self._offline = False
        self._spools: list[RunSpool] = []
        self.unwritten = 0  # writes waiting in the spool after the worker's replay

    # -- Observer hooks for a study worker --

    def worker_started(self, study: optuna.Study, config: StudyConfig, storage: StudyStorage) -> None:
        self._config, self._storage_kind = config, storage.kind
        self._guard(lambda: self._open_parent(study))

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        row = trial_row(trial)
        if row.note == "surplus":
            return
        if self.parent_run_id is not None:
            self._guard(lambda: self._parent_progress(study, trial))
        self._write_run(f"study-{study.study_name}-{trial.number}", trial.number, self._trial_ops(study, trial))

    def worker_ended(self, study: optuna.Study, summary: StudySummary) -> None:
        if not self._offline and self.parent_run_id is not None:
            self._guard(lambda: self._end_parent(summary))
        for spool in self._spools:
            spool.close()
        if self._spools:
            result = replay_files(self.store, [s.path for s in self._spools])
            self.unwritten = result.pending
            self.errors += [e for e in result.errors if e not in self.errors]
            self._spools = []

    # -- the parent run --

    def _open_parent(self, study: optuna.Study) -> None:
        c = client(self.store)
        exp = self._experiment_id()
        if not self._parents(c, exp, study.study_name):
            config = self._config
            assert config is not None
            tags = {
                ROLE_TAG: "study", STUDY_TAG: study.study_name, "optimizer": config.optimizer.name,
                "sampler": config.sampler, "pruner": config.pruner, "storage": self._storage_kind,
                "metric": config.metric, "n_trials": str(config.n_trials), "status": "running",
            }
            run = c.create_run(exp, run_name=f"study {study.study_name}", tags=tags)
            self._created = run.info.run_id
            # n_trials is a tag: a study resumed with a larger budget would change a param,
            # which MLflow refuses.
            params = {k: param_text(v) for k, v in config.to_dict().items() if k != "n_trials"}
            apply(c, {"op": "params", "params": params}, run.info.run_id, store=self.store, experiments=self._experiments)
        self._settle_parent(c, exp, study.study_name)
        assert self.parent_run_id is not None
        c.update_run(self.parent_run_id, status="RUNNING")
        c.set_tag(self.parent_run_id, "status", "running")

    def _settle_parent(self, c: Any, exp: str, name: str) -> None:
        """The study's parent is its earliest: two workers starting a new study at once may
        each have created one. A worker whose own is not the earliest retires it."""
        found = self._parents(c, exp, name)
        self.parent_run_id = found[0].info.run_id
        if self._created is not None and self._created != self.parent_run_id:
            c.set_tag(self._created, ROLE_TAG, "duplicate")
            c.set_terminated(self._created, "KILLED")
            self._created = None

    def _parents(self, c: Any, exp: str, name: str) -> list[Any]:
        runs = c.search_runs(
            [exp], f"tags.`{STUDY_TAG}` = '{name}' and tags.`{ROLE_TAG}` = 'study'", max_results=100,
        )
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _parent_progress(self, study: optuna.Study, trial: FrozenTrial) -> None:
        c = client(self.store)
        self._settle_parent(c, self._experiment_id(), study.study_name)
        assert self.parent_run_id is not None
        if trial.state.name == "COMPLETE" and study.best_trial.number == trial.number:
            apply(c, {"op": "metrics", "metrics": [["best_value", float(trial.value), _ms(trial.datetime_complete), trial.number]]},
                  self.parent_run_id, store=self.store, experiments=self._experiments)
        # Another worker may have stopped (KILLED): the study is being filled again.
        c.update_run(self.parent_run_id, status="RUNNING")

    def _end_parent(self, summary: StudySummary) -> None:
        c = client(self.store)
        assert self.parent_run_id is not None
        tags = {"status": "finished" if summary.done else "cancelled", "n_trials": str(summary.n_trials),
                **{f"trials_{state}": str(n) for state, n in summary.counts.items()}}
        if summary.best is not None:
            tags.update({"best_trial": str(summary.best.number), "best_lr": repr(summary.best.lr),
                         "best_value": repr(summary.best.value), "best_on_edge": str(summary.best_on_edge).lower()})
        apply(c, {"op": "tags", "tags": tags}, self.parent_run_id, store=self.store, experiments=self._experiments)
        if summary.done or summary.stopped:
            c.set_terminated(self.parent_run_id, "FINISHED" if summary.done else "KILLED")

    # -- a trial's run --

    def _trial_ops(self, study: optuna.Study, trial: FrozenTrial) -> list[Op]:
        row = trial_row(trial)
        try:
            params = {k: param_text(v) for k, v in study_config(study).trial_config(trial.params).to_dict().items()}
        except ValueError:  # an invalid sample (the registry's check refused it): what was drawn
            params = {k: str(v) for k, v in trial.params.items()}
        params[TRIAL_TAG] = str(trial.number)
        tags = {
            ROLE_TAG: "trial", STUDY_TAG: study.study_name, TRIAL_TAG: str(trial.number),
            "trial_state": trial.state.name, "status": dlopt_status(trial), **run_identity_tags(),
        }
        if self._config is not None:
            tags["optimizer"] = self._config.optimizer.name
        if self.parent_run_id is not None:
            tags["mlflow.parentRunId"] = self.parent_run_id
        if trial.user_attrs.get(DIVERGED_ATTR) is not None:
            tags[DIVERGED_ATTR] = str(trial.user_attrs[DIVERGED_ATTR])
        if row.note:
            tags["note"] = row.note
        start, end = trial.datetime_start, trial.datetime_complete
        lr = f" lr={row.lr:.3g}" if row.lr is not None else ""
        ops: list[Op] = [
            {"op": "create", "experiment": self.experiment, "run_name": f"{study.study_name} trial {trial.number}{lr}",
             "tags": tags, "start_time": _ms(start) if start else _ms(end)},
            {"op": "params", "params": params},
        ]
        curve = trial.user_attrs.get(CURVE_ATTR) or {}
        at = _ms(end) if end else 0
        # The curve's val_metric is logged by what it is (val_accuracy, val_r2).
        names = {"val_metric": val_metric_key((self._config or study_config(study)).data.name)}
        metrics = [
            [names.get(key, key), float(value), at, epoch]
            for key in _CURVE_METRICS
            for epoch, value in zip(range(len(curve.get(key, []))), curve.get(key, []))
            if value is not None
        ]
        if trial.value is not None and row.diverged_step is None:
            metrics.append(["value", float(trial.value), at, len(curve.get("epoch", [])) - 1])
        if metrics:
            ops.append({"op": "metrics", "metrics": metrics})
        ops.append({"op": "end", "status": MLFLOW_STATUS.get(trial.state.name, "FAILED"), "end_time": at})
        return ops

    # -- writes --

    def _experiment_id(self) -> str:
        if self.experiment not in self._experiments:
            self._experiments[self.experiment] = experiment_id(self.experiment, self.store)
        return self._experiments[self.experiment]

    def _guard(self, work: Any) -> None:
        if self._offline:
            return
        try:
            work()
        except Exception as exc:
            # The study goes on; from now on this worker's trials wait in the spool.
            self._offline = True
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _write_run(self, key: str, number: int, ops: list[Op]) -> None:
        run_id: str | None = None
        done = 0
        if not self._offline:
            try:
                c = client(self.store)
                for op in ops:
                    run_id = apply(c, op, run_id, store=self.store, experiments=self._experiments)
                    done += 1
                self.run_ids[number] = run_id  # type: ignore[assignment]
                return
            except Exception as exc:
                self._offline = True
                self.errors.append(f"{type(exc).__name__}: {exc}")
        try:
            spool = RunSpool(self.store, key, run_id)
            for op in ops[done:]:
                spool.append(op)
            self._spools.append(spool)
        except OSError as exc:
            self.errors.append(f"could not keep a trial's writes in {self.store.spool_dir}: {exc}")
