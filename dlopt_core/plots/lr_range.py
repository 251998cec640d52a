"""The LR range test: loss against the learning rate (log x), one line per seed, suggestions marked.

Two steps, as every figure family here: :func:`lr_range_data` turns a
:class:`~dlopt_core.experiments.lr_range.LRRangeResult` into plain lists (the lines, the
suggestion marks with their spread over seeds, the axis ranges), and :func:`lr_range_figure`
draws them without computing anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import plotly.graph_objects as go

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.experiments.lr_range import (
    SUGGESTION_LABELS,
    SUGGESTIONS,
    LRRangeResult,
)
from dlopt_core.plots.sensitivity import log_ticks, lr_text
from dlopt_core.plots.style import rgba

X_TITLE = "learning rate (log scale)"
Y_TITLE = "training loss (smoothed)"
# Seeds in shades of one blue: the seeds are repeats of one test, not things to tell apart,
# and the suggestions' colours must stand out from all of them.
SEED_COLORS = ("#1f77b4", "#6baed6", "#08519c", "#9ecae1", "#3182bd")
SUGGESTION_COLORS = {"steepest": "#d62728", "valley": "#2ca02c", "minimum_over_10": "#9467bd"}
RAW_ALPHA = 0.25
# The top of the y axis: this much above the highest smoothed loss before each seed's minimum
# (the untrained loss, in practice). The explosion at the end climbs far beyond it and would
# otherwise squash the whole descent into the bottom of the plot.
HEADROOM = 1.15
# The bottom: the raw losses scatter below the smoothed minimum; their 5th percentile keeps the
# noise visible without letting one lucky batch stretch the axis.
RAW_FLOOR_PERCENTILE = 5
# A label to the right of a mark in the last third of the x axis would run off the plot.
LABEL_LEFT_AFTER = 2 / 3


@dataclass(frozen=True)
class LRRangeLine:
    """One seed's curve: smoothed loss (the line) and the raw mini-batch loss (faint)."""

    seed: int
    color: str
    lr: list[float]
    smoothed: list[float]
    raw: list[float]
    exploded: bool


@dataclass(frozen=True)
class SuggestionMark:
    """A suggestion across seeds: a vertical line at the median, a band from the lowest to the highest."""

    name: str  # "steepest", "valley" or "minimum_over_10"
    label: str  # "valley 0.0123"
    color: str
    lr: float
    low: float
    high: float
    label_y: float  # where its label sits, staggered so close marks do not write over each other
    label_left: bool  # written to the left of the line: near the right edge it would be cut off


@dataclass(frozen=True)
class LRRangeData:
    """Everything the range-test figure draws."""

    title: str
    lines: list[LRRangeLine]
    marks: list[SuggestionMark]
    x_range: tuple[float, float]  # in lr units; the figure takes log10
    y_range: tuple[float, float]
    x_ticks: list[float] = field(default_factory=list)

    @property
    def x_tick_text(self) -> list[str]:
        return [lr_text(t) for t in self.x_ticks]


def _y_range(result: LRRangeResult) -> tuple[float, float]:
    tops, bottoms = [], []
    for c in result.curves:
        smoothed = np.asarray(c.smoothed, dtype=float)
        finite = smoothed[np.isfinite(smoothed)]
        if not len(finite):
            continue
        lowest = int(np.nanargmin(np.where(np.isfinite(smoothed), smoothed, np.nan)))
        tops.append(float(np.max(smoothed[: lowest + 1])))
        raw = np.asarray(c.losses, dtype=float)
        raw = raw[np.isfinite(raw)]
        bottoms.append(min(float(finite.min()), float(np.percentile(raw, RAW_FLOOR_PERCENTILE)) if len(raw) else math.inf))
    if not tops:
        return 0.0, 1.0
    lo, hi = min(bottoms), max(tops) * HEADROOM
    pad = 0.05 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 1.0
    lo -= pad
    if lo < 0 <= min(bottoms):  # losses here are never negative: no axis below 0
        lo = 0.0
    return lo, hi


