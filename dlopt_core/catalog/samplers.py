"""Optuna's samplers and pruners as specs: a study names one of each.

Each entry carries its label, what it can search (flags) and how it is built, so nothing
switches on a name; adding one is one entry.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.exceptions import ExperimentalWarning


class SearchPlan(Protocol):
    """What a sampler or a pruner reads of a study's config."""

    seed: int
    n_trials: int
    epochs: int

    def lr_grid(self) -> list[float]: ...


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler: ``build(plan, seed)`` makes it for one worker (``seed`` is that worker's)."""

    name: str
    label: str
    build: Callable[[SearchPlan, int], optuna.samplers.BaseSampler]
    lr_only: bool = False  # searches the learning rate alone
    choices: bool = True  # can draw a choice (a schedule, a batch size), not only numbers


@dataclass(frozen=True)
class PrunerSpec:
    """A pruner; its steps are epochs."""

    name: str
    label: str
    build: Callable[[SearchPlan], optuna.pruners.BasePruner]


def _tpe(plan: SearchPlan, seed: int) -> optuna.samplers.BaseSampler:
    # Optuna's default of 10 random start-up trials would be the whole of a small study.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, plan.n_trials // 3)))


def _qmc(plan: SearchPlan, seed: int) -> optuna.samplers.BaseSampler:
    # One sequence for the whole study, whichever worker draws the next point: every
    # worker scrambles with the study's seed (Optuna keeps the sequence's index).
    return optuna.samplers.QMCSampler(scramble=True, seed=plan.seed)


def _cmaes(plan: SearchPlan, seed: int) -> optuna.samplers.BaseSampler:
    # Pruned trials count with their last reported value: otherwise CMA-ES never hears of a
    # diverged trial (a study prunes those) and keeps sampling that region.
    return optuna.samplers.CmaEsSampler(seed=seed, consider_pruned_trials=True)


SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("tpe", "TPE", _tpe),
        SamplerSpec("random", "random", lambda plan, seed: optuna.samplers.RandomSampler(seed=seed)),
        SamplerSpec(
            "grid", "grid over log-lr", lambda plan, seed: optuna.samplers.GridSampler({"lr": plan.lr_grid()}, seed=seed),
            lr_only=True,
        ),
        SamplerSpec("qmc", "quasi-Monte Carlo", _qmc),
        SamplerSpec("cmaes", "CMA-ES", _cmaes, choices=False),
    )
}

PRUNERS: dict[str, PrunerSpec] = {
    p.name: p
    for p in (
        PrunerSpec("none", "none", lambda plan: optuna.pruners.NopPruner()),
        PrunerSpec("median", "median", lambda plan: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)),
        PrunerSpec(
            "hyperband", "Hyperband (successive halving)",
            lambda plan: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=plan.epochs, reduction_factor=3),
        ),
    )
}


def build_sampler(name: str, plan: SearchPlan, *, seed: int) -> optuna.samplers.BaseSampler:
    """Sampler ``name`` for ``plan``, seeded with this worker's ``seed``."""
    with warnings.catch_warnings():  # Optuna calls some of these samplers experimental
        warnings.simplefilter("ignore", ExperimentalWarning)
        return SAMPLERS[name].build(plan, seed)


def build_pruner(name: str, plan: SearchPlan) -> optuna.pruners.BasePruner:
    """Pruner ``name`` for ``plan``."""
    return PRUNERS[name].build(plan)
