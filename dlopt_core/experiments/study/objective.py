"""A trial: one run of the training loop, its validation numbers reported to Optuna per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.engine.loop import data_key, load_run_data, run
from dlopt_core.engine.records import Status, divergence_limit
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.study.config import (
    CANCELLED_ATTR,
    CURVE_ATTR,
    DIVERGED_ATTR,
    INVALID_ATTR,
    SURPLUS_ATTR,
    StudyConfig,
)
from dlopt_core.experiments.study_storage import WORKER_ATTR, worker_identity

# What a diverged trial reports when its divergence limit is unknown (non-finite at step 0).
WORST_CAP = 1e300


class _Surplus(Exception):
    """The study already holds its trials (another worker took the last one first)."""


class _Cancelled(Exception):
    """The worker was told to stop during this trial."""


class _Invalid(Exception):
    """The sampled values break one of the optimizer's rules (the registry's check)."""

# How a trial ends that must not stop the worker (counted by no one: they end FAIL).
TRIAL_ENDS = (_Surplus, _Cancelled, _Invalid)


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


def objective(config: StudyConfig, should_stop: Callable[[], bool]) -> Callable[[optuna.Trial], float]:
    """The objective of ``config``'s trials: one run each, reported per epoch, stopped by ``should_stop``.

    The data is loaded once per worker, at its first trial: trials differ in their optimizer,
    schedule and batch, not in their data.
    """
    loaded: dict[str, Dataset] = {}

    def trial_value(trial: optuna.Trial) -> float:
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
        key = data_key(run_config)
        if key not in loaded:
            loaded[key] = load_run_data(run_config)
        records = run(run_config, data=loaded[key])
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

    return trial_value
