"""Curves of runs from several comparisons on one chart, optionally smoothed, raw curve faint behind."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from dlopt_core.engine.records import Record
from dlopt_core.experiments.compare import RunResult
from dlopt_core.plots.curves import X_LABELS, XAxis
from dlopt_core.plots.style import PALETTE

OVERLAY_METRICS: dict[str, str] = {
    "val_loss": "validation loss",
    "train_loss": "train loss",
    "running_loss": "running mini-batch loss",
    "val_metric": "validation metric (accuracy or R²)",
}


@dataclass(frozen=True)
class OverlayLine:
    """One run's curve: raw values, and the smoothed ones (``None``: not smoothed)."""

    label: str
    color: str
    x: list[float]
    raw: list[float]
    smooth: list[float] | None


@dataclass(frozen=True)
class OverlayData:
    lines: list[OverlayLine]
    x: XAxis
    metric: str
    smoothing: float


def smoothed(values: Sequence[float], weight: float) -> list[float]:
    """An exponential moving average with TensorBoard's debiasing (the first point is not pulled to 0).

    ``weight`` in [0, 1): 0 leaves the values as they are. Non-finite values pass through
    without entering the average (one diverged point must not poison the rest).
    """
    out, avg, n = [], 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        avg = avg * weight + (1 - weight) * v
        n += 1
        out.append(avg / (1 - weight**n) if weight > 0 else v)
    return out


def _value(rec: Record, key: str) -> float:
    if key == "grad_evals" and rec.grad_evals is None:
        return float(rec.step)
    v = getattr(rec, key)
    return math.nan if v is None else float(v)


def overlay_data(
    runs: Sequence[tuple[str, RunResult]],
    *,
    metric: str = "val_loss",
    x: XAxis = "epoch",
    smoothing: float = 0.0,
) -> OverlayData:
    """One line per ``(label, run)`` over its evaluations, aligned on ``x``; ``smoothing`` in [0, 1)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing: must be in [0, 1), got {smoothing!r}")
    lines = []
    for i, (label, run) in enumerate(runs):
        points = [r for r in run.records if r.is_eval and math.isfinite(_value(r, metric))]
        raw = [_value(r, metric) for r in points]
        lines.append(OverlayLine(
            label, PALETTE[i % len(PALETTE)], [_value(r, x) for r in points], raw,
            smoothed(raw, smoothing) if smoothing > 0 else None,
        ))
    return OverlayData(lines, x, metric, smoothing)


def overlay_figure(data: OverlayData, *, log_y: bool = False, title: str | None = None) -> go.Figure:
    """Every line in its own colour; smoothed lines solid over their raw curve drawn faint."""
    fig = go.Figure()
    for line in data.lines:
        if line.smooth is not None:
            fig.add_trace(go.Scatter(
                x=line.x, y=line.raw, mode="lines", line={"color": line.color, "width": 1}, opacity=0.25,
                name=f"{line.label} (raw)", legendgroup=line.label, showlegend=False, hoverinfo="skip",
            ))
        fig.add_trace(go.Scatter(
            x=line.x, y=line.smooth if line.smooth is not None else line.raw,
            mode="lines+markers" if len(line.x) < 30 else "lines",
            line={"color": line.color, "width": 2}, marker={"size": 4}, name=line.label, legendgroup=line.label,
        ))
    name = OVERLAY_METRICS.get(data.metric, data.metric)
    if data.smoothing > 0:
        name += f" (smoothed {data.smoothing:g}; raw faint)"
    fig.update_layout(
        title=title, height=460, xaxis_title=X_LABELS[data.x], yaxis_title=name,
        margin={"l": 50, "r": 20, "t": 50 if title else 30, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0}, hovermode="x unified",
    )
    if log_y and data.metric != "val_metric":
        fig.update_yaxes(type="log", tickformat="~g")
    return fig
