"""The batched engine: K runs of one model shape trained as one stacked model.

Each parameter is one ``(K, ...)`` leaf; each run's own model keeps ``nn.Parameter`` views of
its slice (data and grad), and its own ``torch.optim`` optimizer steps those views. One
forward and one backward serve all K runs; every element-wise optimizer then behaves
exactly as in a single run. Activations are laid out ``(K, features, batch)``, which made
forward + backward 2-5x faster than ``(K * batch, features)`` on the 2-core CPU.

Every run keeps its own data order, initial weights, dropout masks, schedule, divergence
step and stop: the records equal the sequential engine's to float rounding.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.models import ACTIVATIONS, SeededDropout, build_model, get_model_spec
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.schedules import get_schedule
from dlopt_core.config import RunConfig
from dlopt_core.device import use_determinism
from dlopt_core.engine.budget import step_budget
from dlopt_core.engine.loop import state_of, wants_weights, weights_of
from dlopt_core.engine.records import Measures, Record, Status, divergence_limit
from dlopt_core.engine.sequential import failed_record
from dlopt_core.engine.step import AUTOCAST
from dlopt_core.engine.stopwatch import Stopwatch, training_clock

_RUNNING, _DIVERGED = Status.RUNNING, Status.DIVERGED
# Activations one evaluation chunk may hold (K runs x samples x widest layer): ~64 MB in fp32.
EVAL_ELEMENTS = 16_000_000
_ACTIVATION_TYPES = tuple({type(make()) for make in ACTIVATIONS.values()})


def layers_of(model: nn.Module) -> list[nn.Module] | None:
    """The model as a flat list of stackable layers, or ``None`` if it has another kind."""
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    ok = all(isinstance(m, (nn.Linear, SeededDropout, *_ACTIVATION_TYPES)) for m in layers)
    return layers if ok else None


def why_not_batched(config: RunConfig) -> str | None:
    """Why ``config`` must train on its own (``None``: it can join a batch)."""
    spec = get_optimizer(config.optimizer.name)
    if not spec.batchable:
        return f"{spec.label} cannot be batched exactly"
    if config.precision == "fp16":
        # One loss scaler per run would be needed; a shared one couples the runs' steps.
        return "fp16 loss scaling is per run"
    if not get_model_spec(config.model.name).stackable:
        return f"the {config.model.name} model has no stacked form"
    if config.augment:
        return "augmentation transforms each run's batches with its own random draws"
    return None



def _groups(configs: Sequence[RunConfig]) -> list[list[int]]:
    """Contiguous runs that may share one optimizer: the same optimizer config and schedule,
    an element-wise optimizer, and a schedule that does not follow each run's validation."""
    groups: list[list[int]] = []
    for k, c in enumerate(configs):
        if groups:
            prev = configs[groups[-1][-1]]
            shareable = (
                get_optimizer(c.optimizer.name).elementwise
                and not get_schedule(c.schedule.name).depends_on_validation
            )
            if shareable and (c.optimizer, c.schedule) == (prev.optimizer, prev.schedule):
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


@dataclass
class _Run:
    config: RunConfig
    model: nn.Module
    optimizer: Any
    train_eval_modes: bool
    generator: torch.Generator
    dropout: list[torch.Generator]
    lr_factor: Any
    last_factor: float = 1.0
    lr: float = 0.0
    loss_sum: float = 0.0
    samples: int = 0
    limit: float = math.inf  # a loss above it has diverged (set from the starting loss)


