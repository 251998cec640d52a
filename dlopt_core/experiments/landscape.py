"""Optimizer trajectories on 2-D test functions, with the same optimizer registry.

The point is one ``(1, 2)`` parameter (a 1x2 matrix, so Muon has a matrix to orthogonalise),
the loss is the test function, and every registry optimizer steps it exactly as it would a
network. Gradient noise of a chosen scale (seeded) turns gradient descent into SGD.
Points, gradients, noise and values are float64 throughout (torch's Muon alone rounds its
orthogonalised step through bfloat16 internally).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np
import optuna
import torch
from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.functions import FUNCTIONS, Point, TestFunction, get_function
from dlopt_core.catalog.hyperparams import check_params
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import Flat, OptimizerConfig, check_distinct, flatten, unflatten

__all__ = [
    "FUNCTIONS", "LandscapeConfig", "LandscapeResult", "LrSearch", "Trajectory", "run_landscape", "search_lr",
    "search_range", "trajectories", "tune_lr",
]

Status = Literal["finished", "diverged", "left the window"]


@dataclass(frozen=True)
class Trajectory:
    """Where one optimizer went: points and values from the start (included) on."""

    label: str
    x: list[float]
    y: list[float]
    values: list[float]
    status: Status
    stopped_at: int | None

    @property
    def status_text(self) -> str:
        return self.status if self.stopped_at is None else f"{self.status} at step {self.stopped_at}"

    def distances(self, minima: tuple[Point, ...]) -> list[float]:
        """Distance from each point to the nearest known minimum."""
        pts = np.column_stack([self.x, self.y])
        targets = np.asarray(minima)
        return np.min(np.linalg.norm(pts[:, None, :] - targets[None], axis=2), axis=1).tolist()


def trajectories(
    function: TestFunction,
    optimizers: list[Any],
    *,
    start: Point | None = None,
    steps: int = 300,
    noise: float = 0.0,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> list[Trajectory]:
    """Run each optimizer (an ``OptimizerConfig``) from ``start`` for ``steps`` steps.

    Each run stops early, cleanly, when its value overflows (``diverged``) or its point
    leaves the plot window (``left the window``); the step is recorded. Every optimizer
    sees the same gradient-noise sequence.
    """
    params = params or {p.name: p.default for p in function.hyperparams}
    batched = [i for i, o in enumerate(optimizers) if not get_optimizer(o.name).needs_closure]
    out: dict[int, Trajectory] = {}
    if batched:
        runs = _run_batched(function, [optimizers[i] for i in batched], start, steps, noise, seed, params)
        out.update(zip(batched, runs))
    for i, o in enumerate(optimizers):
        if i not in out:
            out[i] = _run_with_closure(function, o, start, steps, noise, seed, params)
    return [out[i] for i in range(len(optimizers))]


def trajectory(function: TestFunction, optimizer: Any, **options: Any) -> Trajectory:
    """One optimizer's trajectory; see :func:`trajectories` for the options."""
    return trajectories(function, [optimizer], **options)[0]


