"""The learning-rate range test (Leslie Smith's, as fastai's ``lr_find`` runs it).

A fresh model trains for a few hundred mini-batch steps while the learning rate grows
exponentially from ``lr_min`` to ``lr_max``; the loss of every step is recorded and smoothed.
The test stops when the smoothed loss explodes (above 4x its best) or is not finite. Three
suggestions are read from the smoothed curve: the steepest descent (slope against log10 lr),
fastai's "valley" rule, and the lr at the minimum divided by 10. One sweep's suggestion is
noisy, so the test runs once per seed and reports the median over seeds with the spread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.models import build_model, loss_fn
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import (
    OptimizerConfig,
    RunConfig,
    TrainingSetup,
    check_optimizer_fits,
    check_seeds,
    config_hash,
    flatten,
)
from dlopt_core.device import use_determinism
from dlopt_core.engine.loop import augmented, load_run_data
from dlopt_core.engine.step import StepHooks, build_step
from dlopt_core.experiments.events import Elapsed
from dlopt_core.runner.work import ConfigWork, Control, Emit

__all__ = [
    "SUGGESTIONS", "SUGGESTION_LABELS", "LRRangeConfig", "LRRangeCurve", "LRRangePoint", "LRRangeResult",
    "Suggestions", "lr_range_curve", "lr_range_steps", "minimum_over_10_lr", "run_lr_range", "smooth_losses",
    "steepest_lr", "suggest", "valley_lr",
]

# The three suggestions, in the order they are shown; the keys of the CLI's JSON.
SUGGESTIONS = ("steepest", "valley", "minimum_over_10")
SUGGESTION_LABELS = {"steepest": "steepest slope", "valley": "valley", "minimum_over_10": "minimum / 10"}
# fastai's lr_find reads its suggestions from the curve without its first tenth (the smoothed
# loss is still settling there) and without its last 5 points (the explosion).
SKIP_END = 5


class LRRangeConfig(TrainingSetup):
    """A range test of one optimizer on a setup, once per seed.

    The setup's ``epochs`` and ``schedule`` are not used: the test sets the lr of every step
    itself and runs ``steps`` steps, cycling over the training set as often as needed.
    Full-batch-only optimizers (L-BFGS, Rprop) step on the full batch whatever ``batch_size`` says.
    """

    optimizer: OptimizerConfig
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=10)
    steps: int = Field(200, ge=20, le=10_000)
    lr_min: float = Field(1e-7, gt=0.0, le=1e3, allow_inf_nan=False)
    lr_max: float = Field(10.0, gt=0.0, le=1e3, allow_inf_nan=False)
    beta: float | None = Field(
        None, ge=0.0, lt=1.0,
        description="smoothing of the loss (exponential moving average); None: a window of half a decade of lr",
    )
    explode_factor: float = Field(
        4.0, gt=1.0, description="stop when the smoothed loss exceeds this x its best; inf: only when not finite"
    )

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.lr_min >= self.lr_max:
            raise ValueError(f"lr_min: must be below lr_max, got {self.lr_min:g} >= {self.lr_max:g}")
        # The slopes are taken against log10(lr): rates that barely differ give no slope to read.
        if self.lr_max < 10 * self.lr_min:
            raise ValueError(
                f"lr_max: must be at least 10x lr_min (a range test spans decades), got {self.lr_min:g} to {self.lr_max:g}"
            )
        # The test sets every lr: the one a spec carries must not make two equal tests differ,
        # nor the setup's epochs and schedule (left out of its flat keys, they read back as defaults).
        spec = get_optimizer(self.optimizer.name)
        object.__setattr__(self, "optimizer", self.optimizer.model_copy(update={"lr": spec.default_lr}))
        for unused in ("epochs", "schedule"):
            object.__setattr__(self, unused, TrainingSetup.model_fields[unused].get_default(call_default_factory=True))
        check_optimizer_fits(self.optimizer, batch_size=self.run_batch_size, precision=self.precision)
        return self

    @classmethod
    def from_setup(cls, setup: TrainingSetup, optimizer: OptimizerConfig, **options: Any) -> LRRangeConfig:
        """A range test on ``setup`` (a run's, a comparison's or a form's); ``options``: seeds, steps, ..."""
        shared = setup.model_dump(include=set(TrainingSetup.model_fields))
        return cls.make(**shared, optimizer=optimizer, **options)

    @property
    def run_batch_size(self) -> int | None:
        """The batch size the test steps with (``None``: full batch)."""
        return None if get_optimizer(self.optimizer.name).full_batch_only else self.batch_size

    @property
    def smoothing(self) -> float:
        """The moving average's beta: ``beta``, or one whose window (1 / (1 - beta) steps) spans half
        a decade of lr, within 0.8-0.98.

        The average lags the raw loss by about its window, which moves every suggestion to a
        higher lr. fastai's fixed 0.98 is a 50-step window: with 200 steps over 8 decades it
        lagged two decades, and the steepest slope on digits + MLP + SGD read 1.19 where the
        raw losses fell fastest near 0.3 (half a decade: 0.52).
        """
        if self.beta is not None:
            return self.beta
        per_decade = self.steps / math.log10(self.lr_max / self.lr_min)
        return min(0.98, max(0.8, 1 - 2 / per_decade))

    def lrs(self) -> list[float]:
        """The rate of every step: ``steps`` log-spaced values from ``lr_min`` to ``lr_max``."""
        return [float(v) for v in np.geomspace(self.lr_min, self.lr_max, self.steps)]

    def run_config(self, seed: int) -> RunConfig:
        """The run whose model, data and batch order the test uses for ``seed``."""
        shared = self.model_dump(include=set(TrainingSetup.model_fields))
        return RunConfig.make(**{**shared, "batch_size": self.run_batch_size}, optimizer=self.optimizer, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """Flat keys (as MLflow params and the CLI's JSON), without what the test does not use:
        the epochs, the schedule and the optimizer's own lr."""
        unused = ("epochs", "schedule", "optimizer.lr")
        return {k: v for k, v in flatten(self).items() if k not in unused and not k.startswith("schedule.")}


class LRRangePoint(NamedTuple):
    """One step of a range test: its lr, the mini-batch loss and the smoothed loss so far."""

    lr: float
    loss: float
    smoothed: float
    exploded: bool = False  # this step's smoothed loss ended the test


@dataclass(frozen=True)
class Suggestions:
    """The three suggested learning rates; ``None`` where the curve is too short to say."""

    steepest: float | None
    valley: float | None
    minimum_over_10: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in SUGGESTIONS}


@dataclass(frozen=True)
class LRRangeCurve:
    """One seed's range test."""

    seed: int
    lrs: list[float]
    losses: list[float]  # the raw mini-batch losses
    smoothed: list[float]
    exploded: bool  # stopped early: the smoothed loss rose above explode_factor x its best, or was not finite
    suggestions: Suggestions
    seconds: float  # training time of this seed's test


@dataclass(frozen=True)
class LRRangeResult:
    """A range test over seeds: each seed's curve, and the suggestions across seeds."""

    config: LRRangeConfig
    curves: list[LRRangeCurve]
    suggestions: Suggestions  # the median over seeds (in log space) of each suggestion
    spread: dict[str, tuple[float, float] | None]  # lowest and highest over seeds, per suggestion
    elapsed_s: float

    @classmethod
    def from_curves(cls, config: LRRangeConfig, curves: Sequence[LRRangeCurve], elapsed_s: float) -> LRRangeResult:
        """Combine per-seed curves: the median and the range of each suggestion over seeds."""
        medians, spread = {}, {}
        for name in SUGGESTIONS:
            values = sorted(v for c in curves if (v := getattr(c.suggestions, name)) is not None)
            medians[name] = _log_median(values) if values else None
            spread[name] = (values[0], values[-1]) if values else None
        return cls(config, list(curves), Suggestions(**medians), spread, elapsed_s)

    def search_bounds(self) -> tuple[float, float] | None:
        """Search bounds for a study, read from the test; ``None`` when it suggested nothing.

        From a decade below the lowest suggestion of any seed to the highest rate at which a
        seed's loss bottomed out (minimum / 10, times 10): beyond that the loss already rose
        within a few hundred steps, and a whole training run's best lr is usually lower than
        a short sweep's, so the range reaches well below the suggestions. 3 significant digits.
        """
        lows = [s[0] for s in self.spread.values() if s is not None]
        if not lows:
            return None
        minimum = self.spread["minimum_over_10"]
        top = 10 * minimum[1] if minimum is not None else 10 * max(s[1] for s in self.spread.values() if s)
        low = max(float(f"{min(lows) / 10:.3g}"), self.config.lr_min)
        high = min(float(f"{top:.3g}"), self.config.lr_max)
        return (low, high) if low < high else None


def _log_median(ordered: list[float]) -> float:
    """The median of sorted rates; with an even count the geometric mean of the middle two,
    not their arithmetic mean: rates live on a log scale."""
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else math.sqrt(ordered[mid - 1] * ordered[mid])


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> np.ndarray:
    """An exponential moving average with bias correction (as fastai's ``AvgSmoothLoss``).

    Without the correction the average starts at 0 and climbs for ~1/(1-beta) steps, which
    would read as a loss falling steeply at the smallest rates.
    """
    out = np.empty(len(losses))
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def steepest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The lr where the smoothed loss falls fastest per decade of lr.

    The slope is taken against log10(lr), not the step index, so it means the same whatever
    the spacing of the rates (fastai's ``steep`` divides by the log-lr differences too).
    """
    slope = np.gradient(np.asarray(smoothed, dtype=float), np.log10(np.asarray(lrs, dtype=float)))
    return float(lrs[int(np.argmin(slope))])


def valley_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """fastai's "valley" rule: a point inside the longest valley of the curve.

    fastai/callback/schedule.py, ``valley`` (the default suggestion of ``Learner.lr_find``,
    developed by ESRI: https://forums.fast.ai/t/automated-learning-rate-suggester/44199/30).
    The valley is the longest strictly decreasing subsequence of the losses, ``lds[i]`` its
    length ending at point ``i``; it ends at the first point of greatest length and is taken
    to start ``lds`` points before. The suggestion sits ``int(s) + int(s / 2)`` points into
    it, ``s`` a third of its length: about halfway down, where the descent is steepest
    (fastai's notes call it "roughly 2/3 through"; this is their formula).
    """
    losses = np.asarray(smoothed, dtype=float)
    n = len(losses)
    lds = np.ones(n, dtype=int)
    # The same lengths as fastai's double loop, one vectorised comparison per point.
    for i in range(1, n):
        higher = losses[:i] > losses[i]
        if higher.any():
            lds[i] = lds[:i][higher].max() + 1
    max_end = int(np.argmax(lds))  # the first point of greatest length, as fastai's strict "<" keeps
    max_start = max_end - int(lds[max_end]) if lds[max_end] > 1 else 0
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    # fastai's start can be -1 (a valley from the very first point), which Python would read as
    # the last point, the explosion; the first point is what the rule means.
    return float(lrs[max(idx, 0)])


def minimum_over_10_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """A tenth of the lr at the lowest smoothed loss (fastai's ``minimum``): at the minimum itself
    the loss is about to rise, so a rate a decade lower is still safely on the descent."""
    return float(lrs[int(np.argmin(np.asarray(smoothed, dtype=float)))]) / 10


def suggest(
    lrs: Sequence[float], smoothed: Sequence[float], *, skip_start: int = 0, skip_end: int = SKIP_END
) -> Suggestions:
    """The three suggestions from a curve, leaving out ``skip_start`` first and ``skip_end`` last points.

    Points from the first non-finite loss on are dropped. When the trimmed curve is too short
    (the loss exploded almost at once), the whole finite curve is read; with fewer than two
    points there is no slope and nothing is suggested.
    """
    values = np.asarray(smoothed, dtype=float)
    finite = len(values) if np.isfinite(values).all() else int(np.argmin(np.isfinite(values)))
    lo, hi = skip_start, finite - skip_end
    if hi - lo < 3:
        lo, hi = 0, finite
    if hi - lo < 2:
        return Suggestions(None, None, None)
    x, y = list(lrs[lo:hi]), values[lo:hi]
    return Suggestions(steepest_lr(x, y), valley_lr(x, y), minimum_over_10_lr(x, y))


def lr_range_steps(config: LRRangeConfig, seed: int, *, data: Dataset | None = None) -> Iterator[LRRangePoint]:
    """Run ``config``'s range test for ``seed``, yielding a point after every step.

    The last point is the one whose smoothed loss exploded, if any. Closing the iterator
    stops the test.
    """
    run_cfg = config.run_config(seed)
    data = data if data is not None else load_run_data(run_cfg)
    spec = get_optimizer(config.optimizer.name)
    model = build_model(run_cfg.model, data, seed)
    device = data.x_train.device
    use_determinism(device, config.deterministic)
    base_lr = config.optimizer.lr
    optimizer = spec.build(list(model.named_parameters()), base_lr, config.optimizer.params, device)
    step_fn = build_step(
        model, optimizer, loss_fn(data), needs_closure=spec.needs_closure, precision=config.precision,
        grad_clip=config.grad_clip, device_type=device.type, seed=seed,
        hooks=augmented(run_cfg, data, StepHooks()),  # the setup's augmentation, as its runs train
    )
    model.train()
    if spec.train_eval_modes:
        optimizer.train()

    n_train = len(data.x_train)
    batch = min(run_cfg.batch_size or n_train, n_train)
    # Whole batches only: a short last batch has a noisier loss, a bump on the curve at every epoch.
    per_epoch = n_train // batch
    generator = torch.Generator().manual_seed(seed)
    order: torch.Tensor | None = None
    avg, best, beta = 0.0, math.inf, config.smoothing
    for i, lr in enumerate(config.lrs()):
        if batch < n_train and i % per_epoch == 0:
            order = torch.randperm(n_train, generator=generator).to(device)
        if order is None:
            xb, yb = data.x_train, data.y_train
        else:
            k = i % per_epoch
            idx = order[k * batch : (k + 1) * batch]
            xb, yb = data.x_train[idx], data.y_train[idx]
        # Every group scales with the main rate, as a schedule scales it: Muon's AdamW part
        # keeps its own ratio to the main lr.
        factor = lr / base_lr
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        loss = step_fn(xb, yb).item()
        avg = beta * avg + (1 - beta) * loss
        smoothed = avg / (1 - beta ** (i + 1))
        best = min(best, smoothed)
        exploded = not math.isfinite(smoothed) or smoothed > config.explode_factor * best
        yield LRRangePoint(lr, loss, smoothed, exploded)
        if exploded:
            return


def lr_range_curve(config: LRRangeConfig, seed: int, points: Sequence[LRRangePoint], seconds: float = 0.0) -> LRRangeCurve:
    """One seed's curve and its suggestions from the points of :func:`lr_range_steps`."""
    lrs = [p.lr for p in points]
    smoothed = [p.smoothed for p in points]
    return LRRangeCurve(
        seed=seed, lrs=lrs, losses=[p.loss for p in points], smoothed=smoothed,
        exploded=bool(points) and points[-1].exploded,
        suggestions=suggest(lrs, smoothed, skip_start=config.steps // 10),
        seconds=seconds,
    )


def run_lr_range(config: LRRangeConfig, *, data: Dataset | None = None) -> LRRangeResult:
    """Run the range test for every seed of ``config``; the result holds each curve and the suggestions.

    Args:
        config: the setup, the optimizer, the seeds and the lr range.
        data: the data set already loaded for ``config`` (one load serves every seed).
    """
    started = time.perf_counter()
    data = data if data is not None else load_run_data(config.run_config(config.seeds[0]))
    return LRRangeResult.from_curves(config, list(seed_curves(config, data)), time.perf_counter() - started)


def seed_curves(
    config: LRRangeConfig, data: Dataset, *, should_stop: Callable[[], bool] = lambda: False
) -> Iterator[LRRangeCurve]:
    """Each seed's range test in turn; ``should_stop`` is asked between steps."""
    for seed in config.seeds:
        t0 = time.perf_counter()
        points = []
        for point in lr_range_steps(config, seed, data=data):
            if should_stop():
                return
            points.append(point)
        yield lr_range_curve(config, seed, points, time.perf_counter() - t0)


def range_key(config: LRRangeConfig) -> str:
    """The job key of ``config``'s range test (the same in every process)."""
    return f"lr-range-{config_hash(config)}"


@dataclass(frozen=True)
class CurveMade:
    """One seed's range test ended."""

    curve: LRRangeCurve


class LRRangeWork(ConfigWork):
    """A range test as background work (:mod:`dlopt_core.runner`): each seed's curve reports as
    it ends, so a page draws the seeds done so far; Stop ends it between steps. It logs nothing
    to MLflow."""

    config: LRRangeConfig

    def __init__(self, config: LRRangeConfig) -> None:
        super().__init__(config)
        self.key = range_key(config)
        self.label = f"LR range test of {config.optimizer.label}"
        self.curves: list[LRRangeCurve] = []
        self.elapsed_s = 0.0

    @property
    def progress(self) -> float:
        return len(self.curves) / len(self.config.seeds)

    @property
    def result(self) -> LRRangeResult | None:
        """The test over the seeds done so far; ``None`` before the first."""
        return LRRangeResult.from_curves(self.config, self.curves, self.elapsed_s) if self.curves else None

    def run(self, emit: Emit, control: Control) -> None:
        started = time.perf_counter()
        data = load_run_data(self.config.run_config(self.config.seeds[0]))  # one load serves every seed
        for curve in seed_curves(self.config, data, should_stop=control.should_stop):
            emit(CurveMade(curve), urgent=True)
        emit(Elapsed(time.perf_counter() - started), urgent=True)

    def apply(self, event: CurveMade | Elapsed) -> None:
        """Take one event of :meth:`run` (in the server)."""
        match event:
            case CurveMade(curve):
                self.curves.append(curve)
            case Elapsed(seconds):
                self.elapsed_s = seconds
