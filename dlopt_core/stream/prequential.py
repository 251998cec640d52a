"""Prequential (test-then-train) evaluation and what is measured on it.

Each arriving mini-batch is scored by the learner as it stands, and only then trained on:
the score of a batch never saw that batch. A learner is anything with ``predict``, ``learn``
and ``reset`` (:class:`Learner`); :class:`TorchLearner` is a model, a registry optimizer and an
lr policy:

- ``constant``: the lr it was given, at every step;
- ``decay``: ``lr / sqrt(t)`` at step ``t`` (1-based): the textbook schedule for a stationary
  stream, which by the time a drift comes has too small an lr to follow it;
- ``reset``: the constant lr, and the optimizer built afresh (its moments, its step count)
  when the race's reset detector fires on this learner's errors.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from dlopt_core.catalog.models import INIT_LOCK
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.stream.detectors import Watch

Policy = Literal["constant", "decay", "reset"]
POLICIES: dict[str, str] = {
    "constant": "the given lr at every step",
    "decay": "lr / sqrt(t): cannot re-adapt after a drift",
    "reset": "constant lr; optimizer state reset when the reset detector fires",
}
Region = tuple[int, int]


class Learner(Protocol):
    """What prequential evaluation drives."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) for ``x``; must not learn from it."""
        ...

    def learn(self, x: torch.Tensor, y: torch.Tensor, step: int) -> float:
        """Train on one batch at ``step`` (0-based); returns the lr it used."""
        ...

    def reset(self) -> None:
        """Forget the optimizer's state (a detector fired)."""
        ...


def stream_model(n_features: int, n_classes: int, hidden: Sequence[int], seed: int) -> nn.Module:
    """A small tanh MLP, its weights drawn from ``seed`` (every learner of a seed starts alike)."""
    # torch's initialisers draw from the process-global RNG, which job threads share: every
    # layer is made inside the lock, after the seed.
    with INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        return nn.Sequential(*layers)


class TorchLearner:
    """A model trained by a registry optimizer under an lr ``policy``."""

    def __init__(self, model: nn.Module, *, optimizer: str, lr: float, params: Mapping[str, Any],
                 policy: Policy) -> None:
        self.model, self.policy, self.lr = model, policy, lr
        self._spec, self._hp = get_optimizer(optimizer), dict(params)
        self.resets = 0
        self.optimizer = self._build()

    def _build(self) -> Any:
        device = next(self.model.parameters()).device
        return self._spec.build(list(self.model.named_parameters()), self.lr, self._hp, device)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad():
            return self.model(x)

    def learn(self, x: torch.Tensor, y: torch.Tensor, step: int) -> float:
        lr = self.lr / math.sqrt(step + 1) if self.policy == "decay" else self.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(self.model(x), y).backward()
        self.optimizer.step()
        return lr

    def reset(self) -> None:
        self.optimizer = self._build()
        self.resets += 1


@dataclass(frozen=True)
class StepRow:
    """One step of a learner on the stream: the batch's score before training on it, and what fired."""

    step: int
    accuracy: float
    loss: float
    lr: float
    alarms: tuple[str, ...]  # detectors that fired on this step's errors
    reset: bool  # the optimizer was reset before this step's training


def prequential(
    learner: Learner,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    watches: Mapping[str, Watch] | None = None,
    reset_on: str | None = None,
) -> Iterator[StepRow]:
    """Score each batch, feed the errors to ``watches``, reset the learner if ``reset_on`` fired, then train.

    Closing the iterator stops the learner; each row is yielded after its batch was trained on.
    """
    watches = watches or {}
    for step, (x, y) in enumerate(batches):
        logits = learner.predict(x)  # first the test ...
        errors = (logits.argmax(dim=1) != y).float()
        loss = float(nn.functional.cross_entropy(logits, y))
        fired = tuple(name for name, watch in watches.items() if watch.update(errors.tolist()))
        reset = reset_on is not None and reset_on in fired
        if reset:
            learner.reset()
        lr = learner.learn(x, y, step)  # ... then the train, on the batch just scored
        yield StepRow(step, 1.0 - float(errors.mean()), loss, lr, fired, reset)


def rolling(values: Sequence[float], window: int) -> list[float]:
    """The mean of the last ``window`` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def recover_steps(accuracy: Sequence[float], drifts: Sequence[Region], *, fraction: float = 0.95,
                  pre_window: int = 10) -> list[int | None]:
    """Steps after each drift's start until ``accuracy`` is back to ``fraction`` of its pre-drift level.

    The pre-drift level is the mean over the ``pre_window`` steps before the drift starts. A
    learner whose accuracy never fell below the threshold before the next drift (or the end)
    recovered in 0 steps; one that fell and did not climb back within that span gets None.
    """
    out: list[int | None] = []
    for i, (start, _) in enumerate(drifts):
        before = accuracy[max(0, start - pre_window):start]
        limit = min(drifts[i + 1][0] if i + 1 < len(drifts) else len(accuracy), len(accuracy))
        if not before:
            out.append(None)
            continue
        threshold = fraction * statistics.fmean(before)
        dip = next((t for t in range(start, limit) if accuracy[t] < threshold), None)
        if dip is None:
            out.append(0)
            continue
        back = next((t for t in range(dip + 1, limit) if accuracy[t] >= threshold), None)
        out.append(None if back is None else back - start)
    return out
