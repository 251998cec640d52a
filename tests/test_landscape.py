"""2-D test functions, trajectories on them, and the tuned-lr search."""

import math

import pytest
import torch

from dlopt_core.config import OptimizerConfig
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.landscape import (
    FUNCTIONS, LandscapeConfig, LrSearch, TestFunction, run_landscape, search_lr, search_range, trajectories,
    trajectory, tune_lr,
)
from dlopt_core.catalog.optimizers import OPTIMIZERS

# (function, point, value, gradient) checked by hand from the formulas
KNOWN = [
    ("rosenbrock", (0.0, 0.0), 1.0, (-2.0, 0.0)),
    ("rosenbrock", (-1.0, 1.0), 4.0, (-4.0, 0.0)),
    ("beale", (0.0, 0.0), 1.5**2 + 2.25**2 + 2.625**2, (-12.75, 0.0)),
    ("himmelblau", (0.0, 0.0), 170.0, (-14.0, -22.0)),
    ("rastrigin", (0.5, 0.0), 20.25, (1.0, 0.0)),
    ("saddle", (1.0, 2.0), -3.0, (2.0, -4.0)),
    ("quadratic", (1.0, 1.0), 5.5, (1.0, 10.0)),
]


@pytest.mark.parametrize(("name", "point", "value", "grad"), KNOWN)
def test_value_and_gradient_at_known_points(name: str, point, value: float, grad) -> None:
    fn = FUNCTIONS[name]
    xy = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    f = fn.value(xy[0], xy[1])
    f.backward()
    assert math.isclose(f.item(), value, rel_tol=1e-9, abs_tol=1e-9)
    assert torch.allclose(xy.grad, torch.tensor(grad, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_stated_minima_are_stationary_with_the_stated_value(name: str) -> None:
    fn = FUNCTIONS[name]
    for mx, my in fn.minima:
        xy = torch.tensor([mx, my], dtype=torch.float64, requires_grad=True)
        f = fn.value(xy[0], xy[1])
        f.backward()
        assert xy.grad.abs().max() < 1e-4
        if fn.min_value is not None:
            assert abs(f.item() - fn.min_value) < 1e-8
        assert fn.in_window(mx, my) and fn.in_window(*fn.start)


def test_trajectories_are_deterministic_and_batched_equals_alone() -> None:
    fn = FUNCTIONS["rosenbrock"]
    opts = [OptimizerConfig.parse(s) for s in ("adam:lr=0.05", "momentum:lr=0.001", "rmsprop:lr=0.01")]
    together = trajectories(fn, opts, steps=200, noise=0.5, seed=3)
    again = trajectories(fn, opts, steps=200, noise=0.5, seed=3)
    alone = [trajectory(fn, o, steps=200, noise=0.5, seed=3) for o in opts]
    assert [t.values for t in together] == [t.values for t in again] == [t.values for t in alone]
    assert [len(t.x) for t in together] == [201, 201, 201]
    assert trajectory(fn, opts[0], steps=200, noise=0.5, seed=4).values != together[0].values


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_registry_optimizer_moves_on_a_landscape(name: str) -> None:
    fn = FUNCTIONS["quadratic"]
    t = trajectory(fn, OptimizerConfig.parse(f"{name}:lr={OPTIMIZERS[name].lr_range[0] * 10!r}"), steps=50)
    assert len(t.values) == len(t.x) == len(t.y)
    assert (t.x[-1], t.y[-1]) != fn.start


def test_a_run_that_leaves_the_window_stops_and_says_when() -> None:
    # On ½(x² + 100 y²) gradient descent is stable only for lr < 2/100.
    fn = FUNCTIONS["quadratic"]
    params = {"condition_number": 100.0}
    ok = trajectory(fn, OptimizerConfig.parse("sgd:lr=0.019"), steps=100, params=params)
    bad = trajectory(fn, OptimizerConfig.parse("sgd:lr=0.021"), steps=100, params=params)
    assert ok.status == "finished" and ok.values[-1] < ok.values[0]
    assert bad.status == "left the window" and bad.stopped_at is not None and bad.stopped_at < 100
    assert bad.status_text == f"left the window at step {bad.stopped_at}"
    assert len(bad.x) == bad.stopped_at + 1


def test_a_non_finite_value_ends_the_run_as_diverged() -> None:
    # x² + log(2 - x) is undefined for x > 2, well inside its window: the first step lands there.
    fn = TestFunction(
        "cliff", "Cliff", "x² + log(2 - x)", lambda x, y, p: x**2 + torch.log(2 - x) + y**2,
        start=(0.0, 0.0), window=((-5.0, 5.0), (-5.0, 5.0)), minima=((0.25, 0.0),), min_value=None,
    )
    for opt in ("sgd:lr=9", "lbfgs:lr=9"):
        t = trajectory(fn, OptimizerConfig.parse(opt), steps=20)
        assert t.status == "diverged" and t.stopped_at == 1, opt
        assert t.status_text == "diverged at step 1"
        assert all(math.isfinite(v) for v in t.values)


def test_tuned_lr_beats_the_default_on_rosenbrock() -> None:
    fn = FUNCTIONS["rosenbrock"]
    opt = OptimizerConfig.parse("adam")
    lr = tune_lr(fn, opt, steps=200, trials=25)
    tuned = trajectory(fn, opt.model_copy(update={"lr": lr}), steps=200)
    default = trajectory(fn, opt, steps=200)
    assert tuned.status == "finished" and tuned.values[-1] < default.values[-1]


def test_the_search_goes_past_the_network_range_where_the_toy_problem_needs_it() -> None:
    # Issue 11: Adam's "best" lr on Rosenbrock was 0.0993, against the registry's cap of 0.1.
    fn = FUNCTIONS["rosenbrock"]
    found = search_lr(fn, OptimizerConfig.parse("adam"), steps=300)
    registry_low, registry_high = OPTIMIZERS["adam"].lr_range
    assert found.low < registry_low and found.high > registry_high
    assert found.lr > registry_high and found.edge is None
    assert found.lr == float(f"{found.lr:.3g}")  # 3 significant digits, as the page shows it
    run = trajectory(fn, OptimizerConfig.parse(f"adam:lr={found.lr!r}"), steps=300)
    assert run.status == "finished" and run.values[-1] == found.value


def _endless_slope() -> TestFunction:
    # f = x + y²: the larger the step, the lower x ends; the window is too big to leave.
    return TestFunction(
        "slope", "Slope", "x + y²", lambda x, y, p: x + y**2,
        start=(0.0, 0.0), window=((-1e12, 1e12), (-1e12, 1e12)), minima=((0.0, 0.0),), min_value=None,
    )


def test_a_best_lr_on_the_top_end_is_flagged_after_the_search_went_on_past_it() -> None:
    found = search_lr(_endless_slope(), OptimizerConfig.parse("sgd"), steps=5, trials=6)
    first_low, first_high = search_range("sgd")
    assert found.edge == "high" and found.high > first_high  # it extended, and is still at the end
    assert found.low == first_low


def test_a_best_lr_on_the_bottom_end_is_flagged() -> None:
    # Started on the minimum with noisy gradients, every step only adds noise: smaller is better.
    bowl = TestFunction(
        "bowl", "Bowl", "x² + y²", lambda x, y, p: x**2 + y**2,
        start=(0.0, 0.0), window=((-5.0, 5.0), (-5.0, 5.0)), minima=((0.0, 0.0),), min_value=0.0,
    )
    found = search_lr(bowl, OptimizerConfig.parse("sgd"), steps=20, noise=1.0, trials=6)
    assert found.edge == "low" and found.low < search_range("sgd")[0]


def test_an_lr_inside_the_range_is_not_on_an_edge() -> None:
    assert LrSearch(0.05, 1e-5, 10.0, 0.0).edge is None
    assert LrSearch(1e-5, 1e-5, 10.0, 0.0).edge == "low"
    assert LrSearch(9.9, 1e-5, 10.0, 0.0).edge == "high"


def test_tune_lr_gives_the_searched_lr_alone() -> None:
    fn = FUNCTIONS["quadratic"]
    opt = OptimizerConfig.parse("sgd")
    assert tune_lr(fn, opt, steps=30, trials=5) == search_lr(fn, opt, steps=30, trials=5).lr


def test_landscape_config_validates_and_round_trips() -> None:
    cfg = LandscapeConfig.make(
        function="quadratic", params={"condition_number": 50}, start="-1,0.5", steps=10,
        optimizers=[{"name": "adam", "lr": 0.1}],
    )
    assert LandscapeConfig.from_dict({k: v if isinstance(v, list) else str(v) for k, v in cfg.to_dict().items()}) == cfg
    with pytest.raises(ConfigError, match="outside"):
        LandscapeConfig.make(start=(5.0, 5.0), optimizers=[{"name": "adam"}])
    with pytest.raises(ConfigError, match="function: unknown name"):
        LandscapeConfig.make(function="sphere", optimizers=[{"name": "adam"}])
    with pytest.raises(ConfigError, match="function.condition_number"):
        LandscapeConfig.make(function="quadratic", params={"condition_number": 0.5}, optimizers=[{"name": "adam"}])
    result = run_landscape(cfg, grid=20)
    assert len(result.surface.z) == 20 and len(result.trajectories) == 1
