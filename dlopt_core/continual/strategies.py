"""Continual-learning strategies, one registry entry each: how a model learns task after task.

A strategy plugs into the ordinary training step (:class:`~dlopt_core.engine.step.StepHooks`):
replay through the batch transform (stored rows mixed into each batch), EWC through the extra
loss (its penalty). After each task, :meth:`Strategy.task_done` lets it keep what it needs
(EWC: the weights and their Fisher information).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.hyperparams import lookup
from dlopt_core.engine.step import StepHooks

FISHER_CHUNK = 256  # rows per vmapped per-sample gradient: bounds the memory of a big task


@dataclass(frozen=True)
class StrategySettings:
    """What the strategies read from an experiment's config."""

    replay_size: int = 200
    ewc_lambda: float = 100.0


class Strategy:
    """Naive fine-tuning: train on each task as it comes, keep nothing."""

    def hooks(self, model: nn.Module) -> StepHooks:
        """The step options while ``model`` trains on a task."""
        return StepHooks()

    def task_done(self, model: nn.Module, data: Dataset) -> None:
        """``model`` has finished training on ``data``."""


class ReplayBuffer:
    """At most ``size`` training rows, a uniform sample of every row offered (reservoir sampling,
    Vitter's algorithm R), drawn with the step's own generator."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen = 0
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.y is None else len(self.y)

    def add(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Offer the rows of a batch: each kept with probability size / rows seen so far."""
        free = max(0, min(self.size - len(self), len(y)))
        if free:
            self.x = x[:free].detach().clone() if self.x is None else torch.cat([self.x, x[:free].detach()])
            self.y = y[:free].detach().clone() if self.y is None else torch.cat([self.y, y[:free].detach()])
        self.seen += free
        rest = len(y) - free
        if not rest:
            return
        assert self.x is not None and self.y is not None
        # Row k of the rest is the (seen + k + 1)-th row offered: it replaces a uniform slot in
        # [0, seen + k] when that slot falls inside the buffer.
        seen = self.seen + torch.arange(1, rest + 1)
        slots = (torch.rand(rest, generator=generator) * seen).long()
        self.seen += rest
        keep = (slots < self.size).nonzero().flatten()
        for k in keep.tolist():  # in order: a later row may take the slot an earlier one took
            self.x[slots[k]] = x[free + k].detach()
            self.y[slots[k]] = y[free + k]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` stored rows drawn uniformly without replacement (all of them if fewer are stored)."""
        assert self.x is not None and self.y is not None
        pick = torch.randperm(len(self), generator=generator)[:n].to(self.y.device)
        return self.x[pick], self.y[pick]


class Replay(Strategy):
    """Experience replay: each batch is trained together with as many rows drawn from the buffer
    (rows of the tasks before, and of this one so far); the batch is then offered to the buffer."""

    def __init__(self, size: int) -> None:
        self.buffer = ReplayBuffer(size)

    def mix(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # Drawn before the batch is offered: a batch is never replayed against itself.
        drawn = self.buffer.sample(len(y), generator) if len(self.buffer) else None
        self.buffer.add(x, y, generator)
        if drawn is None:
            return x, y
        return torch.cat([x, drawn[0]]), torch.cat([y, drawn[1]])

    def hooks(self, model: nn.Module) -> StepHooks:
        return StepHooks(batch_transform=self.mix)


def fisher_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The diagonal of the empirical Fisher information at ``model``'s weights: the mean over rows of
    each parameter's squared per-row gradient of the log-likelihood of its true label.

    Per-row gradients, not a batch's: the square of a mean gradient is not the mean of squares
    (it would shrink the Fisher by about the batch size).
    """
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    was_training = model.training
    model.eval()

    def nll(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    per_row = vmap(grad(nll), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, len(y), FISHER_CHUNK):
        grads = per_row(params, x[start:start + FISHER_CHUNK], y[start:start + FISHER_CHUNK])
        for n, g in grads.items():
            total[n] += (g**2).sum(dim=0)
    model.train(was_training)
    return {n: t / len(y) for n, t in total.items()}


@dataclass(frozen=True)
class Anchor:
    """A finished task's weights θ* and their Fisher diagonal F."""

    weights: dict[str, torch.Tensor]
    fisher: dict[str, torch.Tensor]


class EWC(Strategy):
    """Elastic weight consolidation (Kirkpatrick et al. 2017): after each task, its weights and
    Fisher diagonal are kept; training adds λ/2 Σ_t Σ_i F_{t,i} (θ_i − θ*_{t,i})², one term per
    finished task (the paper's penalty for several tasks)."""

    def __init__(self, ewc_lambda: float) -> None:
        self.ewc_lambda = ewc_lambda
        self.anchors: list[Anchor] = []

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """λ/2 Σ_t Σ_i F_{t,i} (θ_i − θ*_{t,i})² at ``model``'s current weights (0 before the first task ends)."""
        params = dict(model.named_parameters())
        total = torch.zeros((), device=next(model.parameters()).device)
        for anchor in self.anchors:
            for n, star in anchor.weights.items():
                total = total + (anchor.fisher[n] * (params[n] - star) ** 2).sum()
        return 0.5 * self.ewc_lambda * total

    def hooks(self, model: nn.Module) -> StepHooks:
        if not self.anchors:
            return StepHooks()
        return StepHooks(extra_loss=lambda x, out, y: self.penalty(model))

    def task_done(self, model: nn.Module, data: Dataset) -> None:
        weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        self.anchors.append(Anchor(weights, fisher_diagonal(model, data.x_train, data.y_train)))


@dataclass(frozen=True)
class StrategySpec:
    """A strategy: how it is made from the experiment's settings, and what it does."""

    name: str
    label: str
    make: Callable[[StrategySettings], Strategy]
    description: str = ""


STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec("naive", "Naive fine-tuning", lambda s: Strategy(),
                     description="Train on each task in turn; nothing protects the tasks before."),
        StrategySpec("replay", "Replay", lambda s: Replay(s.replay_size),
                     description="A reservoir of past rows (replay size), as many mixed into each batch."),
        StrategySpec("ewc", "EWC", lambda s: EWC(s.ewc_lambda),
                     description="Elastic weight consolidation: a Fisher-weighted pull to each finished task's weights."),
    )
}


def get_strategy(name: str) -> StrategySpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(STRATEGIES, name, kind="strategy")
