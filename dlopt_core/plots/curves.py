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

XAxis = Literal["epoch", "step", "samples", "wall_time"]
BandKind = Literal["minmax", "sd"]
X_LABELS: dict[str, str] = {
    "epoch": "epoch",
    "step": "optimizer step",
    "samples": "samples seen",
    "wall_time": "wall-clock seconds",
}
METRICS = ("train_loss", "val_loss", "val_metric")


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


@dataclass(frozen=True)
class CurvesData:
    """Everything the comparison figure draws, per metric."""

    bands: dict[str, list[Band]]
    x: XAxis
    metric_label: str
    optimum: float | None = None


def _value(rec: Record, key: str) -> float:
    v = getattr(rec, key)
    return math.nan if v is None else float(v)


def _band(label: str, color: str, runs: list[RunResult], metric: str, x: XAxis, band: BandKind) -> Band:
    series = [[r for r in run.records if r.is_eval and math.isfinite(_value(r, metric))] for run in runs]
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
    return Band(label, color, xs, means, lows, highs, len(runs), note)


def curves_data(
    comparison: Comparison,
    *,
    x: XAxis = "epoch",
    band: BandKind = "minmax",
    optimum: float | None = None,
) -> CurvesData:
    """Mean and band per optimizer for train loss, validation loss and validation metric."""
    groups: dict[str, list[RunResult]] = {}
    for r in comparison.runs:
        groups.setdefault(r.label, []).append(r)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(groups)}
    bands = {
        m: [_band(label, colors[label], runs, m, x, band) for label, runs in groups.items()]
        for m in METRICS
    }
    return CurvesData(bands, x, metric_name(comparison.config), optimum)


def curves_figure(data: CurvesData, *, log_y: bool = False, title: str | None = None) -> go.Figure:
    """Three panels (train loss, validation loss, validation metric), one colour per optimizer."""
    titles = ("train loss", "validation loss", data.metric_label)
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    for col, metric in enumerate(METRICS, start=1):
        for b in data.bands[metric]:
            if b.n_runs > 1 and b.x:
                fig.add_trace(
                    go.Scatter(
                        x=b.x + b.x[::-1],
                        y=b.high + b.low[::-1],
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
            fig.add_trace(
                go.Scatter(
                    x=b.x,
                    y=b.mean,
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
        fig.update_xaxes(title_text=X_LABELS[data.x], row=1, col=col)
    if log_y:
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_yaxes(type="log", row=1, col=2)
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


