"""Continual-learning figures: the accuracy matrix, the summary table, anytime accuracy, who forgets least.

Each in two steps: ``*_data()`` turns a :class:`~dlopt_core.experiments.continual.Continual`'s
runs into plain lists (what tests check), ``*_figure()`` draws them and computes nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from dlopt_core.continual import get_strategy
from dlopt_core.engine.records import Status
from dlopt_core.experiments.continual import MEASURES, Continual, mean_matrix, summarize
from dlopt_core.plots.style import PALETTE, rgba

MEASURE_TITLES = {
    "average_accuracy": "average accuracy", "forgetting": "forgetting", "bwt": "backward transfer",
    "fwt": "forward transfer",
}


def pair_label(optimizer: str, strategy: str) -> str:
    """``Adam lr=0.001 + Replay``: an optimizer x strategy as legends and titles name it."""
    return f"{optimizer} + {get_strategy(strategy).label}"


@dataclass(frozen=True)
class AccuracyMatrixData:
    """R(i, j) of one optimizer x strategy, averaged over seeds: a row per task done so far."""

    title: str
    tasks: list[str]
    rows: list[list[float]]  # rows[i][j]: accuracy on task j after task i
    seeds: int


def accuracy_matrix_data(continual: Continual, *, optimizer: str, strategy: str) -> AccuracyMatrixData:
    """The mean accuracy matrix of ``optimizer`` (its label) with ``strategy`` (its name), rows as they finish."""
    runs = [r for r in continual.runs_of(optimizer, strategy) if r.rows and r.status not in (Status.DIVERGED, Status.FAILED)]
    return AccuracyMatrixData(pair_label(optimizer, strategy), list(continual.config.tasks),
                              mean_matrix(continual, optimizer, strategy), len(runs))


def accuracy_matrix_figure(data: AccuracyMatrixData, *, title: str | None = None) -> go.Figure:
    # Every row drawn, the ones to come blank: the heatmap keeps its shape while it fills.
    blank: list[float | None] = [None] * len(data.tasks)
    z = [*data.rows, *([blank] * (len(data.tasks) - len(data.rows)))]
    text = [[f"{v:.2f}" if v is not None else "" for v in row] for row in z]
    # Tasks as T1, T2, ... on the axes (their names in the hover): three matrices fit a row at
    # 820 px, and the numbers are in the cells, so there is no colour bar either.
    short = [f"T{i + 1}" for i in range(len(data.tasks))]
    names = [[(data.tasks[i], data.tasks[j]) for j in range(len(data.tasks))] for i in range(len(data.tasks))]
    fig = go.Figure(go.Heatmap(
        z=z, x=short, y=short, zmin=0.0, zmax=1.0, colorscale="Viridis", customdata=names,
        text=text, texttemplate="%{text}", showscale=False,
        hovertemplate="after training %{customdata[0]}<br>tested on %{customdata[1]}: %{z:.3f}<extra></extra>",
    ))
    seeds = f"{data.seeds} seed{'s' if data.seeds != 1 else ''}"
    fig.update_layout(title=title or f"{data.title} ({seeds})", xaxis_title="tested on task",
                      yaxis_title="after training task", yaxis_autorange="reversed",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def continual_table_data(continual: Continual) -> list[dict[str, Any]]:
    """One row per optimizer x strategy: each measure as ``mean ± sd`` over the finished seeds."""
    rows = []
    for s in summarize(continual):
        row: dict[str, Any] = {"optimizer": s.optimizer, "strategy": get_strategy(s.strategy).label}
        for m in MEASURES:
            mean, sd = s.means[m], s.sds[m]
            row[MEASURE_TITLES[m]] = "-" if mean is None else f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"
        row["finished"] = f"{s.finished}/{s.runs}"
        rows.append(row)
    return rows


@dataclass(frozen=True)
class AnytimeCurve:
    label: str
    tasks: list[int]  # 1-based: after task 1, 2, ...
    mean: list[float]
    low: list[float]  # the lowest seed after each task
    high: list[float]
    seeds: int


@dataclass(frozen=True)
class AnytimeData:
    """Average accuracy on the tasks seen so far, after each task, per optimizer x strategy."""

    tasks: list[str]
    curves: list[AnytimeCurve]


def anytime_data(continual: Continual) -> AnytimeData:
    """Per optimizer x strategy: the tasks every live seed has done, the mean over seeds and their range."""
    curves = []
    for opt in continual.config.optimizers:
        for strategy in continual.config.strategies:
            runs = [r for r in continual.runs_of(opt.label, strategy)
                    if r.rows and r.status not in (Status.DIVERGED, Status.FAILED)]
            if not runs:
                continue
            reached = min(len(r.rows) for r in runs)
            values = [[r.anytime[i] for r in runs] for i in range(reached)]
            curves.append(AnytimeCurve(
                pair_label(opt.label, strategy), list(range(1, reached + 1)), [statistics.fmean(v) for v in values],
                [min(v) for v in values], [max(v) for v in values], len(runs),
            ))
    return AnytimeData(list(continual.config.tasks), curves)


def anytime_figure(data: AnytimeData, *, title: str = "anytime accuracy: the tasks seen so far") -> go.Figure:
    fig = go.Figure()
    for i, c in enumerate(data.curves):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=c.tasks + c.tasks[::-1], y=c.high + c.low[::-1], fill="toself", fillcolor=rgba(color, 0.15),
            line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=c.label,
        ))
        fig.add_trace(go.Scatter(
            x=c.tasks, y=c.mean, mode="lines+markers", name=f"{c.label} ({c.seeds} seed{'s' if c.seeds != 1 else ''})", legendgroup=c.label,
            line={"color": color},
        ))
    fig.update_layout(
        title=title, xaxis={"title": "after task", "tickvals": list(range(1, len(data.tasks) + 1)),
                            "ticktext": data.tasks},
        yaxis={"title": "mean accuracy on tasks 1..i", "range": [0, 1.02]},
    )
    return fig


@dataclass(frozen=True)
class ForgettingBar:
    label: str
    optimizer: str
    strategy: str
    mean: float
    sd: float
    seeds: int


@dataclass(frozen=True)
class ForgettingRankData:
    """Final forgetting per optimizer x strategy (finished seeds), least first."""

    bars: list[ForgettingBar]


def forgetting_rank_data(continual: Continual, *, strategy: str | None = None) -> ForgettingRankData:
    """Who forgets least: every optimizer x strategy with a finished run (or one ``strategy``'s), sorted."""
    bars = [
        ForgettingBar(pair_label(s.optimizer, s.strategy), s.optimizer, s.strategy, s.means["forgetting"],
                      s.sds["forgetting"] or 0.0, s.finished)
        for s in summarize(continual)
        if s.means["forgetting"] is not None and strategy in (None, s.strategy)
    ]
    return ForgettingRankData(sorted(bars, key=lambda b: b.mean))


def forgetting_rank_figure(data: ForgettingRankData, *, title: str = "which optimizer forgets least") -> go.Figure:
    strategies = list(dict.fromkeys(b.strategy for b in data.bars))
    fig = go.Figure(go.Bar(
        x=[b.mean for b in data.bars], y=[b.label for b in data.bars], orientation="h",
        error_x={"type": "data", "array": [b.sd for b in data.bars], "visible": True},
        marker={"color": [PALETTE[strategies.index(b.strategy) % len(PALETTE)] for b in data.bars]},
        text=[f"{b.mean:.3f} ({b.seeds} seed{'s' if b.seeds != 1 else ''})" for b in data.bars], textposition="auto",
    ))
    fig.update_layout(title=title, xaxis_title="forgetting (Chaudhry et al. 2018; lower is better)",
                      yaxis={"autorange": "reversed"})
    return fig
