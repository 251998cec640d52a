"""The training loop. A run is an iterator of records; stopping is closing the iterator."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from dlopt_core.catalog.augmentations import BatchInfo, compose, get_augmentation
from dlopt_core.catalog.datasets import Dataset, load_dataset, split_sizes
from dlopt_core.catalog.models import build_model, loss_fn
from dlopt_core.catalog.optimizers import ParamGroup, get_optimizer
from dlopt_core.catalog.schedules import get_schedule
from dlopt_core.catalog.reductions import Reduced, reduce_arrays
from dlopt_core.config import DataConfig, ReduceConfig, RunConfig
from dlopt_core.device import resolve_device, use_determinism
from dlopt_core.engine.budget import StepBudget, step_budget
from dlopt_core.engine.records import Record, Status, divergence_limit
from dlopt_core.engine.step import GradEvals, StepHooks, build_step
from dlopt_core.engine.stopwatch import Stopwatch, training_clock

# Module-level names: an enum member lookup costs ~0.1 us, and these are read every step.
_RUNNING, _DIVERGED = Status.RUNNING, Status.DIVERGED

__all__ = [
    "Record", "Status", "augmented", "data_key", "evaluate", "load_run_data", "reduced_split", "run", "run_budget",
    "state_of",
]


def load_run_data(config: RunConfig) -> Dataset:
    """The run's data set on the run's device (its training set reduced, if the run says so)."""
    data = load_dataset(
        config.data.name,
        config.data.options,
        val_fraction=config.data.val_fraction,
        split_seed=config.data.split_seed,
        device=resolve_device(config.device),
    )
    if config.reduce is None:
        return data
    r = reduced_split(config)
    device = data.x_train.device

    def put(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(a, dtype=like.dtype, device=device)

    return replace(
        data, x_train=put(r.x_train, data.x_train), y_train=put(r.y_train, data.y_train),
        x_val=put(r.x_val, data.x_val), y_val=put(r.y_val, data.y_val),
        # Fewer features (PCA) are no longer an image.
        image_shape=data.image_shape if r.x_train.shape[1] == data.n_features else None,
    )


def data_key(config: RunConfig) -> str:
    """What makes two runs' data the same: the data set, its split and any reduction."""
    return config.data.model_dump_json() + (config.reduce.model_dump_json() if config.reduce else "")


def reduced_split(config: RunConfig) -> Reduced:
    """The run's training data as its reduction leaves it, with the sizes (stored and original).

    Drawn with the data's split seed, not the run's: the reduced set is part of the data, the
    same for every run of a comparison (which trains them all on one data set), as the split is.
    """
    assert config.reduce is not None
    return _reduced(config.data.model_dump_json(), config.reduce.model_dump_json())


# A data-reduction sweep has ~20 variants, each read on every redraw of the page.
@functools.lru_cache(maxsize=64)
def _reduced(data_json: str, reduce_json: str) -> Reduced:
    # Cached: k-means takes seconds, and every run of a comparison asks.
    data_cfg, reduce_cfg = DataConfig.model_validate_json(data_json), ReduceConfig.model_validate_json(reduce_json)
    data = load_dataset(
        data_cfg.name, data_cfg.options, val_fraction=data_cfg.val_fraction, split_seed=data_cfg.split_seed,
        device=torch.device("cpu"),
    )
    return reduce_arrays(
        reduce_cfg.name, reduce_cfg.params, data.x_train.numpy(), data.y_train.numpy(), data.x_val.numpy(),
        data.y_val.numpy(), task=data.task, seed=data_cfg.split_seed,
    )


def run_budget(config: RunConfig) -> StepBudget:
    """The run's step budget read from its config, without making or loading its data (its
    training rows are what its reduction keeps, if it has one)."""
    reduce = config.reduce.model_dump_json() if config.reduce is not None else ""
    return step_budget(config, _train_rows(config.data.model_dump_json(), reduce))


