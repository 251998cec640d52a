"""Learning-rate sensitivity: every optimizer at every lr of a log grid, over seeds, in one pass.

A sweep is a comparison whose runs are optimizers x learning rates x seeds; the batched
engine trains the whole grid as one stacked model. The result is the final validation loss
(and metric) against the learning rate, per optimizer, with the best lr of each.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import (
    EngineChoice,
    OptimizerConfig,
    RunConfig,
    TrainingSetup,
    check_seeds,
    config_hash,
)
from dlopt_core.engine.records import Status
from dlopt_core.experiments.compare import Comparison

MAX_SWEEP_RUNS = 2048  # optimizers x points x seeds; 1,024 digits MLPs train in seconds batched


def lr_grid(low: float, high: float, points: int) -> list[float]:
    """``points`` log-spaced rates from ``low`` to ``high``, each to 3 significant digits."""
    return [float(f"{v:.3g}") for v in np.geomspace(low, high, points)]


class SweepConfig(TrainingSetup):
    """Optimizers (their other hyperparameters fixed) x a log lr grid x seeds, on one setup."""

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-sweep"
    KIND: ClassVar[str] = "sweep"

    optimizers: tuple[OptimizerConfig, ...] = Field(min_length=1, max_length=12)
    lr_min: float = Field(1e-4, gt=0.0, le=1e3)
    lr_max: float = Field(1.0, gt=0.0, le=1e3)
    points: int = Field(12, ge=2, le=64)
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=10)
    engine: EngineChoice = "auto"

    # What a comparison asks of its config and a sweep has no use for.
    target_loss: None = None
    # No per-step details (train-set evaluations, lows, lr points, weights): a sweep reads
    # only its runs' validation losses, and the train-set evaluation cost it 1.8x.
    detailed: ClassVar[bool] = False

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @model_validator(mode="after")
    def _grid(self) -> Self:
        if self.lr_min >= self.lr_max:
            raise ValueError(f"lr_min: must be below lr_max, got {self.lr_min:g} >= {self.lr_max:g}")
        grid = self.lrs()
        if len(set(grid)) != len(grid):
            raise ValueError(
                f"points: {self.points} points between {self.lr_min:g} and {self.lr_max:g} repeat at 3 "
                "significant digits; widen the range or take fewer points"
            )
        # The sweep sets every lr: the one a spec carries must not make two equal sweeps differ.
        object.__setattr__(self, "optimizers", tuple(
            o.model_copy(update={"lr": get_optimizer(o.name).default_lr}) for o in self.optimizers
        ))
        names = [o.name for o in self.optimizers]
        if len(set(names)) != len(names):
            raise ValueError("optimizers: each optimizer once (the sweep sets its lr)")
        if (n := len(self.optimizers) * self.points * len(self.seeds)) > MAX_SWEEP_RUNS:
            raise ValueError(f"points: {n} runs is more than {MAX_SWEEP_RUNS}; take fewer points, seeds or optimizers")
        for opt in self.optimizers:  # what a run checks (e.g. L-BFGS with fp16), said before any run starts
            self._run(opt, grid[0], self.seeds[0])
        return self

    def lrs(self) -> list[float]:
        return lr_grid(self.lr_min, self.lr_max, self.points)

    def runs(self) -> list[RunConfig]:
        """One run per optimizer, lr and seed, in that order."""
        return [self._run(opt, lr, seed) for opt in self.optimizers for lr in self.lrs() for seed in self.seeds]

    def _run(self, opt: OptimizerConfig, lr: float, seed: int) -> RunConfig:
        shared = self.model_dump(exclude={"optimizers", "seeds", "target_loss", "engine", "lr_min", "lr_max", "points"})
        batch = None if get_optimizer(opt.name).full_batch_only else self.batch_size
        return RunConfig.make(**{**shared, "batch_size": batch}, optimizer=opt.model_copy(update={"lr": lr}), seed=seed)

    def key(self) -> str:
        return "sweep-" + config_hash(self)

    def parent_name(self) -> str:
        """The name of the MLflow run that holds the sweep's runs (the CLI's and the page's)."""
        return f"{self.key()} ({len(self.optimizers)} optimizers x {self.points} lrs)"


@dataclass(frozen=True)
class SweepPoint:
    """One optimizer at one lr: its runs' latest validation numbers over seeds."""

    optimizer: str  # the registry name
    label: str  # the optimizer's label without its lr
    lr: float
    losses: tuple[float, ...]  # latest validation loss of each seed that has one (not diverged)
    metrics: tuple[float, ...]
    diverged: int  # seeds that diverged
    epoch: float  # the least-trained seed's epoch
    done: bool  # every seed has ended

    @property
    def mean_loss(self) -> float | None:
        return statistics.fmean(self.losses) if self.losses and not self.diverged else None

    @property
    def sd_loss(self) -> float:
        return statistics.stdev(self.losses) if len(self.losses) > 1 and not self.diverged else 0.0

    @property
    def mean_metric(self) -> float | None:
        return statistics.fmean(self.metrics) if self.metrics and not self.diverged else None

    @property
    def sd_metric(self) -> float:
        return statistics.stdev(self.metrics) if len(self.metrics) > 1 and not self.diverged else 0.0


def sweep_points(comparison: Comparison) -> list[SweepPoint]:
    """Every (optimizer, lr) of a sweep, from its runs' records so far (live or finished)."""
    groups: dict[tuple[str, float], list[Any]] = {}
    for r in comparison.runs:
        groups.setdefault((r.config.optimizer.name, r.config.optimizer.lr), []).append(r)
    points = []
    for (name, lr), runs in groups.items():
        opt = runs[0].config.optimizer
        label = " ".join([get_optimizer(name).label, *opt.changed()])
        latest = [next((rec for rec in reversed(r.records) if rec.is_eval), None) for r in runs]
        # A diverged seed has no final value, and a failed one's last value is from mid-training.
        live = [(r, rec) for r, rec in zip(runs, latest) if r.status not in (Status.DIVERGED, Status.FAILED)]
        ok = [rec for _, rec in live if rec is not None and math.isfinite(rec.val_loss)]
        points.append(SweepPoint(
            name, label, lr,
            tuple(rec.val_loss for rec in ok), tuple(rec.val_metric for rec in ok),
            sum(r.status is Status.DIVERGED for r in runs),
            min((rec.epoch if rec is not None else 0.0 for _, rec in live), default=0.0),
            all(r.status.ended for r in runs),
        ))
    return points


@dataclass(frozen=True)
class BestLr:
    optimizer: str
    label: str
    lr: float
    loss: float
    metric: float | None
    on_edge: bool  # the grid's lowest or highest rate: the true best may lie outside


def best_lrs(points: list[SweepPoint], lrs: list[float]) -> dict[str, BestLr]:
    """Per optimizer, the lr with the lowest mean validation loss over seeds (no seed diverged)."""
    best: dict[str, BestLr] = {}
    for p in points:
        if p.mean_loss is None:
            continue
        current = best.get(p.optimizer)
        if current is None or p.mean_loss < current.loss:
            edge = p.lr in (lrs[0], lrs[-1])
            best[p.optimizer] = BestLr(p.optimizer, p.label, p.lr, p.mean_loss, p.mean_metric, edge)
    return best
