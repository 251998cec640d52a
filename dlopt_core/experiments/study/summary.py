"""A study's progress and results, read from its storage (every worker's trials)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dlopt_core.experiments.study.config import (
    CANCELLED_ATTR,
    DIVERGED_ATTR,
    INVALID_ATTR,
    SURPLUS_ATTR,
)
from dlopt_core.experiments.study.store import load_study, storage_handle, study_config
from dlopt_core.experiments.study_storage import WORKER_ATTR, StudyStorage

# A best lr this close to an end of the range (a share of the range's width in log-lr) is
# "on the edge": the true best may lie outside.
EDGE_SHARE = 0.05


@dataclass(frozen=True)
class TrialRow:
    """One trial as a page or the CLI shows it."""

    number: int
    state: str  # complete, pruned, fail, running, waiting
    lr: float | None
    params: dict[str, Any]
    value: float | None  # complete: the objective; pruned: its last reported value; diverged: None
    intermediate: dict[int, float]  # the objective at each epoch (a diverged trial's last is its worst)
    diverged_step: int | None
    note: str | None  # surplus, cancelled, invalid: ..., retry of N
    worker: str | None  # host:pid

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "state": self.state, "lr": self.lr, "params": self.params, "value": self.value,
            "diverged_step": self.diverged_step, "note": self.note, "worker": self.worker,
            "intermediate": {str(k): v for k, v in self.intermediate.items()},
        }


def trial_row(trial: FrozenTrial) -> TrialRow:
    """A stored trial as a row (any worker's, finished or not)."""
    attrs = trial.user_attrs
    diverged = attrs.get(DIVERGED_ATTR)
    note = None
    if attrs.get(SURPLUS_ATTR):
        note = "surplus"
    elif attrs.get(CANCELLED_ATTR):
        note = "cancelled"
    elif attrs.get(INVALID_ATTR):
        note = f"invalid: {attrs[INVALID_ATTR]}"
    elif "failed_trial" in trial.system_attrs:
        note = f"retry of {trial.system_attrs['failed_trial']}"
    worker = attrs.get(WORKER_ATTR)
    value = trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and diverged is None else None
    return TrialRow(
        trial.number, trial.state.name.lower(), trial.params.get("lr"), dict(trial.params), value,
        dict(trial.intermediate_values), diverged, note,
        f"{worker['host']}:{worker['pid']}" if isinstance(worker, dict) and worker.get("trial") == trial.number else None,
    )


@dataclass(frozen=True)
class StudySummary:
    """A study's progress and results, as stored now (every worker's trials)."""

    study_name: str
    storage_kind: str
    storage_url: str
    optimizer: str
    metric: str
    direction: str
    n_trials: int  # the target: finished trials
    lr_range: tuple[float, float]
    counts: dict[str, int]  # by state: complete, pruned, fail, running, waiting
    trials: tuple[TrialRow, ...]
    best: TrialRow | None
    best_on_edge: bool
    stopped: bool = False  # this worker was told to stop before the study was full
    errors: list[str] = field(default_factory=list)  # what observers (tracking) could not do

    @property
    def finished(self) -> int:
        return self.counts["complete"] + self.counts["pruned"]

    @property
    def done(self) -> bool:
        return self.finished >= self.n_trials

    def to_json(self) -> dict[str, Any]:
        return {
            "study_name": self.study_name, "storage": self.storage_kind, "storage_url": self.storage_url,
            "optimizer": self.optimizer, "metric": self.metric, "direction": self.direction,
            "n_trials": self.n_trials, "finished": self.finished, "lr_range": list(self.lr_range),
            "counts": self.counts, "stopped": self.stopped,
            "best": None if self.best is None else {
                "number": self.best.number, "lr": self.best.lr, "params": self.best.params, "value": self.best.value,
            },
            "best_on_edge": self.best_on_edge,
            "trials": [t.to_json() for t in self.trials],
            "errors": self.errors,
        }


def on_edge(lr: float, lr_min: float, lr_max: float) -> bool:
    """Whether ``lr`` sits within :data:`EDGE_SHARE` of either end of the log range."""
    width = math.log(lr_max / lr_min)
    return min(math.log(lr / lr_min), math.log(lr_max / lr)) <= EDGE_SHARE * width


def study_summary(study: optuna.Study | str, storage: StudyStorage | str | None = None) -> StudySummary:
    """Progress and results of a study (an open one, or a name in ``storage``), read now.

    Raises KeyError when there is no such study, ConfigError when it has no dlopt config (made
    by other code, or created a moment ago and its config not yet written: ask again).
    """
    handle = storage_handle(storage)
    study = load_study(study, handle) if isinstance(study, str) else study
    config = study_config(study)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)}
    for t in trials:
        counts[t.state.name.lower()] += 1
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    best = None
    if complete:  # study.best_trial, without a second read of every trial
        pick = min if config.direction == "minimize" else max
        best = trial_row(pick(complete, key=lambda t: (t.value, t.number) if pick is min else (t.value, -t.number)))
    assert config.lr_min is not None and config.lr_max is not None
    return StudySummary(
        study.study_name, handle.kind, handle.url, config.optimizer.name, config.metric, config.direction,
        config.n_trials, (config.lr_min, config.lr_max), counts, tuple(trial_row(t) for t in trials), best,
        best is not None and best.lr is not None and on_edge(best.lr, config.lr_min, config.lr_max),
    )
