"""The sensitivity figure is built from plain data; tests check the data and the traces, never pixels."""

import math

from dlopt_core.experiments.sweep import SweepConfig, SweepPoint, best_lrs, lr_grid
from dlopt_core.plots import lr_text, sensitivity_data, sensitivity_figure
from dlopt_core.plots.sensitivity import log_ticks

LRS = lr_grid(1e-3, 10.0, 5)  # 0.001, 0.01, 0.1, 1, 10


def _point(name: str, lr: float, losses: tuple[float, ...], *, diverged: int = 0, epoch: float = 5.0) -> SweepPoint:
    metrics = tuple(1 - min(v, 1.0) for v in losses)
    return SweepPoint(name, name.upper(), lr, losses, metrics, diverged, epoch, True)


def _points() -> list[SweepPoint]:
    """SGD: a valley at 0.1, huge finite loss at 1, diverged at 10; Adam: best at the edge, 0.001,
    and one seed of two diverged at 0.1."""
    sgd = [(0.9, 1.1), (0.5, 0.52), (0.2, 0.22), (1e9, 2e9), ()]
    adam = [(0.1, 0.12), (0.3, 0.31), (0.6,), (0.9, 1.0), (1.5, 1.6)]
    points = [_point("sgd", lr, v, diverged=2 if not v else 0) for lr, v in zip(LRS, sgd)]
    return points + [_point("adam", lr, v, diverged=2 - len(v)) for lr, v in zip(LRS, adam)]


def test_lines_bands_and_best_lrs_come_from_the_points() -> None:
    points = _points()
    data = sensitivity_data(points, best_lrs(points, LRS), LRS, seeds=2, initial_loss=2.3)
    sgd, adam = data.lines
    assert sgd.label == "SGD" and sgd.color != adam.color
    assert math.isclose(sgd.mean[2], 0.21) and math.isclose(sgd.high[2] - sgd.low[2], 2 * sgd.sd[2])
    assert sgd.mean[4] is None  # diverged: the line breaks, it never runs off to infinity
    assert sgd.diverged_lr == [10.0] and sgd.diverged_text == ["diverged (2 of 2 seeds)"]
    assert (sgd.best_lr, sgd.on_edge) == (0.1, False) and math.isclose(sgd.best_value, 0.21)
    assert (adam.best_lr, adam.on_edge) == (0.001, True)
    assert adam.good_range == (0.001, 0.001) and sgd.good_range == (0.1, 0.1)
    assert adam.mean[2] is None and adam.diverged_text == ["diverged (1 of 2 seeds)"]
    # The band breaks where the line does: Adam's in two polygons, SGD's in one (its last lr diverged).
    assert adam.band_x.count(None) == 1 and sgd.band_x.count(None) == 0


def test_a_huge_finite_loss_is_labelled_off_scale_not_plotted() -> None:
    points = _points()
    data = sensitivity_data(points, best_lrs(points, LRS), LRS, seeds=2, initial_loss=2.3)
    sgd, adam = data.lines
    lo, hi = data.y_range
    assert data.capped and data.strip is not None and hi < 100  # 1e9 would flatten every valley
    assert sgd.off_scale_lr == [1.0] and sgd.off_scale_value == [1.5e9]
    assert data.strip[0] <= sgd.mark_y < adam.mark_y <= data.strip[1]  # a row each: marks never overlap
    assert all(lo <= t <= data.strip[0] for t in data.y_ticks)  # no tick claims a value in the strip
    assert min(v for line in data.lines for v in line.mean if v is not None) > lo


def test_without_an_initial_loss_the_median_caps_the_axis() -> None:
    points = _points()
    data = sensitivity_data(points, best_lrs(points, LRS), LRS)
    assert data.capped and data.y_range[1] < 100


def test_the_metric_view_is_linear_and_puts_diverged_marks_at_the_bottom() -> None:
    points = _points()
    data = sensitivity_data(points, best_lrs(points, LRS), LRS, "metric", seeds=2)
    assert not data.log_y
    sgd = data.lines[0]
    assert sgd.mark_y is not None and sgd.mark_y < min(v for v in sgd.mean if v is not None)
    assert all(h is None or h <= 1.0 for h in sgd.high)  # accuracy cannot exceed 1


def test_figure_draws_a_line_band_and_star_per_optimizer() -> None:
    points = _points()
    data = sensitivity_data(points, best_lrs(points, LRS), LRS, seeds=2, initial_loss=2.3)
    fig = sensitivity_figure(data, "final validation loss")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    crosses = [t for t in fig.data if t.marker.symbol == "x"]
    assert [t.name for t in lines] == ["SGD", "ADAM"]
    assert all(b.mode == "lines" and b.hoverinfo == "skip" and b.showlegend is False for b in bands)
    assert [(s.x[0], s.text[0]) for s in stars] == [(0.1, "0.1"), (0.001, "0.001")]
    assert [c.x for c in crosses] == [(10.0,), (0.1,)]
    assert crosses[0].customdata[0][1] == "diverged (2 of 2 seeds)"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.layout.yaxis.title.text == "final validation loss (log scale)"
    assert fig.layout.title.text == "Learning-rate sensitivity"
    assert lines[0].customdata[2][0] == "0.1"  # the hover's lr, 3 significant digits


def test_lr_text_and_ticks_read_as_plain_numbers() -> None:
    assert [lr_text(v) for v in (0.000231, 1.0, 1e-5, 0.0001)] == ["0.000231", "1", "1e-5", "0.0001"]
    assert log_ticks(0.04, 9) == [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
    assert log_ticks(1e-6, 10) == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]


def test_a_real_sweep_gives_one_line_per_optimizer() -> None:
    from dlopt_core.experiments.compare import Comparison
    from dlopt_core.experiments.sweep import sweep_points
    from dlopt_core.plots import initial_val_loss

    cfg = SweepConfig.make(
        optimizers=[{"name": "sgd"}, {"name": "adam"}], data={"name": "wine"}, points=4, seeds="0", epochs=2,
        lr_min=1e-3, lr_max=1.0,
    )
    comparison = Comparison(cfg).execute()
    points = sweep_points(comparison)
    initial = initial_val_loss(comparison)
    assert initial is not None and 0.5 < initial < 3  # about ln(3) for three classes, untrained
    data = sensitivity_data(points, best_lrs(points, cfg.lrs()), cfg.lrs(), seeds=1, initial_loss=initial)
    assert [line.label for line in data.lines] == ["SGD", "Adam"]
    assert data.done and data.epoch_min == data.epoch_max == 2
    assert all(line.best_lr in cfg.lrs() for line in data.lines)
