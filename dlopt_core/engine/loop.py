"""The training loop. A run is an iterator of records; stopping is closing the iterator."""

from __future__ import annotations

import math
from time import perf_counter
from collections.abc import Iterator
from typing import Literal, NamedTuple

import torch

from dlopt_core.config import RunConfig
from dlopt_core.catalog.datasets import Dataset, load_dataset
from dlopt_core.device import resolve_device
from dlopt_core.catalog.models import build_model, loss_fn
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.schedules import Budget, get_schedule

Status = Literal["running", "finished", "diverged"]


class Record(NamedTuple):
    """One point of a run. Evaluation records also carry train/validation metrics.

    ``train_loss`` is the mean mini-batch loss since the previous evaluation (at step 0, the
    loss on the whole train set); ``val_metric`` is accuracy or R^2. A NamedTuple because
    one is made every step: it is several times cheaper to create than a frozen dataclass.
    """

    step: int
    epoch: float
    samples: int
    wall_time: float
    lr: float
    batch_loss: float | None
    train_loss: float | None = None
    val_loss: float | None = None
    val_metric: float | None = None
    status: Status = "running"

    @property
    def is_eval(self) -> bool:
        return self.val_loss is not None


def load_run_data(config: RunConfig) -> Dataset:
    """The run's data set on the run's device."""
    return load_dataset(
        config.data.name,
        config.data.options,
        val_fraction=config.data.val_fraction,
        split_seed=config.data.split_seed,
        device=resolve_device(config.device),
    )


def steps_per_epoch(config: RunConfig, n_train: int) -> int:
    """Optimizer steps in one pass over ``n_train`` samples (the last batch may be short)."""
    batch = config.batch_size or n_train
    return math.ceil(n_train / min(batch, n_train))


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Dataset, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and metric (accuracy, or R^2 for regression) of ``model`` on ``x, y``."""
    out = model(x)
    loss = float(loss_fn(data)(out, y))
    if data.task == "classification":
        metric = float((out.argmax(dim=1) == y).float().mean())
    else:
        residual = torch.sum((out.squeeze(-1) - y) ** 2)
        metric = float(1 - residual / torch.sum((y - y.mean()) ** 2))
    return loss, metric


def run(config: RunConfig, *, data: Dataset | None = None) -> Iterator[Record]:
    """Train ``config``, yielding a record after every step and after every evaluation.

    Evaluation happens before the first step and after every epoch. A non-finite loss ends
    the run with a ``diverged`` record at that step.
    """
    data = data if data is not None else load_run_data(config)
    spec = get_optimizer(config.optimizer.name)
    model = build_model(config.model, data, config.seed)
    optimizer = spec.build(
        list(model.named_parameters()),
        config.optimizer.lr,
        config.optimizer.params,
        data.x_train.device,
    )
    criterion = loss_fn(data)
    n_train = len(data.x_train)
    batch = min(config.batch_size or n_train, n_train)
    budget = Budget(config.epochs, steps_per_epoch(config, n_train))
    lr_factor = get_schedule(config.schedule.name).make(config.schedule.params, budget)
    generator = torch.Generator().manual_seed(config.seed)

    def set_mode(train: bool) -> None:
        model.train(train)
        if spec.train_eval_modes:  # schedule-free keeps two points: train at one, eval at the other
            optimizer.train() if train else optimizer.eval()

    def eval_record(step: int, samples: int, lr: float, train_loss: float) -> Record:
        set_mode(False)
        val_loss, val_metric = evaluate(model, data, data.x_val, data.y_val)
        set_mode(True)
        ok = math.isfinite(val_loss) and math.isfinite(train_loss)
        return Record(
            step, step / budget.steps_per_epoch, samples, spent(), lr, None,
            train_loss, val_loss, val_metric, "running" if ok else "diverged",
        )

    # wall_time counts this run's own work only: time suspended at a yield is excluded, so
    # runs interleaved in one comparison report what each would take alone.
    elapsed, clock = 0.0, perf_counter()

    def spent() -> float:
        return elapsed + perf_counter() - clock

    step = samples = 0
    last_factor = 1.0  # every group starts at its initial lr
    lr = config.optimizer.lr * lr_factor(0)
    set_mode(False)
    initial_train_loss, _ = evaluate(model, data, data.x_train, data.y_train)
    rec = eval_record(0, 0, lr, initial_train_loss)
    elapsed = rec.wall_time
    yield rec
    clock = perf_counter()

    on_device = data.x_train.device
    for epoch in range(config.epochs):
        order = torch.randperm(n_train, generator=generator).to(on_device) if batch < n_train else None
        loss_sum = 0.0
        for i in range(budget.steps_per_epoch):
            if order is None:
                xb, yb = data.x_train, data.y_train
            else:
                idx = order[i * batch : (i + 1) * batch]
                xb, yb = data.x_train[idx], data.y_train[idx]
            factor = lr_factor(step)
            if factor != last_factor:  # constant stretches skip the per-group writes
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
                lr, last_factor = config.optimizer.lr * factor, factor

            if spec.needs_closure:

                def closure() -> torch.Tensor:
                    optimizer.zero_grad()
                    loss = criterion(model(xb), yb)
                    loss.backward()
                    return loss

                loss = optimizer.step(closure)
            else:
                optimizer.zero_grad()
                loss = criterion(model(xb), yb)
                loss.backward()
                optimizer.step()

            # .item() is a device sync; it is also how divergence is caught at its exact step.
            value = loss.item()
            step += 1
            samples += len(yb)
            loss_sum += value
            elapsed += perf_counter() - clock
            status: Status = "running" if math.isfinite(value) else "diverged"
            yield Record(step, step / budget.steps_per_epoch, samples, elapsed, lr, value, status=status)
            if status == "diverged":
                return
            clock = perf_counter()

        rec = eval_record(step, samples, lr, loss_sum / budget.steps_per_epoch)
        elapsed = rec.wall_time
        lr_factor.observe(rec.val_loss if math.isfinite(rec.val_loss or math.nan) else math.inf)
        if rec.status == "running" and epoch == config.epochs - 1:
            rec = rec._replace(status="finished")
        yield rec
        if rec.status != "running":
            return
        clock = perf_counter()
