"""Figures are built from plain data; tests check the data and the traces, never pixels."""

import math

from dlopt_core.compare import Comparison
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
    lines = [t for t in fig.data if t.fill is None]
    fills = [t for t in fig.data if t.fill == "toself"]
    assert len(lines) == 6 and len(fills) == 6
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
        schedule={"name": "step", "params": {"step_epochs": 2, "gamma": 0.5}},
        epochs=4,
    )
    curves = lr_schedule_data(cfg, n_train=640)
    assert [c.label for c in curves] == ["SGD lr=0.1", "Adam lr=0.01"]
    assert curves[0].lr[0] == 0.1 and curves[0].lr[-1] == 0.05 and curves[1].lr[-1] == 0.005
    assert curves[0].epoch[-1] < 4
    fig = lr_schedule_figure(curves)
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