@functools.lru_cache(maxsize=1024)
def _train_rows(data_json: str, reduce_json: str) -> int:
    # Cached by the data: a sweep asks for each of its thousands of runs, over a few data sets.
    if reduce_json:
        return _reduced(data_json, reduce_json).n_train
    data = DataConfig.model_validate_json(data_json)
    return split_sizes(data.name, dict(data.options), data.val_fraction)[0]


# Weights ride on evaluation records only for models this small (a 64-wide MLP on moons has
# 322 parameters; 512/512 had 1 MB per record).
MAX_WEIGHTS = 20_000


def wants_weights(data: Dataset, model: torch.nn.Module) -> bool:
    """Whether evaluations can carry the weights: 2-D classification, where a boundary can be drawn."""
    return (
        data.task == "classification" and data.n_features == 2 and data.image_shape is None
        and sum(p.numel() for p in model.parameters()) <= MAX_WEIGHTS
    )


def weights_of(model: torch.nn.Module) -> dict[str, Any]:
    """A copy of the model's state as numpy arrays (it travels between processes)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def state_of(model: torch.nn.Module) -> dict[str, Any]:
    """The model's final weights for its observers (storage): :func:`weights_of`'s NumPy copies.

    NumPy, not tensors: a record from a forked engine process travels through a pipe, where
    torch would hand a tensor over as shared memory that dies with the process.
    """
    return weights_of(model)


def augmented(config: RunConfig, data: Dataset, hooks: StepHooks) -> StepHooks:
    """``hooks`` with the run's augmentations first (in their order), then any transform of its own."""
    if not config.augment:
        return hooks
    info = BatchInfo(data.image_shape, data.n_classes if data.task == "classification" else 0)
    made = [get_augmentation(a.name).make(a.params, info) for a in config.augment]
    return replace(hooks, batch_transform=compose([*made, *filter(None, [hooks.batch_transform])]))


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


def _freezer(model: torch.nn.Module, groups: Sequence[ParamGroup] | None) -> Callable[[int], None]:
    """``freeze(epoch)``: each grouped parameter's ``requires_grad`` as its group says for ``epoch``."""
    if groups is None:
        return lambda epoch: None
    params = dict(model.named_parameters())
    members = [(g, [params[n] for n in g.params]) for g in groups]

    def freeze(epoch: int) -> None:
        for group, tensors in members:
            for p in tensors:
                p.requires_grad_(group.trainable_at(epoch))

    return freeze


def _is_config_model(model: torch.nn.Module, config: RunConfig, data: Dataset) -> bool:
    fresh = build_model(config.model, data, config.seed).state_dict()
    state = model.state_dict()
    return state.keys() == fresh.keys() and all(state[k].shape == fresh[k].shape for k in fresh)