def _run_batched(
    function: TestFunction, optimizers: list[Any], start: Point | None, steps: int,
    noise: float, seed: int, params: dict[str, Any],
) -> list[Trajectory]:
    # All points live in one (K, 2) leaf: one forward and backward per step serves every
    # optimizer. Each optimizer owns a Parameter that views its row of the same storage,
    # and its .grad is pointed at the matching row of the shared gradient.
    x0, y0 = start or function.start
    k = len(optimizers)
    stacked = torch.tensor([[x0, y0]] * k, dtype=torch.float64, requires_grad=True)
    rows = [torch.nn.Parameter(stacked.data[i : i + 1]) for i in range(k)]
    steppers = _merged_optimizers(optimizers, rows)
    gen = torch.Generator().manual_seed(seed)
    paths = [([x0], [y0], []) for _ in range(k)]
    status: list[Status] = ["finished"] * k
    stopped: list[int | None] = [None] * k
    active = list(range(k))
    for step in range(1, steps + 2):
        stacked.grad = None
        values = function.fn(stacked[:, 0], stacked[:, 1], params)
        now = values.tolist()
        for i in list(active):
            if math.isfinite(now[i]):
                paths[i][2].append(now[i])
                continue
            # The last step landed where f is not finite: drop that point, keep the path clean.
            status[i], stopped[i] = "diverged", step - 1
            if len(paths[i][0]) > 1:
                paths[i][0].pop()
                paths[i][1].pop()
            active.remove(i)
        if step == steps + 1 or not active:
            break
        values.sum().backward()
        grad = stacked.grad
        if noise > 0:
            grad += noise * torch.randn((1, 2), generator=gen, dtype=grad.dtype)
        for i in range(k):
            # A stopped row keeps grad None, which every torch optimizer skips.
            rows[i].grad = grad[i : i + 1] if i in active else None
        for opt, members in steppers:
            if any(i in active for i in members):
                opt.step()
        points = stacked.detach().tolist()
        for i in list(active):
            px, py = points[i]
            if not (math.isfinite(px) and math.isfinite(py)):
                status[i], stopped[i] = "diverged", step
                active.remove(i)
                continue
            if not function.in_window(px, py):
                active.remove(i)
                stopped[i] = step
                outside = function.at(px, py, params)
                if not math.isfinite(outside):
                    status[i] = "diverged"
                    continue
                status[i] = "left the window"
                paths[i][2].append(outside)
            paths[i][0].append(px)
            paths[i][1].append(py)
    return [
        Trajectory(o.label, xs, ys, vs, status[i], stopped[i])
        for i, (o, (xs, ys, vs)) in enumerate(zip(optimizers, paths))
    ]


def _merged_optimizers(optimizers: list[Any], rows: list[torch.nn.Parameter]) -> list[tuple[Any, list[int]]]:
    # Optimizers of one torch class become param groups of a single instance: each
    # keeps its own hyperparameters and state, and the per-call overhead of step(), which
    # dominates on a 2-element parameter, is paid once per class instead of once per row.
    merged: dict[type, tuple[Any, list[int]]] = {}
    out: list[tuple[Any, list[int]]] = []
    for i, (cfg, row) in enumerate(zip(optimizers, rows)):
        spec = get_optimizer(cfg.name)
        opt = spec.build([("point", row)], cfg.lr, cfg.params, torch.device("cpu"))
        if spec.train_eval_modes:
            opt.train()
        if not isinstance(opt, torch.optim.Optimizer) or spec.train_eval_modes:
            out.append((opt, [i]))
        elif type(opt) in merged:
            host, members = merged[type(opt)]
            host.add_param_group(opt.param_groups[0])
            members.append(i)
        else:
            merged[type(opt)] = (opt, [i])
            out.append(merged[type(opt)])
    return out


def _run_with_closure(
    function: TestFunction, optimizer: Any, start: Point | None, steps: int,
    noise: float, seed: int, params: dict[str, Any],
) -> Trajectory:
    # Line-search methods (L-BFGS) evaluate the function several times per step.
    x0, y0 = start or function.start
    point = torch.nn.Parameter(torch.tensor([[x0, y0]], dtype=torch.float64))
    opt = get_optimizer(optimizer.name).build([("point", point)], optimizer.lr, optimizer.params, torch.device("cpu"))
    gen = torch.Generator().manual_seed(seed)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = function.fn(point[:, 0], point[:, 1], params).sum()
        value.backward()
        if noise > 0:
            point.grad += noise * torch.randn((1, 2), generator=gen, dtype=point.dtype)
        return value

    xs, ys, values = [x0], [y0], [function.at(x0, y0, params)]
    status: Status = "finished"
    stopped = None
    for step in range(1, steps + 1):
        opt.step(closure)
        px, py = point.detach()[0].tolist()
        value = function.at(px, py, params) if math.isfinite(px) and math.isfinite(py) else math.nan
        if not math.isfinite(value):
            status, stopped = "diverged", step
            break
        xs.append(px)
        ys.append(py)
        values.append(value)
        if not function.in_window(px, py):
            status, stopped = "left the window", step
            break
    return Trajectory(optimizer.label, xs, ys, values, status, stopped)


