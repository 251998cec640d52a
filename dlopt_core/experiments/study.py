"""Optuna studies: the learning rate (and optionally more) of one optimizer, searched on one setup.

A study is a :class:`StudyConfig` (the setup, the optimizer, the search space, sampler,
pruner and trial budget) and a name in a storage (:mod:`dlopt_core.experiments.study_storage`).
Every trial is one run of the training loop; its validation numbers are reported to Optuna at
each epoch, so a pruner can stop it there by closing the run's record stream.

:func:`run_worker` fills a study until it holds ``n_trials`` finished (complete or pruned)
trials in all, together with any other workers (processes, machines) on the same storage,
and never more. A page starts workers and reads progress from the storage with
:func:`study_summary`; a study resumes by name.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Self

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field, model_validator

from dlopt_core.catalog.hyperparams import HyperParam
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import (
    MAX_SEED,
    config_hash,
    ConfigError,
    OptimizerConfig,
    RunConfig,
    TrainingSetup,
    flatten,
    unflatten,
)
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.loop import run
from dlopt_core.engine.records import Status, divergence_limit
from dlopt_core.errors import shown
from dlopt_core.experiments.study_storage import (
    WORKER_ATTR,
    StudyStorage,
    end_stale_trials,
    storage_url,
    study_storage,
    worker_identity,
)

Sampler = Literal["tpe", "random", "grid", "qmc", "cmaes"]
Pruner = Literal["none", "median", "hyperband"]
Metric = Literal["val_loss", "val_metric"]
SAMPLERS: tuple[str, ...] = ("tpe", "random", "grid", "qmc", "cmaes")
PRUNERS: tuple[str, ...] = ("none", "median", "hyperband")
METRICS: tuple[str, ...] = ("val_loss", "val_metric")

BATCH_SIZES = (16, 32, 64, 128, 256)
# The default search range is the registry's lr_range widened by this factor at each end: the
# registry's range is where an optimizer usually works; half a decade beyond it shows whether
# the best lr of this setup really lies inside (a best lr on the edge is flagged).
LR_WIDEN = 3.0
MAX_TRIALS = 10_000
# A best lr this close to an end of the range (a share of the range's width in log-lr) is
# "on the edge": the true best may lie outside.
EDGE_SHARE = 0.05
# What a diverged trial reports when its divergence limit is unknown (non-finite at step 0).
WORST_CAP = 1e300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# The study's user attr holding its config, flat. A trial's run is not stored (one write less
# per trial): it is study_config(study).trial_config(trial.params).
CONFIG_ATTR = "config"
# User attrs a trial carries (the page and tracking read them).
CURVE_ATTR = "curve"  # per evaluation: epoch, train_loss, val_loss, val_metric
DIVERGED_ATTR = "diverged_step"
SURPLUS_ATTR = "surplus"
CANCELLED_ATTR = "cancelled"
INVALID_ATTR = "invalid"
# Fields of a study that a run does not have.
_STUDY_ONLY = {
    "optimizer", "lr_min", "lr_max", "search_hyperparams", "search_schedule", "search_batch_size",
    "sampler", "pruner", "n_trials", "metric", "seed", "study_name",
}


class StudyConfig(TrainingSetup):
    """One optimizer's learning-rate search on one setup: the space, the search and the budget.

    ``optimizer``'s other hyperparameters stay fixed unless ``search_hyperparams``; its lr is
    set by each trial. ``n_trials`` counts finished (complete or pruned) trials, the study's
    total over all its workers and resumptions.
    """

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-search"
    KIND: ClassVar[str] = "study"

    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.make(name="adam"))
    lr_min: float | None = Field(None, gt=0.0, le=1e9, allow_inf_nan=False, description="None: registry range / 3")
    lr_max: float | None = Field(None, gt=0.0, le=1e9, allow_inf_nan=False, description="None: registry range x 3")
    search_hyperparams: bool = False
    search_schedule: bool = False
    search_batch_size: bool = False
    sampler: Sampler = "tpe"
    pruner: Pruner = "median"
    n_trials: int = Field(20, ge=1, le=MAX_TRIALS)
    metric: Metric = "val_loss"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    study_name: str | None = Field(None, description="None: the optimizer and a hash of the setup")

    @model_validator(mode="after")
    def _search(self) -> Self:
        spec = get_optimizer(self.optimizer.name)
        low, high = spec.lr_range
        lr_min = self.lr_min if self.lr_min is not None else float(f"{low / LR_WIDEN:.3g}")
        lr_max = self.lr_max if self.lr_max is not None else min(1e9, float(f"{high * LR_WIDEN:.3g}"))
        if lr_min >= lr_max:
            raise ValueError(f"lr_min: must be below lr_max, got {lr_min:g} >= {lr_max:g}")
        object.__setattr__(self, "lr_min", lr_min)
        object.__setattr__(self, "lr_max", lr_max)
        # Each trial sets the lr: the one the spec carries must not make two equal studies differ.
        object.__setattr__(self, "optimizer", self.optimizer.model_copy(update={"lr": spec.default_lr}))
        if self.study_name is not None and not _NAME.fullmatch(self.study_name):
            raise ValueError(
                f"study_name: letters, digits, '.', '_' and '-', at most 100, starting with a letter "
                f"or digit (got {shown(self.study_name)})"
            )
        searched = [f for f in ("search_hyperparams", "search_schedule", "search_batch_size") if getattr(self, f)]
        if self.sampler == "grid" and searched:
            raise ValueError(
                f"{searched[0]}: the grid sampler searches the learning rate only (a log grid of "
                "n_trials points); choose tpe, random or qmc to search more"
            )
        if self.sampler == "cmaes":
            for name in ("search_schedule", "search_batch_size"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}: the cmaes sampler takes continuous parameters only and this is a "
                        "choice; choose tpe, random or qmc"
                    )
        if self.search_hyperparams and not self.searched_hyperparams():
            raise ValueError(f"search_hyperparams: optimizer {self.optimizer.name!r} has no numeric hyperparameters")
        if self.search_batch_size and spec.full_batch_only:
            raise ValueError(
                f"search_batch_size: optimizer {self.optimizer.name!r} works on full batches only"
            )
        self.trial_config({"lr": lr_min})  # what a run checks (L-BFGS with fp16), said before any trial starts
        return self

    @property
    def name(self) -> str:
        """The study's name in its storage: ``study_name``, or the optimizer and :meth:`key`."""
        return self.study_name or f"{self.optimizer.name}-{self.key()}"

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if self.metric == "val_loss" else "maximize"

    def key(self) -> str:
        """Stable short hash of the setup and search (not the budget, not the name): resuming
        with more trials continues the same study."""
        return config_hash(self, exclude={"n_trials", "study_name"}, length=10)

    def searched_hyperparams(self) -> tuple[HyperParam, ...]:
        """The optimizer's numeric hyperparameters with a range (searched when ``search_hyperparams``)."""
        spec = get_optimizer(self.optimizer.name)
        return tuple(p for p in spec.hyperparams if p.kind in ("float", "int") and p.low < p.high)

    def search_space(self) -> dict[str, BaseDistribution]:
        """Every searched parameter by its Optuna name: ``lr``, ``optimizer.<name>``, ``schedule``, ``batch_size``."""
        assert self.lr_min is not None and self.lr_max is not None
        space: dict[str, BaseDistribution] = {"lr": FloatDistribution(self.lr_min, self.lr_max, log=True)}
        if self.search_hyperparams:
            for p in self.searched_hyperparams():
                space[f"optimizer.{p.name}"] = _distribution(p)
        if self.search_schedule:
            space["schedule"] = CategoricalDistribution(tuple(SCHEDULES))
        if self.search_batch_size:
            space["batch_size"] = CategoricalDistribution(BATCH_SIZES)
        return space

    def lr_grid(self) -> list[float]:
        """The grid sampler's rates: ``n_trials`` log-spaced from ``lr_min`` to ``lr_max``."""
        # Not rounded: a rounded end could fall outside the range, which the grid must not.
        return [float(v) for v in np.geomspace(self.lr_min, self.lr_max, self.n_trials)]

    def trial_config(self, params: Mapping[str, Any]) -> RunConfig:
        """The run of a trial with these sampled ``params`` (see :meth:`search_space`)."""
        spec = get_optimizer(self.optimizer.name)
        hyper = {k.removeprefix("optimizer."): v for k, v in params.items() if k.startswith("optimizer.")}
        optimizer = OptimizerConfig.make(
            name=self.optimizer.name, lr=params["lr"], params={**self.optimizer.params, **hyper}
        )
        shared = self.model_dump(exclude=_STUDY_ONLY)
        if "schedule" in params:
            shared["schedule"] = {"name": params["schedule"]}
        batch = params.get("batch_size", self.batch_size)
        shared["batch_size"] = None if spec.full_batch_only else batch
        return RunConfig.make(**shared, optimizer=optimizer, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        """Flat keys, as MLflow logs them and the study stores them."""
        return flatten(self)

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> StudyConfig:
        return unflatten(cls, flat)


def _distribution(p: HyperParam) -> BaseDistribution:
    low, high = p.low, p.high
    if p.kind == "int":
        return IntDistribution(
            math.ceil(low) + (0 if p.low_inclusive else 1), math.floor(high) - (0 if p.high_inclusive else 1), log=p.log
        )
    # Optuna's ranges include both ends; an excluded end (Rprop's 0 < eta_minus < 1) moves in.
    low = low if p.low_inclusive else math.nextafter(low, high)
    high = high if p.high_inclusive else math.nextafter(high, low)
    return FloatDistribution(low, high, log=p.log)


# -- samplers and pruners --


def build_sampler(config: StudyConfig, *, seed: int) -> optuna.samplers.BaseSampler:
    """The config's sampler; ``seed`` is this worker's (see :func:`worker_seed`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if config.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if config.sampler == "grid":
            return optuna.samplers.GridSampler({"lr": config.lr_grid()}, seed=seed)
        if config.sampler == "qmc":
            # One sequence for the whole study, whichever worker draws the next point: every
            # worker scrambles with the study's seed (Optuna keeps the sequence's index).
            return optuna.samplers.QMCSampler(scramble=True, seed=config.seed)
        if config.sampler == "cmaes":
            # Pruned trials count with their last reported value: otherwise CMA-ES never
            # hears of a diverged trial (see _objective) and keeps sampling that region.
            return optuna.samplers.CmaEsSampler(seed=seed, consider_pruned_trials=True)
        # Optuna's default of 10 random start-up trials would be the whole of a small study.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, config.n_trials // 3)))


def build_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The config's pruner; steps are epochs."""
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def worker_seed(config: StudyConfig, worker: int | None) -> int:
    """The sampler seed of worker ``worker`` (0, 1, ...): the same worker index, the same draws.

    ``None``: a fresh seed for this process. Workers must not share one: with the same seed, two
    workers' random start-up trials would be the same points.
    """
    entropy = [config.seed, worker] if worker is not None else [config.seed, os.getpid(), time.time_ns()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


# -- a study in its storage --


def _storage(storage: StudyStorage | str | None) -> StudyStorage:
    return storage if isinstance(storage, StudyStorage) else study_storage(storage)


def open_study(config: StudyConfig, storage: StudyStorage | str | None = None, *, worker: int | None = None) -> optuna.Study:
    """Create the study, or resume it by name; a name taken by another setup is a ConfigError."""
    handle = _storage(storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        study = optuna.create_study(
            study_name=config.name, storage=handle.storage, sampler=build_sampler(config, seed=worker_seed(config, worker)),
            pruner=build_pruner(config), direction=config.direction, load_if_exists=True,
        )
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is not None:
        if StudyConfig.from_dict(stored).key() != config.key():
            raise ConfigError(
                f"study_name: a study named {config.name!r} exists in {handle.url} with another setup or search; "
                "choose another name"
            )
    if stored is None or stored.get("n_trials") != config.n_trials:
        # The budget is the latest worker's: resuming with a larger n_trials adds trials.
        study.set_user_attr(CONFIG_ATTR, config.to_dict())
    return study


def load_study(name: str, storage: StudyStorage | str | None = None) -> optuna.Study:
    """An existing study, to read (its Optuna figures, its trials); KeyError if there is none."""
    return optuna.load_study(study_name=name, storage=_storage(storage).storage)


def study_names(storage: StudyStorage | str | None = None) -> list[str]:
    """Every study in the storage (past ones survive a server restart: they live there)."""
    return optuna.get_all_study_names(_storage(storage).storage)


def study_config(study: optuna.Study) -> StudyConfig:
    """The config a study was created with (the latest worker's budget)."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise ConfigError(f"study_name: {study.study_name!r} was not made by dlopt (it has no config)")
    return StudyConfig.from_dict(stored)


# -- progress and results, read from the storage --


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
    handle = _storage(storage)
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


# -- the worker --


class StudyObserver:
    """Hooks a worker calls (tracking); each does nothing until overridden."""

    def worker_started(self, study: optuna.Study, config: StudyConfig, storage: StudyStorage) -> None:
        """Before the worker's first trial."""

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After each trial this worker ran (complete, pruned or failed)."""

    def worker_ended(self, study: optuna.Study, summary: StudySummary) -> None:
        """When the worker stops: the study is full, or it was told to stop."""


class _Surplus(Exception):
    """The study already holds its trials (another worker took the last one first)."""


class _Cancelled(Exception):
    """The worker was told to stop during this trial."""


class _Invalid(Exception):
    """The sampled values break one of the optimizer's rules (the registry's check)."""


TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def _never() -> bool:
    return False


def _counts(study: optuna.Study) -> tuple[int, int, int]:
    finished = running = waiting = 0
    for t in study.get_trials(deepcopy=False):
        finished += t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        running += t.state is TrialState.RUNNING
        waiting += t.state is TrialState.WAITING
    return finished, running, waiting


def _sample(trial: optuna.Trial, config: StudyConfig) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, dist in config.search_space().items():
        if isinstance(dist, FloatDistribution):
            values[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, IntDistribution):
            values[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        else:
            assert isinstance(dist, CategoricalDistribution)
            values[name] = trial.suggest_categorical(name, dist.choices)
    return values


def _worst(limit: float, direction: str) -> float:
    worst = min(limit, WORST_CAP)
    return worst if direction == "minimize" else -worst


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _objective(config: StudyConfig, should_stop: Callable[[], bool]) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        # No overshoot: trials with a smaller number that have not failed are ahead of this one;
        # when they alone fill the study, this trial is one too many (two workers took the
        # last place at once). It ends FAIL, which no count, sampler or pruner uses.
        ahead = sum(
            1 for t in trial.study.get_trials(deepcopy=False)
            if t.number < trial.number and t.state is not TrialState.FAIL
        )
        if ahead >= config.n_trials:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise _Surplus(f"trial {trial.number}: the study already holds {config.n_trials} trials")
        trial.set_user_attr(WORKER_ATTR, worker_identity(trial.number))
        try:
            run_config = config.trial_config(_sample(trial, config))
        except ConfigError as err:
            trial.set_user_attr(INVALID_ATTR, str(err))
            raise _Invalid(str(err)) from None
        curve: dict[str, list[float | None]] = {k: [] for k in ("epoch", "train_loss", "val_loss", "val_metric")}
        limit = math.inf
        value: float | None = None
        records = run(run_config)
        try:
            for rec in records:
                if should_stop():
                    trial.set_user_attr(CANCELLED_ATTR, True)
                    raise _Cancelled(f"trial {trial.number}: the worker was stopped")
                if rec.status is Status.DIVERGED:
                    # A diverged trial is PRUNED, having reported a value worse than any trial
                    # that did not diverge can reach: the divergence limit (every such trial's
                    # losses stay below it, by definition). Why pruned: the study goes on (a
                    # diverging lr is a result, not a crash), a pruned trial is never
                    # best_trial, and TPE ranks pruned trials below completed ones, by their
                    # last reported value among those pruned at the same epoch, so it learns
                    # that this region is bad (a FAIL would teach it nothing). The value is
                    # finite because some storages and pruners do not take inf.
                    step = math.ceil(rec.epoch)
                    trial.report(_worst(limit, config.direction), step=step)
                    trial.set_user_attr(DIVERGED_ATTR, rec.step)
                    raise optuna.TrialPruned(f"diverged at step {rec.step}")
                if not rec.is_eval:
                    continue
                for key in curve:
                    curve[key].append(_finite(getattr(rec, key)))
                if rec.step == 0:
                    limit = divergence_limit(rec.train_loss or math.inf)
                    continue
                value = getattr(rec, config.metric)
                trial.report(value, step=round(rec.epoch))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {round(rec.epoch)}")
        finally:
            records.close()  # stopping a run is closing its record stream
            if curve["epoch"]:
                trial.set_user_attr(CURVE_ATTR, curve)
        assert value is not None  # epochs >= 1: at least one evaluation after step 0
        return float(value)

    return objective


def run_worker(
    config: StudyConfig,
    storage: StudyStorage | str | None = None,
    *,
    should_stop: Callable[[], bool] = _never,
    on_trial: TrialCallback | None = None,
    observers: Sequence[StudyObserver] = (),
    worker: int | None = None,
    poll_s: float = 0.5,
) -> StudySummary:
    """Run trials of ``config``'s study until it holds ``n_trials`` finished trials in all.

    Several workers (this process, others, other machines on a shared storage) fill one
    study together: a worker starts a trial only while finished + running + queued trials
    are fewer than the target, waits (polling every ``poll_s`` seconds) while the others'
    running trials might still fill it, and takes over a dead worker's trial (queued again).
    ``should_stop`` is asked before each trial and at each step of one: when it says so the
    running trial ends FAIL (``cancelled``, so it does not count) and the worker returns;
    none is left RUNNING. ``on_trial`` is called after each trial this worker ran.
    ``worker`` numbers this worker for a reproducible sampler (:func:`worker_seed`).
    """
    handle = _storage(storage)
    resolve_device(config.device)
    use_one_thread()
    study = open_study(config, handle, worker=worker)
    objective = _objective(config, should_stop)
    callbacks: list[TrialCallback] = [o.trial_ended for o in observers]
    if on_trial is not None:
        callbacks.append(on_trial)
    for o in observers:
        o.worker_started(study, config, handle)
    stopped = False
    while True:
        end_stale_trials(study, handle)
        finished, running, waiting = _counts(study)
        if finished >= config.n_trials:
            break
        if should_stop():
            stopped = True
            break
        if not waiting and finished + running >= config.n_trials:
            _sleep(poll_s, should_stop)  # the running trials may fill the study, or fail
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.optimize(objective, n_trials=1, catch=(_Surplus, _Cancelled, _Invalid), callbacks=callbacks)
    summary = dataclasses.replace(study_summary(study, handle), stopped=stopped)
    for o in observers:
        o.worker_ended(study, summary)
    return dataclasses.replace(summary, errors=[e for o in observers for e in getattr(o, "errors", [])])


def study_observers(*, experiment: str) -> list[StudyObserver]:
    """One observer per installed tracking backend: the ``dlopt.study_observers`` entry point
    group (``tracking`` registers MLflow's), so the core never imports a tracking backend."""
    return [ep.load()(experiment=experiment) for ep in entry_points(group="dlopt.study_observers")]


class StudyWork:
    """One worker of a study as background work (:mod:`dlopt_core.runner`): a page submits one
    per local worker process (``worker`` 0, 1, ...); Stop ends it as :func:`run_worker` does.

    The storage is the source of truth for progress (:func:`study_summary` sees every worker's
    trials, remote ones too); this mirror only holds what this worker reported.
    """

    def __init__(
        self, config: StudyConfig, *, storage: str | None = None, worker: int = 0, track: bool = True,
        experiment: str = StudyConfig.EXPERIMENT,
    ) -> None:
        self.config = config
        # Resolved here: the worker process writes where the submitting page reads.
        self.storage = storage_url(storage)
        self.worker = worker
        self.track = track
        self.experiment = experiment
        self.key = f"study-{config.name}-w{worker}"
        self.label = f"study {config.name} worker {worker}"
        self.trials: list[TrialRow] = []  # the trials this worker ran, as they ended
        self.summary: StudySummary | None = None
        self.status: Status = Status.PENDING

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("config", "storage", "worker", "track", "experiment")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("config"), **state)  # type: ignore[misc]

    def run(self, emit: Any, control: Any) -> None:
        from dlopt_core.runner.plugins import tracking_start

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        observers: list[StudyObserver] = []
        if self.track:
            tracking_start()
            observers = study_observers(experiment=self.experiment)
        summary = run_worker(
            self.config, self.storage, should_stop=control.should_stop, observers=observers, worker=self.worker,
            on_trial=lambda study, trial: emit(("trial", trial_row(trial)), urgent=True),
        )
        emit(("summary", summary), urgent=True)

    def apply(self, event: Any) -> None:
        if event[0] == "trial":
            self.trials.append(event[1])
        elif event[0] == "summary":
            self.summary = event[1]

    def finish(self, status: Status) -> None:
        self.status = status


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not should_stop():
        time.sleep(min(0.05, seconds))
