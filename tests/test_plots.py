"""Figures are built from plain data; tests check the data and the traces, never pixels."""

import math

from dlopt_core.experiments.compare import Comparison, summary_rows
from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.plots import curves_data, curves_figure, lr_schedule_data, lr_schedule_figure


def _done(**values) -> Comparison:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.1"), OptimizerConfig.parse("adam")),
        **{"epochs": 3, "seeds": "0,1,2", **values},
    )
    return Comparison(cfg).execute()


def test_bands_aggregate_seeds_per_optimizer() -> None:
    comparison = _done()
    data = curves_data(comparison, x="step", band="minmax")
    bands = data.bands["val_loss"]
    assert [b.label for b in bands] == ["SGD lr=0.1", "Adam lr=0.001"]
    sgd = bands[0]
    assert sgd.n_runs == 3 and sgd.x == [0, 23, 46, 69]
    runs = [r for r in comparison.runs if r.config.optimizer.name == "sgd"]
    last = [r.records[-1].val_loss for r in runs]
    assert math.isclose(sgd.mean[-1], sum(last) / 3, rel_tol=1e-9)
    assert sgd.low[-1] == min(last) and sgd.high[-1] == max(last)
    sd = curves_data(comparison, x="step", band="sd").bands["val_loss"][0]
    assert sd.low[-1] < sd.mean[-1] < sd.high[-1]


def test_comparison_figure_has_three_panels_with_one_line_and_band_per_optimizer() -> None:
    fig = curves_figure(curves_data(_done(), x="epoch"), log_y=True)
    lines = [t for t in fig.data if t.fill is None and "running" not in t.name]
    running = [t for t in fig.data if "running" in t.name]
    fills = [t for t in fig.data if t.fill == "toself"]
    assert len(lines) == 6 and len(fills) == 6
    assert len(running) == 3 and all(t.line.dash == "dot" for t in running)  # one per optimizer + legend
    assert all(t.xaxis == "x" for t in running if t.x[0] is not None)  # on the train-loss panel
    assert {t.name for t in lines if t.showlegend} == {"SGD lr=0.1", "Adam lr=0.001"}
    assert [a.text for a in fig.layout.annotations][:3] == ["train loss", "validation loss", "val accuracy"]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis3.type != "log"
    assert fig.layout.xaxis.title.text == "epoch"


def test_regression_uses_r2_and_draws_the_convex_optimum() -> None:
    cmp = _done(data={"name": "linear"}, model={"name": "linear"}, seeds="0")
    fig = curves_figure(curves_data(cmp, optimum=0.25))
    assert fig.layout.annotations[2].text == "val R²"
    assert any(s.y0 == 0.25 for s in fig.layout.shapes)


def test_lr_schedule_is_drawn_before_training() -> None:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.1"), OptimizerConfig.parse("adam:lr=0.01")),
        schedule={"name": "step", "params": {"drops": 1, "gamma": 0.5}},
        epochs=4,
    )
    curves = lr_schedule_data(cfg, n_train=640)
    assert [c.label for c in curves] == ["SGD lr=0.1", "Adam lr=0.01"]
    assert curves[0].lr[0] == 0.1 and curves[0].lr[-1] == 0.05 and curves[1].lr[-1] == 0.005
    assert curves[0].epoch[-1] < 4
    fig = lr_schedule_figure(curves)
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"


def test_landscape_figure_draws_contour_paths_minima_and_animation() -> None:
    from dlopt_core.experiments.landscape import LandscapeConfig, run_landscape
    from dlopt_core.plots import landscape_curves_figure, landscape_figure, landscape_surface_figure

    cfg = LandscapeConfig.make(
        function="himmelblau", steps=120,
        optimizers=[{"name": "adam", "lr": 0.1}, {"name": "sgd", "lr": 0.01}, {"name": "asgd", "lr": 0.5}],
    )
    result = run_landscape(cfg, grid=30)
    fig = landscape_figure(result, frames=12)
    paths = [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]
    assert [p.name for p in paths] == ["Adam lr=0.1", "SGD lr=0.01", "ASGD lr=0.5"]
    stars = next(t for t in fig.data if t.name == "minimum")
    assert len(stars.x) == 4  # Himmelblau's four minima
    stopped = [t for t in fig.data if t.type == "scatter" and t.mode == "markers+text"]
    assert [t.text[0] for t in stopped] == [result.trajectories[2].status_text]
    assert len(fig.frames) == 12 and len(fig.layout.sliders[0].steps) == 12
    last = fig.frames[-1].data[0]
    assert list(last.x) == list(paths[0].x)  # the last frame shows the whole path
    assert len(fig.frames[0].data[0].x) < len(paths[0].x)
    curves = landscape_curves_figure(result)
    assert len(curves.data) == 6 and curves.layout.yaxis2.type == "log"
    surface = landscape_surface_figure(result)
    assert surface.data[0].type == "surface" and [t.type for t in surface.data[1:]] == ["scatter3d"] * 3


def test_reference_figure_overlays_both_paths() -> None:
    import numpy as np

    from dlopt_core.plots import reference_figure
    from dlopt_core.reference import batches, reference_path, torch_path, tutorial_data

    x, y = tutorial_data("squared")
    order = list(batches(100, 10, 2, seed=0))
    ours = reference_path(x, y, np.zeros(2), algorithm="adam", lr=0.1, order=order)
    theirs = torch_path(x, y, np.zeros(2), algorithm="adam", lr=0.1, order=order)
    fig = reference_figure(ours, theirs, x=x, y=y, kind="squared")
    assert [t.name for t in fig.data[1:]] == ["torch.optim", "from scratch (NumPy)"]
    assert len(fig.data[1].x) == len(fig.data[2].x) == len(order) + 1