# A network's usual learning rates (the registry's ranges) are only a starting point on a 2-D
# toy function: their gradients are hundreds (Rosenbrock) or tiny (a flat valley floor), and
# the best rate for 300 steps is often outside the network range (Adam on Rosenbrock: above 0.1).
WIDEN = 10.0  # the first search spans the registry's range widened this much at each end
EXTENSIONS = 2  # how often a search whose best sits on an end goes on past that end
EDGE = 10**0.05  # a best lr within this factor (0.05 decades) of an end is "on the edge"


@dataclass(frozen=True)
class LrSearch:
    """A tuned learning rate (3 significant digits), the range searched and the value it reached."""

    lr: float
    low: float
    high: float
    value: float

    @property
    def finished(self) -> bool:
        """Whether any lr searched ran its steps without diverging or leaving the window."""
        return math.isfinite(self.value)

    @property
    def edge(self) -> Literal["low", "high"] | None:
        """The end of the searched range that the best lr sits on: a better one may lie past it."""
        if self.lr <= self.low * EDGE:
            return "low"
        if self.lr >= self.high / EDGE:
            return "high"
        return None


def search_range(optimizer: str) -> tuple[float, float]:
    """Where a landscape search starts: the registry's lr range widened by ``WIDEN`` each way."""
    low, high = get_optimizer(optimizer).lr_range
    return float(f"{low / WIDEN:.3g}"), float(f"{high * WIDEN:.3g}")