class StackedModel:
    """K models of one shape in one ``(K, P)`` leaf: row k holds run k's P parameters end to end.

    Each layer's weight and bias are ``(K, ...)`` views of it. Input and output are laid out
    ``(K, features, batch)``. An element-wise optimizer steps a run's whole row as one tensor
    (one kernel instead of one per parameter: the optimizer was most of a batched step).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        stacks = [layers_of(m) for m in models]
        if any(s is None for s in stacks):
            raise ValueError("only Linear, activation and dropout layers can be stacked")
        self.layers: list[nn.Module] = stacks[0]  # type: ignore[assignment]
        self._dropout_p = {j: m.p for j, m in enumerate(self.layers) if isinstance(m, SeededDropout)}
        per_run = [[p for _, p in m.named_parameters()] for m in models]
        self.shapes = [tuple(p.shape) for p in per_run[0]]
        sizes = [p.numel() for p in per_run[0]]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        self.flat = torch.stack([torch.cat([p.detach().flatten() for p in ps]) for ps in per_run])
        self.flat.requires_grad_()
        self.flat.grad = torch.zeros_like(self.flat)
        for k, params in enumerate(per_run):
            for p, (a, b), shape in zip(params, zip(self.offsets, self.offsets[1:]), self.shapes):
                # The run's own parameters become views of its row: an optimizer stepping them
                # moves the stacked storage in place, and reads the stacked grad.
                p.data, p.grad = self.flat.data[k, a:b].view(shape), self.flat.grad[k, a:b].view(shape)

    def flat_parameter(self, start: int, stop: int) -> nn.Parameter:
        """Runs ``start:stop``'s parameters as one tensor (1-D for one run), for element-wise optimizers."""
        view = nn.Parameter(torch.empty(0, device=self.flat.device, dtype=self.flat.dtype))
        rows = slice(start, stop) if stop - start > 1 else start
        view.data, view.grad = self.flat.data[rows], self.flat.grad[rows]  # type: ignore[index]
        return view

    @property
    def leaves(self) -> list[torch.Tensor]:
        return [self.flat]

    def zero_grad(self) -> None:
        # In place: the runs' parameters hold views of this grad.
        self.flat.grad.zero_()  # type: ignore[union-attr]

    def _tensors(self) -> list[torch.Tensor]:
        """Each parameter as a ``(K, ...)`` view of the leaf (made per pass, so autograd sees it)."""
        k = self.flat.shape[0]
        return [self.flat[:, a:b].view(k, *shape) for (a, b), shape in zip(zip(self.offsets, self.offsets[1:]), self.shapes)]

    def forward(self, x: torch.Tensor, masks: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """``x``: ``(K, in, B)``, or ``(in, B)`` shared by every run."""
        h, linear, tensors = x, 0, self._tensors()
        for j, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear):
                w, b = tensors[2 * linear], tensors[2 * linear + 1]  # named_parameters' order
                h = torch.baddbmm(b.unsqueeze(-1), w, h) if h.dim() == 3 else torch.matmul(w, h) + b.unsqueeze(-1)
                linear += 1
            elif isinstance(layer, SeededDropout):
                if masks is not None and j in masks:
                    h = h * masks[j] / (1 - layer.p)
            else:
                h = layer(h)
        return h

    def dropout_layers(self) -> dict[int, float]:
        return {j: p for j, p in self._dropout_p.items() if p > 0}


