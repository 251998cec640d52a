"""A run's step budget: the rows it steps through, its batch, steps per epoch and in all.

One value per run, computed from its config and the size of its training set (after any
reduction), read by every place that needs it: the loop, the batched engine, the planner, a
comparison's and a compression's progress, the Runs page's replay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlopt_core.catalog.schedules import Budget
from dlopt_core.config import RunConfig


@dataclass(frozen=True)
class StepBudget:
    """``n_train`` rows in batches of ``batch`` (the last may be short), for ``epochs`` epochs."""

    n_train: int
    batch: int
    epochs: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def schedule(self) -> Budget:
        """What a learning-rate schedule is laid out over."""
        return Budget(self.epochs, self.steps_per_epoch)


def step_budget(config: RunConfig, n_train: int) -> StepBudget:
    """``config``'s budget over a training set of ``n_train`` rows (a full batch when it has no batch size)."""
    return StepBudget(n_train, min(config.batch_size or n_train, n_train), config.epochs)
