"""Learning-rate sensitivity: the final validation loss (or metric) against the lr, per optimizer.

Two steps, as every figure family here: :func:`sensitivity_data` turns sweep points into plain
lists (the line, a band over seeds, the best lr, diverged and off-scale points, the y range),
and :func:`sensitivity_figure` draws them without computing anything.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from typing import Literal

import plotly.graph_objects as go

from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.sweep import BestLr, SweepPoint
from dlopt_core.plots.style import PALETTE, rgba

SweepMetric = Literal["loss", "metric"]
TITLE = "Learning-rate sensitivity"
X_TITLE = "learning rate (log scale)"
# A loss above a few times the untrained model's is "worse than not training"; beyond that the
# exact value does not matter and would squash every good lr into the bottom of the plot.
CAP_OVER_INITIAL = 3.0
# Without the untrained loss, the median point is the robust reference (most lrs train).
CAP_OVER_MEDIAN = 10.0
# R² below -1 is worse than predicting the mean by more than the target's variance.
METRIC_FLOOR = -1.0
# On a log axis a band reaching 0 would run off to minus infinity; a decade below the mean is plenty.
LOG_BAND_FLOOR = 0.1
# A good lr: mean loss within this factor of the best one (the width of the valley).
GOOD_WITHIN = 1.2
# Diverged and off-scale marks sit in a strip beyond the data, one row per optimizer, each row
# this fraction of the data's span: marks of two optimizers at one lr never hide each other.
# With many such optimizers the rows shrink so the strip stays under STRIP_MOST of the span.
ROW_FRACTION = 0.1
STRIP_MOST = 0.5
STRIP_LABEL = "diverged / off scale"


def lr_text(lr: float) -> str:
    """A learning rate to 3 significant digits, as the grid rounds it (``0.000231``, ``1``, ``1e-5``)."""
    text = f"{lr:.3g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"  # "1e-5", not "1e-05"


def value_text(value: float) -> str:
    """A loss for a label: 3 significant digits, whole numbers up to a million, powers beyond."""
    if abs(value) >= 1e6:
        return lr_text(float(f"{value:.2g}"))
    return f"{value:,.0f}" if abs(value) >= 1000 else lr_text(value)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2 and 5 of each decade in [lo, hi]; only powers of ten over more than 3 decades.

    Plain numbers read better than plotly's default minor digits ("2", "5" after "10⁻¹") or its
    SI prefixes ("100µ" for 1e-4).
    """
    if not 0 < lo < hi:
        return []
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mantissas = (1,) if last - first > 3 else (1, 2, 5)
    ticks = [float(f"{m}e{e}") for e in range(first, last + 1) for m in mantissas]
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside if len(inside) >= 2 else [lo, hi]


def linear_ticks(lo: float, hi: float, *, most: int = 6) -> list[float]:
    """About ``most`` round ticks (steps of 1, 2 or 5 times a power of ten) in [lo, hi]."""
    raw = (hi - lo) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(start, math.floor(hi / step + 1e-9) + 1)]


@dataclass(frozen=True)
class SensitivityLine:
    """One optimizer across the grid; ``None`` breaks the line (diverged or not evaluated yet)."""

    optimizer: str
    label: str
    color: str
    lr: list[float]
    mean: list[float | None]
    sd: list[float]
    low: list[float | None]
    high: list[float | None]
    seeds: list[int]  # seeds with a value at each lr
    band_x: list[float | None] = field(default_factory=list)  # mean ± sd as polygons, ``None`` between
    band_y: list[float | None] = field(default_factory=list)
    diverged_lr: list[float] = field(default_factory=list)
    diverged_text: list[str] = field(default_factory=list)  # "diverged (1 of 3 seeds)"
    off_scale_lr: list[float] = field(default_factory=list)  # beyond the capped axis
    off_scale_value: list[float] = field(default_factory=list)
    best_lr: float | None = None
    best_value: float | None = None
    on_edge: bool = False
    good_range: tuple[float, float] | None = None  # lrs around the best within GOOD_WITHIN of its loss
    mark_y: float | None = None  # this optimizer's row in the strip (diverged and off-scale marks)


@dataclass(frozen=True)
class SensitivityData:
    """Everything the sensitivity figure draws."""

    lines: list[SensitivityLine]
    metric: SweepMetric
    log_y: bool
    y_range: tuple[float, float]  # in data units (strip included); the figure takes log10 on a log axis
    capped: bool  # some values lie beyond the data's range and are labelled in the strip
    epoch_min: float  # the least-trained point's epoch (of points with no diverged seed)
    epoch_max: float
    done: bool  # every run has ended
    strip: tuple[float, float] | None = None  # the y span of the marks' strip, at the bad end
    x_ticks: list[float] = field(default_factory=list)
    y_ticks: list[float] = field(default_factory=list)  # within the data's range, none in the strip

    @property
    def x_tick_text(self) -> list[str]:
        return [lr_text(t) for t in self.x_ticks]

    @property
    def y_tick_text(self) -> list[str]:
        return [value_text(t) if self.log_y else f"{t:g}" for t in self.y_ticks]


