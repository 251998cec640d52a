"""Learning-rate schedules as specs: a multiplier of the base lr per optimizer step.

Schedules are applied by writing ``group["lr"] = group["initial_lr"] * factor(step)``, which
works the same for every optimizer in the registry (including combined ones), and lets the
whole curve be drawn before training with :func:`lr_curve`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlopt_core.catalog.hyperparams import HyperParam, lookup


@dataclass(frozen=True)
class Budget:
    """How long a run trains: the schedule is laid out over these steps."""

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


class LRFactor:
    """A stateless schedule: ``factor(step)``; ``observe`` is for validation-driven ones."""

    def __init__(self, fn: Callable[[int], float]) -> None:
        self._fn = fn

    def __call__(self, step: int) -> float:
        return self._fn(step)

    def observe(self, val_loss: float) -> None:
        """Called after each evaluation; stateless schedules ignore it."""


class PlateauFactor(LRFactor):
    """Multiply the lr by ``factor`` after ``patience`` evaluations without improvement."""

    def __init__(self, factor: float, patience: int, min_factor: float) -> None:
        super().__init__(lambda step: self.current)
        self.current = 1.0
        self._factor, self._patience, self._min = factor, patience, min_factor
        self._best = math.inf
        self._bad = 0

    def observe(self, val_loss: float) -> None:
        # Relative threshold as in torch's ReduceLROnPlateau (mode="min", threshold=1e-4).
        if val_loss < self._best * (1 - 1e-4):
            self._best, self._bad = val_loss, 0
            return
        self._bad += 1
        if self._bad > self._patience:
            self.current = max(self.current * self._factor, self._min)
            self._bad = 0


Maker = Callable[[dict[str, Any], Budget], LRFactor]
# A non-blocking remark on a setting that is valid but will not do what a user expects.
Note = Callable[[dict[str, Any], Budget], str | None]


@dataclass(frozen=True)
class ScheduleSpec:
    """A named schedule with its hyperparameters; defaults fit every budget (lengths are shares of it)."""

    name: str
    label: str
    make: Maker
    hyperparams: tuple[HyperParam, ...] = ()
    note: Note | None = None
    # Settings an older version had: old name -> what to use instead (an old link says so).
    renamed: dict[str, str] = field(default_factory=dict)
    description: str = ""
    depends_on_validation: bool = False
    # The lr at step t of T, eta_0 the optimizer's lr: one LaTeX equation per line (KaTeX in
    # the app; every line also parses as matplotlib mathtext, which a test checks).
    formula: tuple[str, ...] = ()
    shines: str = ""  # one line: when to pick it


def _cosine(progress: float, low: float) -> float:
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def drop_steps(drops: int, total_steps: int) -> list[int]:
    """The steps where step decay multiplies the lr by gamma: ``drops`` evenly over the budget.

    In fractions of the budget, so every budget fits (a one-epoch run still decays); drops
    that fall on the same step of a very short run stack there.
    """
    return [max(1, round(total_steps * k / (drops + 1))) for k in range(1, drops + 1)]


def _step(p: dict[str, Any], b: Budget) -> LRFactor:
    at = np.asarray(drop_steps(p["drops"], b.total_steps))
    return LRFactor(lambda s: p["gamma"] ** int(np.searchsorted(at, s, side="right")))


def _exponential(p: dict[str, Any], b: Budget) -> LRFactor:
    return LRFactor(lambda s: p["gamma"] ** (s / b.steps_per_epoch))


def _cosine_schedule(p: dict[str, Any], b: Budget) -> LRFactor:
    return LRFactor(lambda s: _cosine(s / b.total_steps, p["min_factor"]))


def _warmup_cosine(p: dict[str, Any], b: Budget) -> LRFactor:
    warm = max(1, round(p["warmup"] * b.total_steps))
    rest = max(1, b.total_steps - warm)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return _cosine((s - warm) / rest, p["min_factor"])

    return LRFactor(factor)


def _anneal(start: float, end: float, pct: float) -> float:
    # torch's OneCycleLR._annealing_cos, operation for operation.
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _one_cycle(p: dict[str, Any], b: Budget) -> LRFactor:
    # torch's OneCycleLR (cos, two phases) step for step: the rise ends at step
    # pct_start * total - 1 (a float, below 0 when the rise is shorter than one step) and the
    # fall reaches start / final_div_factor at the last step.
    peak = float(p["pct_start"] * b.total_steps) - 1
    last = b.total_steps - 1
    start = 1 / p["div_factor"]
    end = start / p["final_div_factor"]

    def factor(s: int) -> float:
        if s <= peak:
            # peak == 0: the rise ends at step 0, which is the peak (torch divides 0 by 0 there).
            return _anneal(start, 1.0, s / peak if peak > 0 else 1.0)
        # pct_start < 1 keeps peak < last; steps past the budget stay at the end.
        return _anneal(1.0, end, min((s - peak) / (last - peak), 1.0))

    return LRFactor(factor)


def _plateau(p: dict[str, Any], b: Budget) -> LRFactor:
    return PlateauFactor(p["factor"], p["patience"], p["min_factor"])


def _plateau_note(p: dict[str, Any], b: Budget) -> str | None:
    # Not an error: the run is still a fair constant-lr run, but the user should know why.
    # The first evaluation sets the best; a drop needs patience + 1 evaluations without
    # improvement after it, and one after the last evaluation moves no step.
    if p["patience"] + 2 >= b.epochs:
        return (
            f"patience {p['patience']} waits for {p['patience'] + 1} evaluations without improvement after "
            f"the first; a budget of {b.epochs} epoch{'s' if b.epochs != 1 else ''} evaluates {b.epochs} "
            "time(s), so the lr cannot drop before the end. Lower the patience or train longer."
        )
    return None


_MIN = HyperParam("min_factor", 0.0, 0.0, 1.0, help="final lr as a fraction of the base lr")

SCHEDULES: dict[str, ScheduleSpec] = {
    spec.name: spec
    for spec in (
        ScheduleSpec(
            "constant", "Constant", lambda p, b: LRFactor(lambda s: 1.0),
            description="The same learning rate throughout.",
            formula=(r"\eta_t = \eta_0",),
            shines="Baselines and schedule-free optimizers: differences between runs come from the optimizer alone.",
        ),
        ScheduleSpec(
            "step",
            "Step decay",
            _step,
            (
                HyperParam("drops", 3, 1, 100, kind="int", help="how many times the lr drops, spread evenly over the budget"),
                HyperParam("gamma", 0.1, 0.0, 1.0, low_inclusive=False, help="multiplier per drop"),
            ),
            description="Multiply the lr by gamma at `drops` evenly spaced points of the budget.",
            renamed={"step_epochs": "use drops (how many times the lr drops, spread evenly over the budget)"},
            formula=(
                r"\eta_t = \eta_0\, \gamma^{k_t}, \quad k_t = \#\{k \leq n : t \geq t_k\}",
                r"t_k = \max\left(1,\ \mathrm{round}(k\, T / (n+1))\right) \quad (n \text{ drops over } T \text{ steps})",
            ),
            shines="Classic image-classification recipes: fast progress at the high rate, then a sharp fall in loss after each drop.",
        ),
        ScheduleSpec(
            "exponential",
            "Exponential decay",
            _exponential,
            (HyperParam("gamma", 0.9, 0.0, 1.0, low_inclusive=False, help="multiplier per epoch"),),
            description="Smooth decay by gamma per epoch.",
            formula=(r"\eta_t = \eta_0\, \gamma^{t/S} \quad (S \text{ steps per epoch})",),
            shines="A steady decay for an open-ended budget; gamma sets how fast, whatever the length of the run.",
        ),
        ScheduleSpec(
            "cosine",
            "Cosine",
            _cosine_schedule,
            (_MIN,),
            description="Half a cosine from the base lr down to min_factor x base lr.",
            formula=(
                r"\eta_t = \eta_0 \left(m + (1-m)\, \frac{1 + \cos(\pi t / T)}{2}\right) \quad (m = \text{min\_factor})",
            ),
            shines="A known budget: a long phase at a high lr, then a gentle landing; a strong default.",
        ),
        ScheduleSpec(
            "warmup_cosine",
            "Linear warmup + cosine",
            _warmup_cosine,
            (
                HyperParam(
                    "warmup", 0.1, 0.0, 1.0, low_inclusive=False, high_inclusive=False,
                    help="share of the budget spent ramping up",
                ),
                _MIN,
            ),
            description="Ramp up linearly for the first `warmup` share of the budget, then cosine decay.",
            renamed={"warmup_epochs": "use warmup (the share of the budget spent ramping up, e.g. 0.1)"},
            formula=(
                r"\eta_t = \eta_0\, (t+1) / W \quad \text{for } t < W = \max(1,\ \mathrm{round}(w\, T)) \quad (w = \text{warmup})",
                r"\eta_t = \eta_0 \left(m + (1-m)\, \frac{1 + \cos(\pi (t-W) / (T-W))}{2}\right) \quad \text{after}",
            ),
            shines="Adam-family optimizers and large lrs: small first steps while the moment estimates settle avoid early blow-ups.",
        ),
        ScheduleSpec(
            "one_cycle",
            "One-cycle",
            _one_cycle,
            (
                HyperParam(
                    "pct_start", 0.3, 0.0, 1.0, low_inclusive=False, high_inclusive=False,
                    help="share spent rising (below 1, so the fall reaches the final lr)",
                ),
                HyperParam("div_factor", 25.0, 1.0, 1e4, help="base lr / starting lr"),
                HyperParam("final_div_factor", 1e4, 1.0, 1e6, help="starting lr / final lr"),
            ),
            description=(
                "Rise to the base lr (the peak), then anneal far below the start; "
                "torch's OneCycleLR step for step."
            ),
            formula=(
                r"a(x, y, p) = y + \frac{x - y}{2}\, (1 + \cos \pi p), \quad P = p_s T - 1 \quad (p_s = \text{pct\_start})",
                r"\eta_t = \eta_0\, a(1/d,\ 1,\ t/P) \quad \text{for } t \leq P \quad (d = \text{div\_factor})",
                r"\eta_t = \eta_0\, a\left(1,\ \frac{1}{d f},\ \frac{t-P}{T-1-P}\right) \quad \text{after} \quad (f = \text{final\_div\_factor})",
            ),
            shines="Fast training on a fixed budget: the high middle rate explores, the long low tail fine-tunes.",
        ),
        ScheduleSpec(
            "plateau",
            "Reduce on plateau",
            _plateau,
            (
                HyperParam("factor", 0.1, 0.0, 1.0, low_inclusive=False, help="multiplier per drop"),
                HyperParam("patience", 2, 0, 1000, kind="int", help="evaluations to wait"),
                HyperParam("min_factor", 1e-4, 0.0, 1.0),
            ),
            note=_plateau_note,
            description="Cut the lr when the validation loss stops improving (known only while training).",
            depends_on_validation=True,
            formula=(
                r"\eta \leftarrow \max(f \eta,\ m\, \eta_0) \text{ after } p + 1 \text{ evaluations without a new best}",
                r"\text{new best: } L_{\mathrm{val}} < (1 - 10^{-4})\, L_{\mathrm{best}} \quad (f = \text{factor},\ p = \text{patience},\ m = \text{min\_factor})",
            ),
            shines="Unknown training length: the lr drops only when validation progress stalls.",
        ),
    )
}


def get_schedule(name: str) -> ScheduleSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(SCHEDULES, name, kind="schedule")


def lr_curve(
    name: str, params: dict[str, Any], base_lr: float, budget: Budget, *, steps: Sequence[int] | None = None
) -> np.ndarray:
    """The lr at every step of a run (or at ``steps``), without training.

    Reduce-on-plateau is drawn flat: when it drops depends on the validation loss.
    """
    factor = get_schedule(name).make(params, budget)
    at = range(budget.total_steps) if steps is None else steps
    return base_lr * np.fromiter((factor(s) for s in at), float)