def run(
    config: RunConfig, *, data: Dataset | None = None, hooks: StepHooks = StepHooks(),
    train_loss: bool = True, weights: bool = False, model: torch.nn.Module | None = None,
    groups: Sequence[ParamGroup] | None = None,
) -> Iterator[Record]:
    """Train ``config``, yielding a record after every step and after every evaluation.

    ``model``: train this model (as it is: pruned, say) instead of building ``config.model``
    from the seed; it is trained in place, so the caller holds the trained weights afterwards.
    ``groups``: a :class:`ParamGroup` for every parameter of the model (an lr multiplier, and
    the epoch it starts to train; frozen parameters get no gradient and no optimizer state).

    Evaluation (train and validation sets) happens before the first step and after every
    epoch. A non-finite loss ends the run with a ``diverged`` record at that step. Records'
    ``wall_time`` counts the steps only: not the set-up, not the evaluations.
    """
    data = data if data is not None else load_run_data(config)
    spec = get_optimizer(config.optimizer.name)
    device = data.x_train.device
    # Final weights go with the run only when they are ``config.model``'s: a given model that was
    # pruned (masks, or fewer units) would be stored as weights its config cannot load.
    keep_state = model is None or _is_config_model(model, config, data)
    # A given model trains where the data is (in place: .to moves a module's own parameters).
    model = model.to(device) if model is not None else build_model(config.model, data, config.seed)
    watch = Stopwatch(training_clock(device))
    counted = GradEvals() if spec.needs_closure else None
    boundary = weights and wants_weights(data, model)
    measure_train = train_loss
    use_determinism(device, config.deterministic)
    optimizer = spec.build(
        list(model.named_parameters()), config.optimizer.lr, config.optimizer.params, device, groups=groups
    )
    freeze = _freezer(model, groups)
    step_fn = build_step(
        model, optimizer, loss_fn(data), needs_closure=spec.needs_closure, hooks=augmented(config, data, hooks),
        precision=config.precision, grad_clip=config.grad_clip, device_type=device.type, seed=config.seed,
        grad_evals=counted,
    )
    budget = step_budget(config, len(data.x_train))
    n_train, batch = budget.n_train, budget.batch
    lr_factor = get_schedule(config.schedule.name).make(config.schedule.params, budget.schedule)
    generator = torch.Generator().manual_seed(config.seed)

    def set_mode(train: bool) -> None:
        model.train(train)
        if spec.train_eval_modes:  # schedule-free keeps two points: train at one, eval at the other
            optimizer.train() if train else optimizer.eval()

    def eval_record(step: int, samples: int, lr: float, running_loss: float | None) -> Record:
        seconds = watch.stop()
        set_mode(False)
        # The train loss measured as the validation loss is (eval mode, one point in time),
        # so the two curves can be compared; the running batch loss is a curve of its own.
        train_loss = evaluate(model, data, data.x_train, data.y_train)[0] if measure_train else None
        val_loss, val_metric = evaluate(model, data, data.x_val, data.y_val)
        set_mode(True)
        # Written so NaN fails too; inf before the first evaluation sets the limit.
        ok = val_loss < limit and (train_loss is None or train_loss < limit)
        return Record(
            step, step / budget.steps_per_epoch, samples, seconds, lr, None,
            train_loss, val_loss, val_metric, Status.RUNNING if ok else Status.DIVERGED,
            running_loss=running_loss, grad_evals=counted.n if counted is not None else None,
            weights=weights_of(model) if boundary else None,
        )

    step = samples = 0
    last_factor = 1.0  # every group starts at its initial lr
    lr = config.optimizer.lr * lr_factor(0)
    limit = math.inf
    first = eval_record(0, 0, lr, None)
    # From the starting validation loss: measured in every run (the train loss may not be).
    limit = divergence_limit(first.val_loss if first.val_loss is not None else math.inf)
    yield first

    for epoch in range(config.epochs):
        freeze(epoch)
        watch.start()  # the epoch's data order is training work too
        order = torch.randperm(n_train, generator=generator).to(device) if batch < n_train else None
        watch.stop()
        loss_sum = 0.0
        epoch_samples = 0
        for i in range(budget.steps_per_epoch):
            # Timed from here to the step's record: an evaluation, or the wait while a consumer
            # handles a record, is never counted.
            watch.start()
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

            # .item() is a device sync; it is also how divergence is caught at its exact step.
            value = step_fn(xb, yb).item()
            step += 1
            n = yb.shape[0]  # len() of a tensor is a Python-level call; this runs every step
            samples += n
            epoch_samples += n
            # Weighted by batch size: a short last batch must not count as much as a full one.
            loss_sum += value * n
            status = _RUNNING if value < limit else _DIVERGED  # NaN compares false: diverged too
            yield Record(
                step, step / budget.steps_per_epoch, samples, watch.stop(), lr, value, status=status,
                grad_evals=counted.n if counted is not None else None,
            )
            if status is _DIVERGED:
                return

        rec = eval_record(step, samples, lr, loss_sum / epoch_samples)
        lr_factor.observe(rec.val_loss if math.isfinite(rec.val_loss or math.nan) else math.inf)
        if rec.status is Status.RUNNING and epoch == config.epochs - 1:
            rec = rec._replace(status=Status.FINISHED, state=state_of(model) if keep_state else None)
        yield rec
        if rec.status is not Status.RUNNING:
            return
