"""Landscape trajectories are computed in float64 from start to end."""

import math

import pytest

from dlopt_core.config import OptimizerConfig
from dlopt_core.experiments.landscape import FUNCTIONS, surface, trajectories

# The formulas in plain Python floats (float64), written as the registry writes them.
CLOSED_FORM = {
    "rosenbrock": lambda x, y, p: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
    "himmelblau": lambda x, y, p: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
    "quadratic": lambda x, y, p: 0.5 * (x**2 + p["condition_number"] * y**2),
}
PARAMS = {"rosenbrock": {}, "himmelblau": {}, "quadratic": {"condition_number": 1000.0}}


@pytest.mark.parametrize("noise", [0.0, 0.5])
@pytest.mark.parametrize("name", list(CLOSED_FORM))
def test_trajectory_values_are_the_float64_function_at_the_trajectory_points(name: str, noise: float) -> None:
    optimizers = [
        OptimizerConfig.make(name="sgd", lr=0.001),
        OptimizerConfig.make(name="sgd", lr=0.2),  # leaves the window on two of the three
        OptimizerConfig.make(name="adam", lr=0.05),  # fused on the CPU
        OptimizerConfig.make(name="lbfgs", lr=1.0),  # the closure path
    ]
    paths = trajectories(FUNCTIONS[name], optimizers, steps=60, noise=noise, seed=1, params=PARAMS[name] or None)
    for t in paths:
        assert len(t.x) == len(t.y) == len(t.values) > 1
        for x, y, v in zip(t.x, t.y, t.values):
            assert math.isclose(v, CLOSED_FORM[name](x, y, PARAMS[name]), rel_tol=1e-12), (t.label, x, y, v)
    if name != "quadratic":
        assert any(t.status == "left the window" for t in paths)


def test_function_at_a_point_is_float64() -> None:
    fn = FUNCTIONS["rosenbrock"]
    x, y = 0.1234567890123, -0.9876543210987
    assert fn.at(x, y) == CLOSED_FORM["rosenbrock"](x, y, {})


def test_surface_values_are_float64() -> None:
    s = surface(FUNCTIONS["quadratic"], params={"condition_number": 1000.0}, points=7)
    for j, y in enumerate(s.y):
        for i, x in enumerate(s.x):
            expected = math.log10(CLOSED_FORM["quadratic"](x, y, {"condition_number": 1000.0}) + 1e-3)
            assert math.isclose(s.z[j][i], expected, rel_tol=1e-12, abs_tol=1e-15)
