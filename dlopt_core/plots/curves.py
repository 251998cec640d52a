"""Training curves of a comparison: mean and band over seeds per optimizer, three panels."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlopt_core.experiments.compare import Comparison, RunResult, metric_name
from dlopt_core.engine.loop import Record
from dlopt_core.plots.style import PALETTE, rgba

XAxis = Literal["epoch", "step", "grad_evals", "samples", "wall_time"]
BandKind = Literal["minmax", "sd"]
X_LABELS: dict[str, str] = {
    "epoch": "epoch",
    "step": "optimizer step",
    # An L-BFGS step evaluates the loss and gradient many times; per step it looks cheap.
    "grad_evals": "gradient evaluations",
    "samples": "samples seen",
    "wall_time": "training seconds",
}
METRICS = ("train_loss", "val_loss", "val_metric")
LOSSES = ("train_loss", "val_loss")
# A loss this many times the largest starting loss is off the scale: clipped and labelled,
# so one diverging run does not flatten every other curve.
OFF_SCALE = 3.0
R2_FLOOR = -1.0


@dataclass(frozen=True)
class Band:
    """One optimizer's curve over its seeds: mean with a low/high band."""

    label: str
    color: str
    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    n_runs: int
    note: str = ""
    # Where runs diverged: (x, the last finite value before it, the text to show).
    diverged: tuple[tuple[float, float, str], ...] = ()


@dataclass(frozen=True)
class CurvesData:
    """Everything the comparison figure draws, per metric."""

    bands: dict[str, list[Band]]
    x: XAxis
    metric_label: str
    optimum: float | None = None
    # The mean mini-batch loss while training (dropout on, weights moving), per optimizer.
    running: list[Band] | None = None
    # Curves above this are clipped to it (None: nothing is off the scale).
    loss_cap: float | None = None


def _value(rec: Record, key: str) -> float:
    if key == "grad_evals" and rec.grad_evals is None:
        return float(rec.step)  # one evaluation per step
    v = getattr(rec, key)
    return math.nan if v is None else float(v)


def _band(label: str, color: str, runs: list[RunResult], metric: str, x: XAxis, band: BandKind) -> Band:
    series = [[r for r in run.records if r.is_eval and math.isfinite(_value(r, metric))] for run in runs]
    diverged = []
    for run, points in zip(runs, series):
        end = run.records[-1] if run.records else None
        if run.status == "diverged" and end is not None:
            last = _value(points[-1], metric) if points else math.nan
            diverged.append((_value(end, x), last, f"diverged at step {run.diverged_step}"))
    length = max((len(s) for s in series), default=0)
    xs, means, lows, highs = [], [], [], []
    for i in range(length):
        points = [s[i] for s in series if len(s) > i]
        values = [_value(p, metric) for p in points]
        mean = statistics.fmean(values)
        if band == "sd" and len(values) > 1:
            sd = statistics.stdev(values)
            low, high = mean - sd, mean + sd
        else:
            low, high = min(values), max(values)
        xs.append(statistics.fmean(_value(p, x) for p in points))
        means.append(mean)
        lows.append(low)
        highs.append(high)
    # Runs that did not finish say so in the legend (e.g. "diverged at step 5").
    note = ", ".join(sorted({r.status_text for r in runs if r.status not in ("finished", "running", "pending")}))
    return Band(label, color, xs, means, lows, highs, len(runs), note, tuple(diverged))


def _loss_cap(comparison: Comparison) -> float | None:
    starts = [r.initial_loss for r in comparison.runs]
    finite = [s for s in starts if s is not None and math.isfinite(s)]
    return OFF_SCALE * max(finite) if finite else None


def curves_data(
    comparison: Comparison,
    *,
    x: XAxis = "epoch",
    band: BandKind = "minmax",
    optimum: float | None = None,
) -> CurvesData:
    """Mean and band per optimizer for train loss, validation loss and validation metric.

    ``optimum`` defaults to the comparison's own (solved beside training for linear models).
    """
    if optimum is None:
        optimum = comparison.optimum
    groups: dict[str, list[RunResult]] = {}
    for r in comparison.runs:
        groups.setdefault(r.label, []).append(r)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(groups)}
    bands = {
        m: [_band(label, colors[label], runs, m, x, band) for label, runs in groups.items()]
        for m in METRICS
    }
    running = [_band(label, colors[label], runs, "running_loss", x, band) for label, runs in groups.items()]
    return CurvesData(bands, x, metric_name(comparison.config), optimum, running, _loss_cap(comparison))


Bounds = tuple[float, float]  # (floor, cap) of a panel's axis; values outside are clipped


def _clipped(values: list[float], bounds: Bounds) -> tuple[list[float], list[int]]:
    """``values`` clipped into ``bounds``, and the indices that were clipped."""
    low, high = bounds
    out = [i for i, v in enumerate(values) if v > high or v < low]
    return [min(max(v, low), high) for v in values], out