def initial_val_loss(comparison: Comparison) -> float | None:
    """The highest validation loss before any step (the evaluation at epoch 0), if recorded yet."""
    first = [
        r.records[0].val_loss for r in comparison.runs
        if r.records and r.records[0].is_eval and r.records[0].epoch == 0
    ]
    finite = [v for v in first if v is not None and math.isfinite(v)]
    return max(finite) if finite else None


def _good_range(points: list[SweepPoint], best: BestLr) -> tuple[float, float]:
    """The contiguous lrs around the best whose mean loss is within GOOD_WITHIN of it."""
    ordered = sorted(points, key=lambda p: p.lr)
    at = next(i for i, p in enumerate(ordered) if p.lr == best.lr)

    def good(p: SweepPoint) -> bool:
        return p.mean_loss is not None and p.mean_loss <= GOOD_WITHIN * best.loss

    lo = hi = at
    while lo > 0 and good(ordered[lo - 1]):
        lo -= 1
    while hi < len(ordered) - 1 and good(ordered[hi + 1]):
        hi += 1
    return ordered[lo].lr, ordered[hi].lr


def _y_range(
    values: list[float], lows: list[float], highs: list[float], *, metric: SweepMetric, initial_loss: float | None
) -> tuple[tuple[float, float], bool]:
    """The y range to show and whether some values were cut off (see the cap constants)."""
    if metric == "metric":
        if not values:
            return (0.0, 1.0), False
        lo, hi = min(lows), max(highs)
        capped = lo < METRIC_FLOOR
        lo = max(lo, METRIC_FLOOR)
        pad = 0.05 * max(hi - lo, 0.02)
        return (lo - pad, hi + pad), capped
    if not values:
        ref = initial_loss or 1.0
        return (ref / 10, ref * CAP_OVER_INITIAL), False
    cap = CAP_OVER_INITIAL * initial_loss if initial_loss else CAP_OVER_MEDIAN * statistics.median(values)
    # When every lr is that bad, still show the best few rather than an empty plot.
    cap = max(cap, 2 * min(values))
    # Pad a little in log space so the extreme points do not sit on the frame; a log axis has no 0.
    lo = min((v for v in lows if v > 0), default=min(values) or 1e-12) / 1.25
    hi = min(max(highs), cap) * 1.25
    return (lo, hi), max(values) > hi


