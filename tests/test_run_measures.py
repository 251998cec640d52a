"""What a comparison measures beside the curves: steps to a target, the lr each run used, the optimum."""

import math

from dlopt_core.catalog.models import convex_optimum
from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.engine.loop import load_run_data
from dlopt_core.experiments.compare import Comparison, summary_rows, target_for
from dlopt_core.plots import actual_lr_data, lr_schedule_data, lr_schedule_figure


def _gd_on_linear(**values) -> Comparison:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.05"),), data={"name": "linear"}, model={"name": "linear"},
        batch_size=None, epochs=30, seeds="0", **values,
    )
    return Comparison(cfg).execute()


def test_the_default_target_sits_just_above_the_optimum_and_is_counted_at_step_resolution() -> None:
    cmp = _gd_on_linear()
    run = cmp.runs[0]
    assert cmp.optimum == convex_optimum(load_run_data(run.config))
    start = run.initial_loss
    target = target_for(run, None, cmp.optimum)
    assert math.isclose(target, cmp.optimum + 0.1 * (start - cmp.optimum))
    # Full batch: the loss of step k is measured before its update, on the whole train set.
    from dlopt_core.engine.loop import run as train

    losses = [r.batch_loss for r in train(run.config) if not r.is_eval]
    exact = next(k for k, loss in enumerate(losses) if loss <= target)
    steps = run.steps_to(target)
    assert steps is not None and exact <= steps and losses[steps] <= target / 0.99
    row = summary_rows(cmp)[0]
    assert row["steps to 90 % of the way to the optimum"] == steps
    assert steps % 1 == 0 and steps not in (0, 1)  # not rounded to an epoch end (1 step per epoch here)


def test_an_explicit_target_names_itself_and_an_unreached_one_is_none() -> None:
    cmp = _gd_on_linear(target_loss=1e-9)
    assert summary_rows(cmp)[0]["steps to loss ≤ 1e-09"] is None


def test_without_a_known_optimum_the_target_is_a_tenth_of_the_initial_loss() -> None:
    cfg = ComparisonConfig.make(optimizers=(OptimizerConfig.parse("adam:lr=0.01"),), data={"name": "moons"}, epochs=8, seeds="0")
    cmp = Comparison(cfg).execute()
    assert cmp.optimum is None
    run = cmp.runs[0]
    assert math.isclose(target_for(run, None, None), 0.1 * run.initial_loss)
    assert "steps to 10 % of the initial loss" in summary_rows(cmp)[0]


def test_the_lr_a_plateau_run_used_is_drawn_beside_its_flat_plan() -> None:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=2"),), data={"name": "moons"}, epochs=12, seeds="0",
        schedule={"name": "plateau", "params": {"factor": 0.1, "patience": 0, "min_factor": 1e-3}},
    )
    cmp = Comparison(cfg).execute()
    used = actual_lr_data(cmp)
    plan = lr_schedule_data(cfg, n_train=cmp.runs[0].total_steps // 12 * 64)
    assert len(used) == 1 and used[0].lr[0] == 2 and used[0].lr[-1] < 2 / 50
    assert set(plan[0].lr) == {2}
    fig = lr_schedule_figure(plan, actual=used)
    assert [t.name for t in fig.data] == ["SGD lr=2.0 (plan)", "SGD lr=2.0 (used)"]
    assert fig.data[0].line.dash == "dash" and fig.data[1].y[-1] == used[0].lr[-1]
