"""A learning-rate search's own figures, one colour per optimizer (Optuna draws the rest).

- the tuning budget: the best validation value so far against trials used, per optimizer:
  which optimizer reaches a good result in few trials (is easy to tune);
- every trial's validation value against its learning rate (log x): where the good rates
  are, which trials were pruned or diverged, and whether a best lr sits on its range's edge.

Two steps, as every figure family here: ``*_data`` turns study summaries into plain lists,
``*_figure`` draws them without computing anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.experiments.study.summary import StudySummary, TrialRow
from dlopt_core.plots.sensitivity import log_ticks, lr_text
from dlopt_core.plots.style import PALETTE, rgba

METRIC_TITLES = {"val_loss": "validation loss", "val_metric": "validation accuracy / R²"}
# A loss above this many times the median of an optimizer's completed trials is drawn at the
# top edge with its value written: one bad lr must not squash every good one into a line.
OFF_SCALE = 5.0


def _label(summary: StudySummary) -> str:
    return get_optimizer(summary.optimizer).label


def _finished(summary: StudySummary) -> list[TrialRow]:
    return sorted((t for t in summary.trials if t.state in ("complete", "pruned")), key=lambda t: t.number)


@dataclass(frozen=True)
class BudgetLine:
    """One optimizer: after ``trials[i]`` finished trials, the best value was ``best[i]``."""

    optimizer: str
    color: str
    trials: list[int]
    best: list[float | None]  # None until a trial completes (pruned and diverged ones never set it)
    n_trials: int


@dataclass(frozen=True)
class TuningBudgetData:
    """Everything the tuning-budget figure draws."""

    metric_title: str
    log_y: bool
    lines: list[BudgetLine]
    x_max: int
    y_ticks: list[float] = field(default_factory=list)  # log axis: 1, 2, 5 of each decade

    @property
    def y_tick_text(self) -> list[str]:
        return [f"{t:.3g}" for t in self.y_ticks]


def tuning_budget_data(summaries: Sequence[StudySummary]) -> TuningBudgetData:
    """Best-so-far against trials (in the order the trials were numbered), per optimizer."""
    lines = []
    for i, s in enumerate(summaries):
        better = min if s.direction == "minimize" else max
        best: float | None = None
        ys: list[float | None] = []
        for t in _finished(s):
            if t.state == "complete" and t.value is not None and math.isfinite(t.value):
                best = t.value if best is None else better(best, t.value)
            ys.append(best)
        lines.append(BudgetLine(_label(s), PALETTE[i % len(PALETTE)], list(range(1, len(ys) + 1)), ys, s.n_trials))
    metric = summaries[0].metric if summaries else "val_loss"
    bests = [b for line in lines for b in line.best if b is not None and b > 0]
    return TuningBudgetData(
        METRIC_TITLES.get(metric, metric), metric == "val_loss", lines,
        max([1, *(line.n_trials for line in lines), *(len(line.trials) for line in lines)]),
        log_ticks(min(bests), max(bests) * 1.0001) if metric == "val_loss" and bests else [],
    )


def tuning_budget_figure(data: TuningBudgetData, *, height: int = 380) -> go.Figure:
    """Best-so-far validation value against trials, a step line per optimizer."""
    fig = go.Figure()
    for line in data.lines:
        fig.add_trace(go.Scatter(
            x=line.trials, y=line.best, mode="lines+markers", name=line.optimizer, line={"color": line.color, "shape": "hv"},
            marker={"size": 5}, connectgaps=False,
            hovertemplate=f"{line.optimizer}: best %{{y:.4g}} after %{{x}} trials<extra></extra>",
        ))
    fig.update_layout(
        title={"text": "Tuning budget: the best result so far against trials used"},
        height=height, margin={"l": 60, "r": 20, "t": 60, "b": 40}, hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        xaxis={"title": {"text": "trials finished (complete or pruned)"}, "range": [0.5, data.x_max + 0.5], "dtick": max(1, data.x_max // 10)},
        yaxis={
            "title": {"text": f"best {data.metric_title}"}, "type": "log" if data.log_y else "linear", "tickformat": "~g",
            # Plotly labels every minor tick of a short log axis, and they overlap.
            **({"tickvals": data.y_ticks, "ticktext": data.y_tick_text} if len(data.y_ticks) >= 2 else {}),
        },
    )
    return fig


@dataclass(frozen=True)
class TrialPoints:
    """One optimizer's trials of one kind (complete, pruned or diverged)."""

    optimizer: str
    kind: str  # "complete", "pruned", "diverged", "best"
    color: str
    lr: list[float]
    value: list[float]  # where it is drawn (an off-scale or diverged trial: the top edge)
    text: list[str]  # the hover: trial number, lr, value, what happened


@dataclass(frozen=True)
class TrialLrData:
    """Everything the lr-vs-value figure draws."""

    metric_title: str
    log_y: bool
    groups: list[TrialPoints]
    bounds: list[tuple[str, str, float, float]]  # optimizer, colour, lr_min, lr_max
    y_range: tuple[float, float] | None  # in axis units (log10 for a log axis); None: automatic
    x_ticks: list[float] = field(default_factory=list)
    y_ticks: list[float] = field(default_factory=list)

    @property
    def x_tick_text(self) -> list[str]:
        return [lr_text(t) for t in self.x_ticks]