def sensitivity_data(
    points: list[SweepPoint],
    best: dict[str, BestLr],
    lrs: list[float],
    metric: SweepMetric = "loss",
    *,
    seeds: int | None = None,
    initial_loss: float | None = None,
) -> SensitivityData:
    """Per optimizer: mean ± sd over seeds at each lr, its best lr, diverged and off-scale points.

    Args:
        points: :func:`~dlopt_core.experiments.sweep.sweep_points` of a sweep (live or finished).
        best: :func:`~dlopt_core.experiments.sweep.best_lrs` of those points.
        lrs: the sweep's grid, low to high.
        metric: ``"loss"`` (validation loss, log y) or ``"metric"`` (accuracy or R², linear y).
        seeds: seeds per point, for "diverged (n of m seeds)"; by default those that reported.
        initial_loss: the untrained validation loss (:func:`initial_val_loss`), which caps the
            loss axis at a few times it; without it a robust multiple of the median caps it.
    """
    by_optimizer: dict[str, dict[float, SweepPoint]] = {}
    for p in points:
        by_optimizer.setdefault(p.optimizer, {})[p.lr] = p
    lines, values, lows, highs = [], [], [], []
    for i, (name, at) in enumerate(by_optimizer.items()):
        first = next(iter(at.values()))
        mean, sd, low, high, counts, div_lr, div_text = [], [], [], [], [], [], []
        for lr in lrs:
            p = at.get(lr)
            m = None if p is None else (p.mean_loss if metric == "loss" else p.mean_metric)
            s = 0.0 if p is None else (p.sd_loss if metric == "loss" else p.sd_metric)
            if p is not None and p.diverged:
                total = seeds if seeds is not None else len(p.losses) + p.diverged
                div_lr.append(lr)
                div_text.append(f"diverged ({p.diverged} of {total} seeds)")
            lo = hi = None
            if m is not None:
                lo, hi = m - s, m + s
                if metric == "loss":
                    lo = max(lo, LOG_BAND_FLOOR * m)
                else:
                    hi = min(hi, 1.0)  # accuracy and R² cannot exceed 1
                values.append(m)
                lows.append(lo)
                highs.append(hi)
            mean.append(m)
            sd.append(s)
            low.append(lo)
            high.append(hi)
            counts.append(0 if p is None else len(p.losses))
        b = best.get(name)
        best_value = None if b is None else (b.loss if metric == "loss" else b.metric)
        band_x, band_y = _band_polygons(list(lrs), low, high) if any(sd) else ([], [])
        lines.append(SensitivityLine(
            optimizer=name, label=first.label, color=PALETTE[i % len(PALETTE)], lr=list(lrs),
            mean=mean, sd=sd, low=low, high=high, seeds=counts, band_x=band_x, band_y=band_y,
            diverged_lr=div_lr, diverged_text=div_text,
            best_lr=None if b is None else b.lr, best_value=best_value, on_edge=bool(b and b.on_edge),
            good_range=None if b is None else _good_range(list(at.values()), b),
        ))
    (lo, hi), capped = _y_range(values, lows, highs, metric=metric, initial_loss=initial_loss)
    if capped:
        lines = [_with_off_scale(line, lo, hi) for line in lines]
    y_range, strip, lines = _strip(lines, lo, hi, log_y=metric == "loss")
    # A point with a diverged seed stops at its divergence epoch; it says nothing about progress.
    epochs = [p.epoch for p in points if not p.diverged and p.losses] or [0.0]
    return SensitivityData(
        lines=lines, metric=metric, log_y=metric == "loss", y_range=y_range, capped=capped,
        epoch_min=min(epochs), epoch_max=max(epochs), done=bool(points) and all(p.done for p in points),
        strip=strip, x_ticks=log_ticks(lrs[0], lrs[-1]) if lrs else [],
        y_ticks=log_ticks(lo, hi) if metric == "loss" else linear_ticks(lo, hi),
    )


def _with_off_scale(line: SensitivityLine, lo: float, hi: float) -> SensitivityLine:
    off = [(lr, m) for lr, m in zip(line.lr, line.mean) if m is not None and not lo <= m <= hi]
    return replace(line, off_scale_lr=[lr for lr, _ in off], off_scale_value=[m for _, m in off])


def _strip(
    lines: list[SensitivityLine], lo: float, hi: float, *, log_y: bool
) -> tuple[tuple[float, float], tuple[float, float] | None, list[SensitivityLine]]:
    """Widen the y range by a strip at the bad end (top for a loss, bottom for a metric), a row
    per optimizer with diverged or off-scale points; returns the range, the strip and the lines."""
    marked = [i for i, line in enumerate(lines) if line.diverged_lr or line.off_scale_lr]
    if not marked:
        return (lo, hi), None, lines
    out = list(lines)
    fraction = min(ROW_FRACTION, STRIP_MOST / len(marked))
    if log_y:
        step = (hi / lo) ** fraction
        for row, i in enumerate(marked, start=1):
            out[i] = replace(lines[i], mark_y=hi * step**row)
        top = hi * step ** (len(marked) + 0.8)
        return (lo, top), (hi * step**0.3, top), out
    step = (hi - lo) * fraction
    for row, i in enumerate(marked, start=1):
        out[i] = replace(lines[i], mark_y=lo - step * row)
    bottom = lo - step * (len(marked) + 0.8)
    return (bottom, hi), (bottom, lo - step * 0.3), out


def _band_polygons(
    xs: list[float], lows: list[float | None], highs: list[float | None]
) -> tuple[list[float | None], list[float | None]]:
    """A closed polygon per run of consecutive points with a value; plotly's ``fill="toself"``
    closes each ``None``-separated piece on its own, so the band breaks where the line does."""
    px: list[float | None] = []
    py: list[float | None] = []
    run: list[int] = []
    for i in [*range(len(xs)), None]:
        if i is not None and lows[i] is not None:
            run.append(i)
            continue
        if run:
            if px:
                px.append(None)
                py.append(None)
            px += [xs[j] for j in run] + [xs[j] for j in reversed(run)]
            py += [highs[j] for j in run] + [lows[j] for j in reversed(run)]
        run = []
    return px, py