def search_lr(
    function: TestFunction,
    optimizer: Any,
    *,
    start: Point | None = None,
    steps: int = 300,
    noise: float = 0.0,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    trials: int = 30,
) -> LrSearch:
    """The lr (searched log-uniformly) with the lowest final value, and where it was searched.

    A short seeded TPE search in memory over :func:`search_range`; a run that diverges or
    leaves the window scores worse than any that stays. While the best lr sits on an end of
    the range (both ends are always tried), the search goes on past that end (``EXTENSIONS``
    times, ``trials // 2`` each); :attr:`LrSearch.edge` says when it still does.
    """
    low, high = search_range(optimizer.name)

    def final_value(lr: float) -> float:
        cfg = optimizer.model_copy(update={"lr": lr})
        t = trajectory(function, cfg, start=start, steps=steps, noise=noise, seed=seed, params=params)
        return t.values[-1] if t.status == "finished" else math.inf

    def objective(trial: optuna.Trial, lo: float, hi: float) -> float:
        # A finite stand-in for runs that did not finish, so Optuna can rank them last.
        return min(final_value(trial.suggest_float("lr", lo, hi, log=True)), 1e300)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best_lr, best = min(max(optimizer.lr, low), high), math.inf
    lo, hi, n = low, high, trials
    for extension in range(EXTENSIONS + 1):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed + extension))
        # Both ends are always tried: a value that keeps improving toward an end then shows
        # as a best lr on that end, however few trials the sampler spends near it.
        for lr in (min(max(best_lr, lo), hi), lo, hi):
            study.enqueue_trial({"lr": lr})
        study.optimize(lambda t: objective(t, lo, hi), n_trials=n)
        if study.best_value < best:
            best_lr, best = float(study.best_params["lr"]), study.best_value
        low, high = min(low, lo), max(high, hi)
        edge = LrSearch(best_lr, low, high, best).edge
        if edge is None or extension == EXTENSIONS:
            break
        # Go on past the end it sits on, overlapping the part already searched a little.
        lo, hi = (best_lr / WIDEN, high * WIDEN**2) if edge == "high" else (low / WIDEN**2, best_lr * WIDEN)
        lo, hi = float(f"{lo:.3g}"), float(f"{hi:.3g}")
        n = max(trials // 2, 1)
    # Three significant digits are what the boxes, legend, table and URL show. Rounding up
    # can tip an lr at the stability limit over it; then round down instead.
    lr = float(f"{best_lr:.3g}")
    value = final_value(lr)
    if not math.isfinite(value) and math.isfinite(best):
        lr = _round_down(best_lr)
        value = final_value(lr)
    return LrSearch(lr, low, high, value)


def _round_down(x: float) -> float:
    """``x`` > 0 cut (not rounded) to 3 significant digits."""
    scale = 10.0 ** (math.floor(math.log10(x)) - 2)
    return float(f"{math.floor(x / scale) * scale:.3g}")


def tune_lr(function: TestFunction, optimizer: Any, **options: Any) -> float:
    """The tuned learning rate alone; see :func:`search_lr` for the options."""
    return search_lr(function, optimizer, **options).lr


@dataclass(frozen=True)
class Surface:
    """The function on a grid over its window, for contour and surface plots."""

    x: list[float]
    y: list[float]
    z: list[list[float]]
    log_scaled: bool


def surface(function: TestFunction, *, params: dict[str, Any] | None = None, points: int = 120) -> Surface:
    """f on a ``points`` x ``points`` grid; log10(f - min + 1e-3) where the function needs it."""
    (x0, x1), (y0, y1) = function.window
    gx = torch.linspace(x0, x1, points, dtype=torch.float64)
    gy = torch.linspace(y0, y1, points, dtype=torch.float64)
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    z = function.value(xx, yy, params)
    if function.log_scale:
        z = torch.log10(z - (function.min_value or 0.0) + 1e-3)
    return Surface(gx.tolist(), gy.tolist(), z.tolist(), function.log_scale)


class LandscapeConfig(Flat):
    """Which function, from where, for how long, with which optimizers."""

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-landscape"
    KIND: ClassVar[str] = "landscape"

    function: str = "rosenbrock"
    params: dict[str, float | int | bool] = Field(default_factory=dict)
    start: tuple[float, float] | None = None
    steps: int = Field(300, ge=1, le=20_000)
    noise: float = Field(0.0, ge=0.0, le=1000.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    optimizers: tuple[OptimizerConfig, ...] = Field(min_length=1, max_length=12)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [v for v in value.split(",") if v.strip()]
            try:
                value = tuple(float(v) for v in parts)
            except ValueError:
                raise ValueError(f"start: expected two numbers like -1.5,2, got {value!r}") from None
            if len(value) != 2:
                raise ValueError(f"start: expected two numbers like -1.5,2, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> LandscapeConfig:
        fn = get_function(self.function)
        check_distinct(self.optimizers)
        object.__setattr__(self, "params", check_params(fn.hyperparams, dict(self.params), prefix="function"))
        if self.start is None:  # the function's own, written out: a config read back from its flat keys is equal
            object.__setattr__(self, "start", fn.start)
        elif not fn.in_window(*self.start):
            (x0, x1), (y0, y1) = fn.window
            raise ValueError(
                f"start: {self.start} is outside {fn.label}'s window x in [{x0:g}, {x1:g}], y in [{y0:g}, {y1:g}]"
            )
        return self

    @property
    def test_function(self) -> TestFunction:
        return get_function(self.function)

    @property
    def start_point(self) -> Point:
        return self.start or self.test_function.start

    # The function and its hyperparameters are two fields, not one registry choice: the generic
    # flat keys with ``params`` written ``function.<key>``, as a registry choice's hyperparameters are.
    def to_dict(self) -> dict[str, Any]:
        """Flat keys for URLs, the CLI and MLflow params; optimizers as ``name:lr=...`` specs."""
        flat = flatten(self)
        params = flat.pop("params")
        return {"function": flat.pop("function"), **{f"function.{k}": v for k, v in params.items()}, **flat}

    @classmethod
    def from_dict(cls, flat: Mapping[str, Any]) -> Self:
        """Read back :meth:`to_dict` (values may be strings)."""
        params = {k.removeprefix("function."): v for k, v in flat.items() if k.startswith("function.")}
        return unflatten(cls, {**{k: v for k, v in flat.items() if not k.startswith("function.")}, "params": params})


@dataclass(frozen=True)
class LandscapeResult:
    """Everything a landscape figure needs: the surface, the trajectories, the minima."""

    config: LandscapeConfig
    surface: Surface
    trajectories: list[Trajectory]
    seconds: float


def run_landscape(config: LandscapeConfig, *, grid: int = 120) -> LandscapeResult:
    """Compute every optimizer's trajectory and the function's surface."""
    clock = time.perf_counter()
    paths = trajectories(
        config.test_function, list(config.optimizers), start=config.start_point, steps=config.steps,
        noise=config.noise, seed=config.seed, params=config.params,
    )
    seconds = time.perf_counter() - clock
    return LandscapeResult(config, surface(config.test_function, params=config.params, points=grid), paths, seconds)