def test_a_diverged_optimizer_says_so_in_the_legend() -> None:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=1e6"), OptimizerConfig.parse("adam")), epochs=2,
    )
    fig = curves_figure(curves_data(Comparison(cfg).execute()))
    names = {t.name for t in fig.data if t.showlegend}
    assert names == {"SGD lr=1e+06 (diverged at step 2)", "Adam lr=0.001"}


def _synthetic(losses: dict[str, list[float]], diverged_at: dict[str, int] | None = None) -> Comparison:
    """A comparison fed hand-made records: one run per optimizer, an evaluation per epoch."""
    from dlopt_core.engine.records import Record, Status

    names = list(losses)
    cfg = ComparisonConfig.make(optimizers=[OptimizerConfig.parse(n) for n in names], epochs=5, batch_size=None)
    cmp = Comparison(cfg)
    for run, name in zip(cmp.runs, names):
        for epoch, loss in enumerate(losses[name]):
            run.apply(Record(epoch, float(epoch), epoch, 0.1 * epoch, 0.1, None, loss, loss, 0.5))
        if diverged_at and name in diverged_at:
            step = diverged_at[name]
            run.apply(Record(step, float(step), step, 0.1 * step, 0.1, math.inf, status=Status.DIVERGED))
        else:
            run.end(Status.FINISHED)
    return cmp


def test_a_huge_finite_loss_is_clipped_and_labelled_so_the_other_curves_stay_readable() -> None:
    cmp = _synthetic({"sgd": [2.0, 1.0, 1.8e11, 3e11], "adam": [2.0, 1.0, 0.5, 0.25]}, {"sgd": 4})
    fig = curves_figure(curves_data(cmp))
    sgd = next(t for t in fig.data if t.name and t.name.startswith("SGD") and t.showlegend)
    assert max(sgd.y) == 6.0  # 3x the largest starting loss
    marks = [t for t in fig.data if t.name and t.name.endswith("off the scale") and t.xaxis == "x"]
    assert len(marks) == 1 and list(marks[0].text) == ["1.8e+11", "3e+11"]
    cross = [t for t in fig.data if t.marker.symbol == "x" and t.xaxis == "x"]
    assert len(cross) == 1 and cross[0].x == (4.0,) and cross[0].y == (6.0,)
    assert "diverged at step 4" in cross[0].hovertemplate


def test_a_run_that_diverges_before_its_first_evaluation_is_still_drawn() -> None:
    cmp = _synthetic({"sgd": [2.0], "adam": [2.0, 1.0, 0.5]}, {"sgd": 3})
    fig = curves_figure(curves_data(cmp, x="step"))
    cross = [t for t in fig.data if t.marker.symbol == "x" and t.xaxis == "x2"]
    assert len(cross) == 1 and cross[0].x == (3.0,) and cross[0].y == (2.0,)
    rows = summary_rows(cmp)
    assert rows[0]["best val accuracy"] is None and rows[0]["final val accuracy"] is None
    assert rows[1]["best val accuracy"] == 0.5


def test_gradient_evaluations_axis_counts_lbfgs_closure_calls() -> None:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("lbfgs:lr=1"), OptimizerConfig.parse("sgd:lr=0.1")),
        epochs=2, batch_size=None, data={"name": "wine"}, seeds="0",
    )
    cmp = Comparison(cfg).execute()
    data = curves_data(cmp, x="grad_evals")
    lbfgs, sgd = data.bands["val_loss"]
    assert sgd.x == [0, 1, 2]  # one evaluation per step
    assert lbfgs.x[0] == 0 and lbfgs.x[-1] > 2
    assert curves_figure(data).layout.xaxis.title.text == "gradient evaluations"


def test_a_diverging_regression_does_not_flatten_the_r2_panel() -> None:
    from dlopt_core.engine.records import Record, Status

    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.015"), OptimizerConfig.parse("adam")),
        data={"name": "linear"}, model={"name": "linear"}, epochs=3, batch_size=None, seeds="0",
    )
    cmp = Comparison(cfg)
    for run, r2 in zip(cmp.runs, ([0.1, -50.0, -2.8e6], [0.17, 0.5, 0.84])):
        for epoch, value in enumerate(r2):
            run.apply(Record(epoch, float(epoch), epoch, 0.0, 0.1, None, 1.0, 1.0, value))
        run.end(Status.FINISHED)
    fig = curves_figure(curves_data(cmp))
    sgd = next(t for t in fig.data if t.xaxis == "x3" and t.name == "SGD lr=0.015")
    assert min(sgd.y) == -1.0  # clipped to the floor
    marks = next(t for t in fig.data if t.xaxis == "x3" and t.name == "SGD lr=0.015 off the scale")
    assert list(marks.text) == ["-50", "-2.8e+06"] and set(marks.marker.symbol) == {"triangle-down"}


def test_the_planned_schedule_is_laid_over_the_rows_a_reduction_keeps() -> None:
    from dlopt_core.engine.loop import run_budget

    def planned_steps(**reduce: object) -> int:
        cfg = ComparisonConfig.make(optimizers=(OptimizerConfig.parse("sgd:lr=0.1"),), epochs=2, **reduce)
        (curve,) = lr_schedule_data(cfg)
        assert len(curve.lr) == run_budget(cfg.runs()[0]).total_steps
        return len(curve.lr)

    full = planned_steps()
    assert planned_steps(reduce={"name": "subsample", "params": {"fraction": 0.5}}) < 0.6 * full