def sensitivity_figure(data: SensitivityData, metric_label: str, *, height: int = 460) -> go.Figure:
    """The final value against the lr (log x), one colour per optimizer, the best lr starred.

    Args:
        data: from :func:`sensitivity_data`.
        metric_label: the y axis's name, e.g. ``"final validation loss"`` or ``"val accuracy"``.
        height: the figure's height in pixels.
    """
    fig = go.Figure()
    edge_symbol = "triangle-up" if data.metric == "loss" else "triangle-down"
    starred: set[float] = set()  # a second star at the same lr writes its label above, not over the first
    for line in data.lines:
        group = line.label
        if line.band_x:
            fig.add_trace(go.Scatter(
                x=line.band_x, y=line.band_y, mode="lines", fill="toself", fillcolor=rgba(line.color, 0.18),
                line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group, name=f"{line.label} ± 1 sd",
            ))
        custom = [
            [lr_text(lr), "" if m is None else f"{m:.4g}", f" ± {s:.2g}" if s else "", n]
            for lr, m, s, n in zip(line.lr, line.mean, line.sd, line.seeds)
        ]
        fig.add_trace(go.Scatter(
            x=line.lr, y=line.mean, mode="lines+markers", name=line.label, legendgroup=group,
            line={"color": line.color, "width": 2}, marker={"size": 6}, connectgaps=False,
            customdata=custom,
            hovertemplate=f"{line.label}: %{{customdata[1]}}%{{customdata[2]}} "
            "at lr %{customdata[0]} (seeds: %{customdata[3]})<extra></extra>",
        ))
        if line.best_lr is not None and line.best_value is not None:
            below = line.best_lr not in starred
            starred.add(line.best_lr)
            fig.add_trace(go.Scatter(
                x=[line.best_lr], y=[line.best_value], mode="markers+text", name=f"best lr {line.label}",
                legendgroup=group, showlegend=False, text=[lr_text(line.best_lr)], textfont={"color": line.color},
                textposition="bottom center" if below else "top center", cliponaxis=False,
                marker={"symbol": "star", "size": 18, "color": line.color, "line": {"color": "white", "width": 1}},
                hovertemplate=f"best lr for {line.label}: {lr_text(line.best_lr)}"
                + (" (on the edge of the range)" if line.on_edge else "") + "<extra></extra>",
            ))
        if line.diverged_lr:
            fig.add_trace(go.Scatter(
                x=line.diverged_lr, y=[line.mark_y] * len(line.diverged_lr), mode="markers",
                name=f"diverged {line.label}", legendgroup=group, showlegend=False,
                marker={"symbol": "x", "size": 11, "color": line.color, "line": {"width": 1}},
                customdata=[[lr_text(lr), t] for lr, t in zip(line.diverged_lr, line.diverged_text)],
                hovertemplate=f"{line.label}: %{{customdata[1]}} at lr %{{customdata[0]}}<extra></extra>",
            ))
        if line.off_scale_lr:
            texts = [value_text(v) for v in line.off_scale_value]
            fig.add_trace(go.Scatter(
                x=line.off_scale_lr, y=[line.mark_y] * len(line.off_scale_lr), mode="markers+text",
                name=f"off scale {line.label}", legendgroup=group, showlegend=False,
                text=texts, textposition="top center", textfont={"color": line.color, "size": 9},
                cliponaxis=False,
                marker={"symbol": edge_symbol, "size": 10, "color": line.color},
                customdata=[[lr_text(lr), t] for lr, t in zip(line.off_scale_lr, texts)],
                hovertemplate=f"{line.label}: %{{customdata[1]}} at lr %{{customdata[0]}} "
                "(off the scale)<extra></extra>",
            ))
    lo, hi = data.y_range
    y_range = [math.log10(lo), math.log10(hi)] if data.log_y else [lo, hi]
    if data.strip is not None:
        # Shade the strip and name it, so a mark there is never read as a value on the axis.
        fig.add_hrect(y0=data.strip[0], y1=data.strip[1], fillcolor="rgba(128,128,128,0.12)", line_width=0)
        far = data.strip[1] if data.metric == "loss" else data.strip[0]
        fig.add_annotation(
            # Annotations on a log axis take log10 positions; shapes take values.
            x=0, xref="paper", xanchor="left", y=math.log10(far) if data.log_y else far,
            yanchor="top" if data.metric == "loss" else "bottom", text=STRIP_LABEL, showarrow=False,
            font={"size": 10, "color": "gray"},
        )
    fig.update_layout(
        title={"text": TITLE},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        hovermode="closest",
        xaxis={
            "title": {"text": X_TITLE}, "type": "log", "tickvals": data.x_ticks, "ticktext": data.x_tick_text,
        },
        yaxis={
            "title": {"text": f"{metric_label} (log scale)" if data.log_y else metric_label},
            "type": "log" if data.log_y else "linear", "range": y_range,
            "tickvals": data.y_ticks, "ticktext": data.y_tick_text,
        },
    )
    return fig
