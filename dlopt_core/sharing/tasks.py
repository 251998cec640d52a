"""What a sharing variant learns from the digits: each task is a registry entry.

A model returns a dict of outputs by task name; a task says how to make its target from the
batch, its loss, and the validation number a person reads (accuracy, or the reconstruction MSE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from dlopt_core.catalog.hyperparams import lookup

Target = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TaskSpec:
    """One task of the digits: its target, loss and validation metric."""

    name: str
    label: str
    metric: Literal["accuracy", "mse"]
    higher_is_better: bool
    outputs: int  # the width of its head (the autoencoder's output is the input's width)
    target: Target  # (x, y) -> the target of the batch
    description: str = ""

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target) if self.metric == "mse" else F.cross_entropy(out, target)

    def score(self, out: torch.Tensor, target: torch.Tensor) -> float:
        if self.metric == "mse":
            return float(F.mse_loss(out, target))
        return float((out.argmax(dim=1) == target).float().mean())

    @property
    def metric_key(self) -> str:
        """``digit_accuracy``, ``reconstruct_mse``: the name in JSON, MLflow and tables."""
        return f"{self.name}_{self.metric}"


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "reconstruct", "reconstruction", "mse", False, 64, lambda x, y: x,
            description="Give back the 64 standardised pixels through a narrow hidden layer (MSE, lower is better).",
        ),
        TaskSpec(
            "digit", "digit class", "accuracy", True, 10, lambda x, y: y,
            description="Which digit, 0-9 (task A).",
        ),
        TaskSpec(
            "high", "digit >= 5", "accuracy", True, 2, lambda x, y: (y >= 5).long(),
            description="Whether the digit is 5 or more (task B).",
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look up a task; the error lists what is allowed."""
    return lookup(TASKS, name, kind="task")