def _top(values: list[float], minimize: bool) -> float | None:
    if not values or not minimize:
        return None
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    return min(max(values), OFF_SCALE * median) if median > 0 else None


def trial_lr_data(summaries: Sequence[StudySummary]) -> TrialLrData:
    """Every finished trial at its lr: completed dots, pruned rings, diverged crosses, the best a star."""
    metric = summaries[0].metric if summaries else "val_loss"
    minimize = metric == "val_loss"
    values = [t.value for s in summaries for t in _finished(s) if t.value is not None and math.isfinite(t.value)]
    top = _top(values, minimize)
    # Where a diverged trial is drawn: the worst edge of the plot (top for a loss, bottom for accuracy).
    worst_edge = top if minimize else min(values, default=None)
    groups: list[TrialPoints] = []
    bounds = []
    for i, s in enumerate(summaries):
        color, name = PALETTE[i % len(PALETTE)], _label(s)
        bounds.append((name, color, *s.lr_range))
        kinds: dict[str, tuple[list[float], list[float], list[str]]] = {k: ([], [], []) for k in ("complete", "pruned", "diverged")}
        for t in _finished(s):
            if t.lr is None:
                continue
            if t.diverged_step is not None:
                kind, shown_at, what = "diverged", worst_edge, f"diverged at step {t.diverged_step}"
            elif t.value is None or not math.isfinite(t.value):
                continue
            else:
                kind = t.state
                shown_at = t.value if top is None else min(t.value, top)
                last_epoch = max(t.intermediate, default=None)
                what = f"{t.value:.4g}" + (f" (pruned at epoch {last_epoch})" if kind == "pruned" else "")
                if top is not None and t.value > top:
                    what += " (above the plotted range)"
            if shown_at is None:  # a diverged trial with no scale yet: nothing to draw it against
                continue
            xs, ys, texts = kinds[kind]
            xs.append(t.lr)
            ys.append(shown_at)
            texts.append(f"{name} trial {t.number}: lr {lr_text(t.lr)}, {what}")
        for kind, (xs, ys, texts) in kinds.items():
            if xs:
                groups.append(TrialPoints(name, kind, color, xs, ys, texts))
        if s.best is not None and s.best.lr is not None and s.best.value is not None:
            edge = " (on the edge of its range)" if s.best_on_edge else ""
            groups.append(TrialPoints(
                name, "best", color, [s.best.lr], [s.best.value if top is None else min(s.best.value, top)],
                [f"{name} best: trial {s.best.number}, lr {lr_text(s.best.lr)}, {s.best.value:.4g}{edge}"],
            ))
    lo = min((b[2] for b in bounds), default=1e-4)
    hi = max((b[3] for b in bounds), default=1.0)
    y_range = None
    positive = [v for v in values if v > 0]  # a loss of exactly 0 has no place on a log axis
    if top is not None and positive:
        bottom = min(positive)
        y_range = (math.log10(bottom) - 0.05 * math.log10(top / bottom) - 0.02, math.log10(top) + 0.08)
    y_ticks = log_ticks(10 ** y_range[0], 10 ** y_range[1]) if y_range else []
    return TrialLrData(METRIC_TITLES.get(metric, metric), minimize, groups, bounds, y_range, log_ticks(lo, hi), y_ticks)


_SYMBOLS = {"complete": "circle", "pruned": "circle-open", "diverged": "x-thin-open", "best": "star"}
_SIZES = {"complete": 8, "pruned": 8, "diverged": 10, "best": 16}
_KIND_NAMES = {"complete": "", "pruned": " pruned", "diverged": " diverged", "best": " best"}


def trial_lr_figure(data: TrialLrData, *, height: int = 420) -> go.Figure:
    """Each finished trial's validation value against its lr (log x); search ranges as dotted lines."""
    fig = go.Figure()
    for name, color, low, high in data.bounds:
        for x in (low, high):
            fig.add_vline(x=x, line={"color": rgba(color, 0.5), "width": 1, "dash": "dot"})
    for g in data.groups:
        fig.add_trace(go.Scatter(
            x=g.lr, y=g.value, mode="markers", name=f"{g.optimizer}{_KIND_NAMES[g.kind]}", legendgroup=g.optimizer,
            marker={
                "symbol": _SYMBOLS[g.kind], "size": _SIZES[g.kind], "color": g.color,
                "line": {"width": 2 if g.kind in ("pruned", "diverged") else 1, "color": g.color if g.kind != "best" else "black"},
            },
            text=g.text, hovertemplate="%{text}<extra></extra>",
        ))
    yaxis: dict[str, object] = {"title": {"text": data.metric_title}, "type": "log" if data.log_y else "linear", "tickformat": "~g"}
    if data.y_range is not None:
        yaxis["range"] = list(data.y_range)
    if len(data.y_ticks) >= 2:
        yaxis.update(tickvals=data.y_ticks, ticktext=[f"{t:.3g}" for t in data.y_ticks])
    fig.update_layout(
        title={"text": "Every trial: validation result against learning rate"},
        height=height, margin={"l": 60, "r": 20, "t": 60, "b": 40}, hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        xaxis={"title": {"text": "learning rate (log scale)"}, "type": "log", "tickvals": data.x_ticks, "ticktext": data.x_tick_text},
        yaxis=yaxis,
    )
    return fig
