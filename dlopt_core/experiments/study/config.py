"""A study's config: one optimizer's learning-rate search on one setup, its space and budget."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import Field, model_validator

from dlopt_core.catalog import samplers
from dlopt_core.catalog.hyperparams import HyperParam
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import (
    MAX_SEED,
    OptimizerConfig,
    RunConfig,
    TrainingSetup,
    config_hash,
)
from dlopt_core.errors import shown

# The registry's names, in its order (the form's and the CLI's choices).
SAMPLERS: tuple[str, ...] = tuple(samplers.SAMPLERS)
PRUNERS: tuple[str, ...] = tuple(samplers.PRUNERS)
Sampler = Literal[SAMPLERS]  # type: ignore[valid-type]
Pruner = Literal[PRUNERS]  # type: ignore[valid-type]
Metric = Literal["val_loss", "val_metric"]
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
        sampler = samplers.SAMPLERS[self.sampler]
        general = [s.name for s in samplers.SAMPLERS.values() if not s.lr_only and s.choices]
        choose = f"{', '.join(general[:-1])} or {general[-1]}"
        if sampler.lr_only and searched:
            raise ValueError(
                f"{searched[0]}: the {self.sampler} sampler searches the learning rate only "
                f"({sampler.label}); choose {choose} to search more"
            )
        if not sampler.choices:
            for name in ("search_schedule", "search_batch_size"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}: the {self.sampler} sampler takes continuous parameters only and this is a "
                        f"choice; choose {choose}"
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