class BatchedEngine:
    """Trains runs that share data and model shape in one pass; a stream of ``(run, record)``.

    ``block`` steps are computed before their losses are read (1 on a CPU, more on a GPU,
    where reading a loss waits for the device): divergence is still found at its exact step,
    afterwards. ``wall_time`` of every record is the batched pass's own elapsed time.
    """

    def __init__(
        self, configs: Sequence[RunConfig], *, data: Dataset, block: int | None = None,
        measures: Measures = Measures(),
    ) -> None:
        if not configs:
            raise ValueError("no runs to batch")
        for c in configs:
            if reason := why_not_batched(c):
                raise ValueError(f"cannot batch {c.optimizer.label}: {reason}")
        first = configs[0]
        if any(
            (c.model, c.batch_size, c.epochs, c.precision, c.grad_clip)
            != (first.model, first.batch_size, first.epochs, first.precision, first.grad_clip)
            for c in configs
        ):
            raise ValueError("batched runs must share model, batch size, epochs, precision and clipping")
        self.data = data
        self.device = data.x_train.device
        self.measures = measures
        self.block = block or (32 if self.device.type == "cuda" else 1)
        self.budget = step_budget(first, len(data.x_train))
        self.n_train, self.batch = self.budget.n_train, self.budget.batch
        self.epochs, self.precision, self.grad_clip = first.epochs, first.precision, first.grad_clip
        use_determinism(self.device, first.deterministic)
        models = [build_model(c.model, data, c.seed) for c in configs]
        self.carry_weights = measures.weights if measures.weights and wants_weights(data, models[0]) else frozenset()
        self.stack = StackedModel(models)
        self.runs: list[_Run] = []
        self._failed: dict[int, Exception] = {}
        # (optimizer, its runs): one per run, or one per contiguous group of runs that differ
        # only in their seed, stepping their slices at once (fewer calls, the same updates).
        self._optimizers: list[tuple[Any, list[int]]] = []
        for members in _groups(configs):
            c = configs[members[0]]
            spec = get_optimizer(c.optimizer.name)
            named = (
                [("flat", self.stack.flat_parameter(members[0], members[-1] + 1))] if spec.elementwise
                else list(models[members[0]].named_parameters())
            )
            try:
                optimizer = spec.build(named, c.optimizer.lr, c.optimizer.params, self.device)
            except Exception as exc:  # these runs fail alone; their slices are never stepped
                traceback.print_exc()
                self._failed.update({k: exc for k in members})
                optimizer = None
            else:
                self._optimizers.append((optimizer, members))
            for k in members:
                model = models[k]
                dropout = [m.generator for m in model.modules() if isinstance(m, SeededDropout)]
                lr_factor = get_schedule(configs[k].schedule.name).make(configs[k].schedule.params, self.budget.schedule)
                self.runs.append(_Run(
                    configs[k], model, optimizer, spec.train_eval_modes, torch.Generator().manual_seed(configs[k].seed),
                    dropout, lr_factor, lr=configs[k].optimizer.lr * lr_factor(0),
                ))
        self._active = set(range(len(self.runs))) - set(self._failed)
        self._iter: Iterator[tuple[int, Record]] | None = None
        self.watch = Stopwatch()

    @property
    def active(self) -> list[int]:
        return sorted(self._active)

    def stop(self, index: int) -> bool:
        """End run ``index``: it is no longer stepped or reported."""
        if index not in self._active:
            return False
        self._end(index)
        return True

    def close(self) -> None:
        self._active.clear()

    def _end(self, index: int) -> None:
        self._active.discard(index)
        with torch.no_grad():  # keeps its slice finite, so the shared pass never meets inf/NaN
            for t in self.stack.leaves:
                t[index].zero_()

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        if self._iter is None:
            self._iter = self._train()
        return self._iter

    # --- evaluation -------------------------------------------------------------------

    def _set_modes(self, train: bool) -> None:
        for r in self.runs:
            r.model.train(train)
        for optimizer, members in self._optimizers:
            if self.runs[members[0]].train_eval_modes:
                optimizer.train() if train else optimizer.eval()

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Per-run loss and metric on ``x, y`` (shared by every run), in chunks of samples.

        Chunks bound the activations to K x chunk x width: all of a large train set through
        1,024 stacked models at once took 1.4 GB.
        """
        n = len(x)
        chunk = max(64, EVAL_ELEMENTS // max(1, len(self.runs) * self._widest()))
        loss_sum = metric_sum = None
        for start in range(0, n, chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            out = self.stack.forward(xb.T)  # (K, outputs, chunk)
            if self.data.task == "classification":
                target = yb.expand(out.shape[0], -1)
                loss = nn.functional.cross_entropy(out, target, reduction="none").sum(1)
                metric = (out.argmax(dim=1) == target).float().sum(1)
            else:
                residual = (out.squeeze(1) - yb) ** 2
                loss = metric = residual.sum(1)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            metric_sum = metric if metric_sum is None else metric_sum + metric
        assert loss_sum is not None and metric_sum is not None
        if self.data.task == "classification":
            return (loss_sum / n).tolist(), (metric_sum / n).tolist()
        # R^2 = 1 - residual sum / total sum of squares (the metric sums were the residuals).
        return (loss_sum / n).tolist(), (1 - metric_sum / torch.sum((y - y.mean()) ** 2)).tolist()

    def _widest(self) -> int:
        return max([self.data.n_features, *(m.out_features for m in self.stack.layers if isinstance(m, nn.Linear))])

    def _eval_records(
        self, step: int, samples: int, running: list[float] | None, final: bool
    ) -> list[tuple[int, Record]]:
        seconds = self.watch.stop()  # evaluation is not training time
        self._set_modes(False)
        train_loss: list[float | None] = (
            self._evaluate(self.data.x_train, self.data.y_train)[0] if self.measures.train_loss
            else [None] * len(self.runs)
        )
        val_loss, val_metric = self._evaluate(self.data.x_val, self.data.y_val)
        self._set_modes(True)
        out = []
        for k in self.active:
            r = self.runs[k]
            t = train_loss[k]
            ok = val_loss[k] < r.limit and (t is None or t < r.limit)  # NaN compares false
            status = Status.RUNNING if ok else Status.DIVERGED
            if status is Status.RUNNING and final:
                status = Status.FINISHED
            out.append((k, Record(
                step, step / self.budget.steps_per_epoch, samples, seconds, r.lr, None,
                train_loss[k], val_loss[k], val_metric[k], status,
                running_loss=running[k] if running is not None else None,
                weights=weights_of(r.model) if k in self.carry_weights else None,
                state=state_of(r.model) if status is Status.FINISHED else None,
            )))
        return out

    # --- training ---------------------------------------------------------------------

    def _loss(self, x: torch.Tensor, y: torch.Tensor, masks: dict[int, torch.Tensor] | None) -> torch.Tensor:
        dtype = AUTOCAST[self.precision]
        if dtype is None:
            out = self.stack.forward(x, masks)
        else:
            with torch.autocast(self.device.type, dtype=dtype):
                out = self.stack.forward(x, masks)
            out = out.float()  # the loss in fp32, as a single run computes it
        if self.data.task == "classification":
            return nn.functional.cross_entropy(out, y, reduction="none").mean(1)
        return ((out.squeeze(1) - y) ** 2).mean(1)

    def _masks(self, width_of: dict[int, int], rows: int) -> dict[int, torch.Tensor] | None:
        layers = self.stack.dropout_layers()
        if not layers:
            return None
        masks = {}
        for n, (j, p) in enumerate(layers.items()):
            # Each run draws its mask from its own generator, in a single run's (batch, width) shape.
            keep = [torch.rand((rows, width_of[j]), generator=r.dropout[n]) >= p for r in self.runs]
            masks[j] = torch.stack(keep).transpose(1, 2).to(self.device)
        return masks

    def _clip(self) -> None:
        if self.grad_clip is None:
            return
        grad = self.stack.flat.grad
        norms = grad.pow(2).sum(1).sqrt()  # type: ignore[union-attr]
        # torch.nn.utils.clip_grad_norm_'s rule, per run (a row is all of a run's gradient).
        coef = (self.grad_clip / (norms + 1e-6)).clamp(max=1.0)
        grad.mul_(coef.unsqueeze(1))  # type: ignore[union-attr]

    def _widths(self) -> dict[int, int]:
        widths, width = {}, self.data.n_features
        for j, layer in enumerate(self.stack.layers):
            if isinstance(layer, nn.Linear):
                width = layer.out_features
            widths[j] = width
        return widths

    def _lrs(self) -> list[float]:
        return [r.lr for r in self.runs]

    def _step(self, x: torch.Tensor, y: torch.Tensor, rows: int, widths: dict[int, int], step: int) -> torch.Tensor:
        """One optimizer step of every active run; the K losses, not yet read."""
        for r in self.runs:
            factor = r.lr_factor(step)
            if factor != r.last_factor and r.optimizer is not None:  # constant stretches skip the writes
                for group in r.optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
                r.lr, r.last_factor = r.config.optimizer.lr * factor, factor
        self.stack.zero_grad()
        losses = self._loss(x, y, self._masks(widths, rows))
        # One backward for all: run k's loss reaches only run k's slice of each leaf.
        losses.sum().backward()
        self._clip()
        active = self._active
        for optimizer, members in self._optimizers:
            # A group steps while any of its runs is active; an ended run's slice moving on
            # is never reported (element-wise updates keep it apart from the others).
            if len(members) == 1 and members[0] in active or len(members) > 1 and not active.isdisjoint(members):
                optimizer.step()
        return losses.detach()

    def _train(self) -> Iterator[tuple[int, Record]]:
        for k, exc in self._failed.items():
            yield k, failed_record(exc)
        data, runs, K = self.data, self.runs, len(self.runs)
        spe, batch = self.budget.steps_per_epoch, self.batch
        widths = self._widths()
        # Chosen here, not when built: a forked part reads its clock in the child.
        self.watch = Stopwatch(training_clock(self.device))
        for k, rec in self._eval_records(0, 0, None, final=False):
            runs[k].limit = divergence_limit(rec.val_loss if rec.val_loss is not None else math.inf)
            yield k, rec
        step = samples = 0
        elapsed = 0.0
        x_all = data.x_train
        self.watch.start()
        for epoch in range(self.epochs):
            if not self._active:
                return
            if batch < self.n_train:
                orders = torch.stack([torch.randperm(self.n_train, generator=r.generator) for r in runs]).to(self.device)
            for r in runs:
                r.loss_sum, r.samples = 0.0, 0
            for first in range(0, spe, self.block):
                pending: list[tuple[torch.Tensor, list[float], int]] = []
                for i in range(first, min(first + self.block, spe)):
                    if batch < self.n_train:
                        idx = orders[:, i * batch : (i + 1) * batch]
                        x, y = x_all[idx].transpose(1, 2), data.y_train[idx]
                    else:
                        x, y = x_all.T, data.y_train.expand(K, -1)
                    rows = y.shape[1]
                    pending.append((self._step(x, y, rows, widths, step + len(pending)), self._lrs(), rows))
                values = torch.stack([p[0] for p in pending]).tolist()  # the block's one device sync
                before, elapsed = elapsed, self.watch.stop()
                for n, (row, (_, lrs, rows)) in enumerate(zip(values, pending)):
                    step += 1
                    samples += rows
                    # Inside a block only its end was timed: the steps share it evenly.
                    at = before + (elapsed - before) * (n + 1) / len(pending)
                    for k in self.active:
                        if k not in self._active:  # stopped by the consumer meanwhile
                            continue
                        value, r = row[k], runs[k]
                        r.loss_sum += value * rows
                        r.samples += rows
                        status = _RUNNING if value < r.limit else _DIVERGED
                        yield k, Record(step, step / spe, samples, at, lrs[k], value, status=status)
                        if status is _DIVERGED:
                            self._end(k)
                if not self._active:
                    return
                self.watch.start()
            final = epoch == self.epochs - 1
            for k, rec in self._eval_records(step, samples, [r.loss_sum / max(1, r.samples) for r in runs], final):
                if k not in self._active:
                    continue
                runs[k].lr_factor.observe(rec.val_loss if math.isfinite(rec.val_loss or math.nan) else math.inf)
                yield k, rec
                if rec.status is not Status.RUNNING:
                    self._end(k)
            self.watch.start()
