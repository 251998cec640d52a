"""2-D test functions for the loss landscapes: formula, window, start and known minima."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from dlopt_core.catalog.hyperparams import HyperParam, lookup

Point = tuple[float, float]
Fn = Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]


@dataclass(frozen=True)
class TestFunction:
    """A 2-D function with its formula, window, default start and known minima."""

    __test__ = False  # not a pytest class, despite the name

    name: str
    label: str
    formula: str
    fn: Fn
    start: Point
    window: tuple[Point, Point]
    minima: tuple[Point, ...]
    min_value: float | None
    log_scale: bool = True
    hyperparams: tuple[HyperParam, ...] = ()
    target_label: str = "minimum"
    look_for: str = ""  # for a student: what the paths on this surface show

    def value(self, x: torch.Tensor, y: torch.Tensor, params: dict[str, Any] | None = None) -> torch.Tensor:
        """f(x, y), elementwise over tensors of any shape."""
        return self.fn(x, y, params or {p.name: p.default for p in self.hyperparams})

    def at(self, x: float, y: float, params: dict[str, Any] | None = None) -> float:
        """f(x, y) at one point, computed in float64 (a bare torch.tensor(0.5) is float32)."""
        point = torch.tensor([x, y], dtype=torch.float64)
        return float(self.value(point[0], point[1], params))

    def in_window(self, x: float, y: float) -> bool:
        (x0, x1), (y0, y1) = self.window
        return x0 <= x <= x1 and y0 <= y <= y1


def _rosenbrock(x: torch.Tensor, y: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(x: torch.Tensor, y: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(x: torch.Tensor, y: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _rastrigin(x: torch.Tensor, y: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return 20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)


def _saddle(x: torch.Tensor, y: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return x**2 - y**2


def _quadratic(x: torch.Tensor, y: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return 0.5 * (x**2 + p["condition_number"] * y**2)


FUNCTIONS: dict[str, TestFunction] = {
    f.name: f
    for f in (
        TestFunction(
            "rosenbrock", "Rosenbrock", "(1 - x)² + 100 (y - x²)²", _rosenbrock,
            start=(-1.5, 2.0), window=((-2.0, 2.0), (-1.0, 3.0)), minima=((1.0, 1.0),), min_value=0.0,
            look_for=(
                "The minimum (star) lies at the end of a long, curved, nearly flat valley. Gradient "
                "descent drops into the valley fast, then crawls along its floor; momentum builds "
                "speed along it but swings across its walls; Adam and RMSprop scale each direction "
                "on its own, so they turn with the valley."
            ),
        ),
        TestFunction(
            "beale", "Beale", "(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²", _beale,
            start=(1.0, 1.4), window=((-4.5, 4.5), (-4.5, 4.5)), minima=((3.0, 0.5),), min_value=0.0,
            look_for=(
                "Flat plateaus next to steep walls: the gradient changes by orders of magnitude. "
                "With one fixed lr, gradient descent either crawls on the plateau or is flung off "
                "at a wall; methods that divide by the gradient's size (Adam, RMSprop, Adagrad) "
                "take steadier steps."
            ),
        ),
        TestFunction(
            "himmelblau", "Himmelblau (four minima)", "(x² + y - 11)² + (x + y² - 7)²", _himmelblau,
            start=(-0.5, 0.5), window=((-5.0, 5.0), (-5.0, 5.0)),
            minima=((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
            min_value=0.0,
            look_for=(
                "Four minima of the same value: which one a path ends in depends on the start and "
                "on its first steps. Move the start (click the flat map, or type start x and y) "
                "and watch the optimizers pick different minima."
            ),
        ),
        TestFunction(
            "rastrigin", "Rastrigin (many local minima)",
            "20 + x² - 10 cos 2πx + y² - 10 cos 2πy", _rastrigin,
            start=(2.3, -1.7), window=((-5.12, 5.12), (-5.12, 5.12)), minima=((0.0, 0.0),), min_value=0.0,
            log_scale=False,
            look_for=(
                "A bowl covered in bumps, each one a local minimum. Gradient descent stops in the "
                "nearest dip; momentum, gradient noise or a large lr can carry a point over the "
                "bumps toward the centre, or just as well into another dip."
            ),
        ),
        TestFunction(
            "saddle", "Saddle", "x² - y²", _saddle,
            start=(1.5, 0.01), window=((-2.0, 2.0), (-2.0, 2.0)), minima=((0.0, 0.0),), min_value=None,
            log_scale=False, target_label="saddle point",
            look_for=(
                "No minimum, only a saddle point at the origin, flat in every direction. Started "
                "just off the ridge (y = 0.01), gradient descent slows to a crawl near the saddle "
                "before it escapes along y; momentum and adaptive methods escape sooner. Once "
                "away, the value falls without end."
            ),
        ),
        TestFunction(
            "quadratic", "Ill-conditioned quadratic", "½ (x² + κ y²)", _quadratic,
            start=(-1.8, 1.0), window=((-2.0, 2.0), (-2.0, 2.0)), minima=((0.0, 0.0),), min_value=0.0,
            hyperparams=(HyperParam("condition_number", 10.0, 1.0, 1e4, log=True, help="κ"),),
            look_for=(
                "A bowl κ times steeper in y than in x. Gradient descent zig-zags across the steep "
                "direction and creeps along the shallow one (raise κ to make it worse); momentum "
                "overshoots and oscillates before it settles; adaptive methods rescale the two "
                "directions and go more directly."
            ),
        ),
    )
}


def get_function(name: str) -> TestFunction:
    """Look up a test function; the error lists what is allowed."""
    return lookup(FUNCTIONS, name, kind="function")