def curves_figure(data: CurvesData, *, log_y: bool = False, title: str | None = None) -> go.Figure:
    """Three panels (train loss, validation loss, validation metric), one colour per optimizer.

    Losses above the cap are drawn at it, with an upward triangle and their value; a run
    that diverged ends in a cross at its last finite value, with the step in its hover.
    """
    titles = ("train loss", "validation loss", data.metric_label)
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    for col, metric in enumerate(METRICS, start=1):
        if metric in LOSSES:
            bounds = (-math.inf, data.loss_cap if data.loss_cap is not None else math.inf)
        else:
            # R² of a diverging regression reaches -1e6; below -1 a model is worse than
            # predicting the mean, which is all a reader needs to see.
            bounds = (R2_FLOOR if data.metric_label == "val R²" else -math.inf, math.inf)
        for b in data.bands[metric]:
            _add_band(fig, b, col, bounds)
        if metric == "train_loss" and data.running:
            for b in data.running:
                if b.x:
                    fig.add_trace(
                        go.Scatter(
                            x=b.x, y=_clipped(b.mean, bounds)[0], mode="lines",
                            line={"color": b.color, "width": 1, "dash": "dot"}, opacity=0.8,
                            name=f"{b.label}: running mini-batch loss", legendgroup=b.label, showlegend=False,
                            hovertemplate="%{y:.4g}<extra>running mini-batch loss</extra>",
                        ),
                        row=1, col=col,
                    )
        fig.update_xaxes(title_text=X_LABELS[data.x], row=1, col=col)
    if data.running and any(b.x for b in data.running):
        # One legend entry explains every dotted line.
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", line={"color": "grey", "width": 1, "dash": "dot"},
            name="dotted: running mini-batch loss (while training)",
        ))
    if log_y:
        # "~g": every tick reads as a number (0.05, not a bare "5" under 0.1, nor "50m").
        fig.update_yaxes(type="log", tickformat="~g", row=1, col=1)
        fig.update_yaxes(type="log", tickformat="~g", row=1, col=2)
    # On separable data the optimum is ~0, which a log axis cannot show; the caption says so.
    if data.optimum is not None and not (log_y and data.optimum < 1e-6):
        fig.add_hline(
            y=data.optimum,
            line={"dash": "dash", "color": "black", "width": 1},
            annotation_text=f"optimum {data.optimum:.4g}",
            annotation_position="top right",
            row=1,
            col=1,
        )
    fig.update_layout(
        title=title,
        height=420,
        margin={"l": 40, "r": 20, "t": 60 if title else 40, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        hovermode="x unified",
    )
    return fig


def _add_band(fig: go.Figure, b: Band, col: int, bounds: Bounds) -> None:
    if b.n_runs > 1 and b.x:
        fig.add_trace(
            go.Scatter(
                x=b.x + b.x[::-1],
                y=_clipped(b.high, bounds)[0] + _clipped(b.low, bounds)[0][::-1],
                fill="toself",
                # Explicit: plotly's default for under 20 points adds markers, drawn
                # in its own colours (not the legend's) at every polygon corner.
                mode="lines",
                fillcolor=rgba(b.color, 0.18),
                line={"width": 0},
                hoverinfo="skip",
                legendgroup=b.label,
                showlegend=False,
                name=f"{b.label} band",
            ),
            row=1,
            col=col,
        )
    mean, out = _clipped(b.mean, bounds)
    fig.add_trace(
        go.Scatter(
            x=b.x,
            y=mean,
            mode="lines+markers" if len(b.x) < 30 else "lines",
            line={"color": b.color, "width": 2},
            marker={"size": 4},
            name=f"{b.label} ({b.note})" if b.note else b.label,
            legendgroup=b.label,
            showlegend=col == 1,
        ),
        row=1,
        col=col,
    )
    if out:
        high = [b.mean[i] > bounds[1] for i in out]
        fig.add_trace(
            go.Scatter(
                x=[b.x[i] for i in out], y=[mean[i] for i in out], mode="markers+text",
                marker={"symbol": ["triangle-up" if h else "triangle-down" for h in high], "size": 10, "color": b.color},
                text=[f"{b.mean[i]:.2g}" for i in out],
                textposition=["bottom center" if h else "top center" for h in high],
                textfont={"size": 10, "color": b.color},
                hovertemplate=[f"{b.label}: {b.mean[i]:.3g} (off the scale)<extra></extra>" for i in out],
                legendgroup=b.label, showlegend=False, name=f"{b.label} off the scale",
            ),
            row=1, col=col,
        )
    for x, last, text in b.diverged:
        y = last if math.isfinite(last) else (b.mean[-1] if b.mean else math.nan)
        if not math.isfinite(y):
            continue
        y = min(max(y, bounds[0]), bounds[1])
        fig.add_trace(
            go.Scatter(
                x=[x], y=[y], mode="markers",
                marker={"symbol": "x", "size": 12, "color": b.color, "line": {"width": 1, "color": "black"}},
                hovertemplate=f"{b.label}: {text}<extra></extra>", legendgroup=b.label, showlegend=False,
                name=f"{b.label} {text}",
            ),
            row=1, col=col,
        )