def lr_range_data(result: LRRangeResult) -> LRRangeData:
    """The lines per seed, the suggestions (median over seeds, with their spread) and the axes."""
    config = result.config
    lines = [
        LRRangeLine(c.seed, SEED_COLORS[i % len(SEED_COLORS)], list(c.lrs), list(c.smoothed), list(c.losses), c.exploded)
        for i, c in enumerate(result.curves)
    ]
    lo, hi = _y_range(result)
    marks = []
    for name in SUGGESTIONS:
        lr, spread = getattr(result.suggestions, name), result.spread[name]
        if lr is None or spread is None:
            continue
        row = len(marks)
        marks.append(SuggestionMark(
            name=name, label=f"{SUGGESTION_LABELS[name]} {lr_text(lr)}", color=SUGGESTION_COLORS[name], lr=lr,
            low=spread[0], high=spread[1], label_y=hi - (0.06 + 0.08 * row) * (hi - lo), label_left=False,
        ))
    last = max((c.lrs[-1] for c in result.curves if c.lrs), default=config.lr_max)
    # The marks can lie left of the curve (minimum / 10 of a test that exploded early).
    x_lo = min([config.lr_min, *(m.low for m in marks)])
    x_hi = max([last, *(m.high for m in marks)])
    decades = math.log10(x_hi / x_lo)
    marks = [replace(m, label_left=math.log10(m.lr / x_lo) > LABEL_LEFT_AFTER * decades) for m in marks]
    seeds = ",".join(str(s) for s in config.seeds)
    return LRRangeData(
        title=f"LR range test: {get_optimizer(config.optimizer.name).label} (seeds {seeds})",
        lines=lines, marks=marks, x_range=(x_lo, x_hi), y_range=(lo, hi), x_ticks=log_ticks(x_lo, x_hi),
    )


def lr_range_figure(data: LRRangeData | LRRangeResult, *, height: int = 460) -> go.Figure:
    """The smoothed loss against the lr (log x) per seed, the raw loss faint, the suggestions marked.

    Args:
        data: from :func:`lr_range_data`, or the result itself.
        height: the figure's height in pixels.
    """
    if isinstance(data, LRRangeResult):
        data = lr_range_data(data)
    fig = go.Figure()
    lo, hi = data.y_range
    for m in data.marks:
        if m.high > m.low:
            fig.add_trace(go.Scatter(
                x=[m.low, m.high, m.high, m.low, m.low], y=[lo, lo, hi, hi, lo], mode="lines", fill="toself",
                fillcolor=rgba(m.color, 0.12), line={"width": 0}, hoverinfo="skip", showlegend=False,
                legendgroup=m.name, name=f"{m.label}: range over seeds",
            ))
    for line in data.lines:
        group = f"seed {line.seed}"
        fig.add_trace(go.Scatter(
            x=line.lr, y=line.raw, mode="lines", name=f"{group} raw loss", legendgroup=group, showlegend=False,
            line={"color": rgba(line.color, RAW_ALPHA), "width": 1}, hoverinfo="skip",
        ))
        fig.add_trace(go.Scatter(
            x=line.lr, y=line.smoothed, mode="lines", name=group, legendgroup=group,
            line={"color": line.color, "width": 2},
            customdata=[lr_text(lr) for lr in line.lr],
            hovertemplate=f"{group}: loss %{{y:.4g}} at lr %{{customdata}}<extra></extra>",
        ))
    for m in data.marks:
        spread = f" (seeds: {lr_text(m.low)} to {lr_text(m.high)})" if m.high > m.low else ""
        fig.add_trace(go.Scatter(
            x=[m.lr, m.lr], y=[lo, hi], mode="lines", name=m.label, legendgroup=m.name,
            line={"color": m.color, "width": 2, "dash": "dash"},
            hovertemplate=f"{m.label}{spread}<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            x=[m.lr], y=[m.label_y], mode="text", text=[m.label], textposition="middle left" if m.label_left else "middle right",
            textfont={"color": m.color, "size": 11}, showlegend=False, legendgroup=m.name, hoverinfo="skip",
            name=f"{m.label} label",
        ))
    fig.update_layout(
        title={"text": data.title},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        hovermode="closest",
        xaxis={
            "title": {"text": X_TITLE}, "type": "log", "range": [math.log10(v) for v in data.x_range],
            "tickvals": data.x_ticks, "ticktext": data.x_tick_text,
        },
        yaxis={"title": {"text": Y_TITLE}, "range": list(data.y_range)},
    )
    return fig
