"""Parameter-sharing figures: metric curves with seed bands, metric against cost, gradient conflict.

Each in two steps: ``*_data()`` turns a :class:`~dlopt_core.experiments.share.Share`'s runs
into plain lists (what tests check), ``*_figure()`` draws them and computes nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import plotly.graph_objects as go

from dlopt_core.engine.records import Status
from dlopt_core.experiments.share import Share, summarize
from dlopt_core.plots.style import PALETTE, rgba
from dlopt_core.sharing import get_task

CostAxis = Literal["params", "seconds"]
COST_TITLES = {"params": "parameters (as torch counts them)", "seconds": "training time (s, steps only)"}


def _metric_title(task: str) -> str:
    spec = get_task(task)
    better = "higher is better" if spec.higher_is_better else "lower is better"
    return f"{spec.label}: validation {spec.metric} ({better})"


@dataclass(frozen=True)
class VariantCurve:
    label: str
    epochs: list[int]
    mean: list[float]
    low: list[float]  # the lowest seed at each epoch
    high: list[float]  # the highest seed
    seeds: int  # runs with a value at the last epoch drawn


@dataclass(frozen=True)
class ShareCurvesData:
    """One task's validation metric per epoch, per variant: the mean over seeds and the seeds' range."""

    task: str
    y_title: str
    curves: list[VariantCurve]


def share_curves_data(share: Share, *, task: str) -> ShareCurvesData:
    """Per variant that learns ``task``: epochs every live seed has reached, mean and range (diverged seeds left out)."""
    curves = []
    for variant in share.config.variants:
        runs = [r for r in share.runs_of(variant) if task in r.tasks and r.rows and r.status is not Status.DIVERGED]
        if not runs:
            continue
        reached = min(len(r.rows) for r in runs)
        epochs, mean, low, high = [], [], [], []
        for i in range(reached):
            values = [r.rows[i].metrics[task] for r in runs]
            epochs.append(runs[0].rows[i].epoch)
            mean.append(statistics.fmean(values))
            low.append(min(values))
            high.append(max(values))
        curves.append(VariantCurve(runs[0].label, epochs, mean, low, high, len(runs)))
    return ShareCurvesData(task, _metric_title(task), curves)


def share_curves_figure(data: ShareCurvesData, *, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    for i, c in enumerate(data.curves):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=c.epochs + c.epochs[::-1], y=c.high + c.low[::-1], fill="toself", fillcolor=rgba(color, 0.18),
            line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=c.label,
        ))
        fig.add_trace(go.Scatter(
            x=c.epochs, y=c.mean, mode="lines+markers", name=f"{c.label} ({c.seeds} seed{'s' if c.seeds != 1 else ''})", legendgroup=c.label,
            line={"color": color},
        ))
    fig.update_layout(title=title or get_task(data.task).label, xaxis_title="epoch", yaxis_title=data.y_title)
    return fig


@dataclass(frozen=True)
class CostPoint:
    label: str
    x: float
    x_sd: float
    y: float
    y_sd: float
    seeds: int


@dataclass(frozen=True)
class ShareCostData:
    """Each variant's final metric (mean, sd over finished seeds) against its parameters or training time."""

    task: str
    x_axis: CostAxis
    x_title: str
    y_title: str
    points: list[CostPoint]


def share_cost_data(share: Share, *, task: str, x: CostAxis = "params") -> ShareCostData:
    """One point per variant that learns ``task`` and has a finished run (and, for params, its checks)."""
    points = []
    for s in summarize(share):
        mean = s.means.get(task)
        if mean is None:
            continue
        done = [r for r in share.runs_of(s.variant) if r.status is Status.FINISHED]
        if x == "params":
            if s.params is None:
                continue
            xs = [float(s.params)]
        else:
            xs = [r.elapsed_s for r in done]
        x_sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        points.append(CostPoint(s.label, statistics.fmean(xs), x_sd, mean, s.sds[task] or 0.0, s.finished))
    return ShareCostData(task, x, COST_TITLES[x], _metric_title(task), points)


def share_cost_figure(data: ShareCostData, *, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    for i, p in enumerate(data.points):
        fig.add_trace(go.Scatter(
            x=[p.x], y=[p.y], mode="markers+text", text=[p.label], textposition="top center", name=p.label,
            marker={"size": 11, "color": PALETTE[i % len(PALETTE)]},
            error_y={"type": "data", "array": [p.y_sd], "visible": True},
            error_x={"type": "data", "array": [p.x_sd], "visible": p.x_sd > 0},
        ))
    fig.update_layout(title=title or f"{get_task(data.task).label} against {data.x_axis}",
                      xaxis_title=data.x_title, yaxis_title=data.y_title)
    return fig


@dataclass(frozen=True)
class ConflictLine:
    combine: str  # equal or pcgrad
    layer: str  # a shared module's name (trunk.0, ...)
    epochs: list[int]
    mean: list[float]  # mean over seeds of the cosine between the two tasks' gradients
    seeds: int


@dataclass(frozen=True)
class ConflictData:
    """The two tasks' gradient cosine on each shared layer over training, per gradient combination."""

    lines: list[ConflictLine]


def conflict_data(shares: Sequence[Share]) -> ConflictData:
    """From one or more multitask experiments (an ``equal`` and a ``pcgrad`` one, say): the
    multi-task variant's cosines per layer, averaged over its seeds at epochs all have reached."""
    lines = []
    for share in shares:
        runs = [r for r in share.runs if r.rows and r.rows[0].cosines]
        reached = min((len(r.rows) for r in runs), default=0)
        layers = list(runs[0].rows[0].cosines) if runs else []
        for layer in layers:
            epochs = [runs[0].rows[i].epoch for i in range(reached)]
            mean = [statistics.fmean(r.rows[i].cosines[layer] for r in runs) for i in range(reached)]
            lines.append(ConflictLine(share.config.combine, layer, epochs, mean, len(runs)))
    return ConflictData(lines)


def conflict_figure(data: ConflictData, *, title: str = "task-gradient cosine on the shared trunk") -> go.Figure:
    fig = go.Figure()
    layers = list(dict.fromkeys(line.layer for line in data.lines))
    for line in data.lines:
        fig.add_trace(go.Scatter(
            x=line.epochs, y=line.mean, mode="lines+markers", name=f"{line.combine}: {line.layer}",
            line={"color": PALETTE[layers.index(line.layer) % len(PALETTE)],
                  "dash": "solid" if line.combine == "equal" else "dash"},
        ))
    fig.add_hline(y=0.0, line={"color": "grey", "width": 1})
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="cosine (below 0: the tasks conflict)",
                      yaxis_range=[-1, 1])
    return fig


def sharing_table_data(share: Share) -> list[dict[str, Any]]:
    """The really-shared panel: one row per checked variant, its numbers and named booleans."""
    rows = []
    for variant in share.config.variants:
        check = share.checks.get(variant)
        if check is None:
            continue
        rows.append({
            "variant": variant, "params": check.params, "params untied": check.params_untied,
            "weight uses": check.use_sites, "storages": check.storages, "tensors": check.tensors,
            "optimizer states": check.optimizer_states, "group entries": check.group_entries,
            "grad error": check.grad_error, **check.flags(),
        })
    return rows
