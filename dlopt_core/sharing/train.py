"""Train one sharing variant for one seed: a loop that reads top to bottom, one step function.

Multi-task losses and PCGrad do not fit the single-loss engine loop
(:mod:`dlopt_core.engine.loop`), so this is a small loop of its own: shuffled mini-batches,
the optimizer and schedule from the registries, one :class:`EpochRow` per epoch (epoch 0 is
the untrained model), ``should_stop`` asked between steps (the generator just ends), and a
non-finite or exploding loss raised as :class:`Diverged`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.schedules import Budget, get_schedule
from dlopt_core.config import OptimizerConfig, ScheduleConfig
from dlopt_core.engine.records import divergence_limit
from dlopt_core.sharing.pcgrad import cosine, pcgrad
from dlopt_core.sharing.tasks import get_task

Combine = Literal["equal", "pcgrad"]
PROBE_ROWS = 512  # the training rows the conflict monitor takes its task gradients on


class Diverged(Exception):
    """The loss became non-finite (or exploded) at ``step``."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss:g} at step {step}")
        self.step, self.loss = step, loss


@dataclass(frozen=True)
class EpochRow:
    """One epoch of one run: plain data, picklable, what the page and MLflow read."""

    epoch: int
    step: int
    train_loss: float | None  # mean batch loss (summed over tasks) of the epoch; None at epoch 0
    metrics: dict[str, float]  # validation metric by task (accuracy, or reconstruction MSE)
    val_losses: dict[str, float]  # validation loss by task
    elapsed_s: float  # training seconds so far (steps only, evaluation not counted)
    lr: float
    # Multi-task trunks only: the cosine between the two tasks' gradients, by shared layer
    # (a module name such as ``trunk.0``), on the same probe rows every epoch.
    cosines: dict[str, float] = field(default_factory=dict)


def task_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each task's loss on a batch, by task name (the model says which tasks it has)."""
    out = model(x)
    return {t: get_task(t).loss(o, get_task(t).target(x, y)) for t, o in out.items()}


def task_gradients(
    losses: dict[str, torch.Tensor], params: list[nn.Parameter]
) -> dict[str, list[torch.Tensor | None]]:
    """Each task's gradient on every parameter (None where the task does not reach it)."""
    return {
        t: list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))
        for t, loss in losses.items()
    }


def shared_indices(grads: dict[str, list[torch.Tensor | None]]) -> list[int]:
    """The parameters more than one task's gradient reaches: read from the graph, not a config."""
    per_task = list(grads.values())
    return [i for i in range(len(per_task[0])) if sum(g[i] is not None for g in per_task) > 1]


def build_step(
    model: nn.Module, optimizer: Any, *, combine: Combine, generator: torch.Generator
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """The one step of a run: losses, the gradient (summed, or PCGrad on the shared parameters), the update."""
    params = list(model.parameters())  # each shared tensor once

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        losses = task_losses(model, x, y)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        if combine == "equal" or len(losses) < 2:
            total.backward()  # equal weights: autograd sums the tasks' gradients on shared tensors
        else:
            grads = task_gradients(losses, params)
            shared = shared_indices(grads)
            for i, p in enumerate(params):  # heads: their own task's gradient
                if i not in shared:
                    p.grad = sum(g[i] for g in grads.values() if g[i] is not None)
            if shared:
                flat = [torch.cat([g[i].reshape(-1) for i in shared]) for g in grads.values()]
                combined = torch.stack(pcgrad(flat, generator=generator)).sum(dim=0)
                for i, chunk in zip(shared, combined.split([params[i].numel() for i in shared])):
                    params[i].grad = chunk.view_as(params[i]).clone()
        optimizer.step()
        return float(total.detach())

    return step


def layer_cosines(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Per shared layer, the cosine between the first two tasks' gradients (empty: nothing shared)."""
    named = list(model.named_parameters())
    losses = task_losses(model, x, y)
    if len(losses) < 2:
        return {}
    grads = task_gradients(losses, [p for _, p in named])
    first, second = list(grads.values())[:2]
    layers: dict[str, list[int]] = {}
    for i in shared_indices(grads):
        layers.setdefault(named[i][0].rpartition(".")[0], []).append(i)
    return {
        layer: cosine(torch.cat([first[i].reshape(-1) for i in ids]), torch.cat([second[i].reshape(-1) for i in ids]))
        for layer, ids in layers.items()
    }


PCGRAD_SEED = 7_919  # offset of PCGrad's generator from the run's seed


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
    """Validation metric and loss by task."""
    model.eval()
    out = model(x)
    model.train()
    metrics, losses = {}, {}
    for t, o in out.items():
        task = get_task(t)
        target = task.target(x, y)
        metrics[t], losses[t] = task.score(o, target), float(task.loss(o, target))
    return metrics, losses


def train_run(
    model: nn.Module,
    data: Dataset,
    *,
    optimizer: OptimizerConfig,
    schedule: ScheduleConfig,
    epochs: int,
    batch_size: int,
    seed: int,
    combine: Combine = "equal",
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[EpochRow]:
    """Train ``model`` on ``data``; yield a row after each epoch (and one for the start).

    Raises:
        Diverged: a step's loss was not finite, or exploded past the start's
            :func:`~dlopt_core.engine.records.divergence_limit`.
    """
    spec = get_optimizer(optimizer.name)
    opt = spec.build(list(model.named_parameters()), optimizer.lr, dict(optimizer.params), data.x_train.device)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / batch_size)
    factor = get_schedule(schedule.name).make(dict(schedule.params), Budget(epochs, steps_per_epoch))
    generator = torch.Generator().manual_seed(seed)
    # PCGrad draws its task order from a generator of its own: from the same one, a PCGrad run
    # would see other batches than an equal-weights run with the same seed.
    step_fn = build_step(model, opt, combine=combine, generator=torch.Generator().manual_seed(seed + PCGRAD_SEED))
    probe = (data.x_train[:PROBE_ROWS], data.y_train[:PROBE_ROWS])

    def row(epoch: int, step: int, train_loss: float | None, elapsed: float) -> EpochRow:
        if spec.train_eval_modes:  # schedule-free: evaluate at the averaged weights
            opt.eval()
        metrics, losses = evaluate(model, data.x_val, data.y_val)
        if spec.train_eval_modes:
            opt.train()
        factor.observe(sum(losses.values()))
        lr = opt.param_groups[0]["lr"]
        return EpochRow(epoch, step, train_loss, metrics, losses, elapsed, lr, layer_cosines(model, *probe))

    if spec.train_eval_modes:
        opt.train()
    yield row(0, 0, None, 0.0)
    step, elapsed, limit = 0, 0.0, math.inf
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator).to(data.x_train.device)
        batch_losses = []
        for start in range(0, n, batch_size):
            if should_stop():
                return
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor(step)
            idx = order[start : start + batch_size]
            began = time.perf_counter()
            loss = step_fn(data.x_train[idx], data.y_train[idx])
            elapsed += time.perf_counter() - began
            step += 1
            if step == 1:
                limit = divergence_limit(loss)
            if not math.isfinite(loss) or loss > limit:
                raise Diverged(step, loss)
            batch_losses.append(loss)
        yield row(epoch, step, sum(batch_losses) / len(batch_losses), elapsed)
