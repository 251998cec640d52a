"""Drift-race figures and tables: rolling prequential accuracy (or loss) with seed bands, the true
drift regions shaded and each detector's alarms marked; the recovery and detector-scoring tables.

Each in two steps: ``*_data()`` turns a :class:`~dlopt_core.experiments.stream.StreamRace`'s runs
into plain lists (what tests check), ``*_figure()`` draws them and computes nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Literal

import plotly.graph_objects as go

from dlopt_core.experiments.stream import StreamRace, detector_rows, recovery_rows
from dlopt_core.plots.style import PALETTE, rgba, stride
from dlopt_core.stream import DETECTORS

Metric = Literal["accuracy", "loss"]
MARKERS = {"adwin": "triangle-down", "page_hinkley": "x", "kswin": "diamond"}


@dataclass(frozen=True)
class LearnerCurve:
    label: str
    steps: list[int]
    mean: list[float]
    low: list[float]  # the lowest seed at each step drawn
    high: list[float]  # the highest seed
    seeds: int
    alarms: dict[str, list[int]]  # detector -> steps where it fired on any seed's errors (each once)
    alarm_values: dict[str, list[float]]  # the mean curve at those steps: where the marks sit


@dataclass(frozen=True)
class StreamCurvesData:
    """Per learner, the rolling prequential metric over the steps every seed has reached (thinned)."""

    metric: Metric
    y_title: str
    window: int
    drifts: list[tuple[int, int]]  # true drift regions, in steps
    n_steps: int
    curves: list[LearnerCurve]


def stream_curves_data(race: StreamRace, *, metric: Metric = "accuracy", detectors: tuple[str, ...] = tuple(DETECTORS),
                       max_points: int = 400) -> StreamCurvesData:
    """Mean and range over seeds of each learner's rolling ``metric``; the alarms of ``detectors``."""
    cfg = race.config
    curves = []
    for i, learner in enumerate(cfg.learners):
        runs = [r for r in race.runs_of(i) if r.steps]
        if not runs:
            continue
        series = [r.rolling_accuracy(cfg.window) if metric == "accuracy" else r.rolling_loss(cfg.window) for r in runs]
        reached = min(len(s) for s in series)
        idx = stride(reached, max_points)
        mean = [statistics.fmean(s[t] for s in series) for t in idx]
        low = [min(s[t] for s in series) for t in idx]
        high = [max(s[t] for s in series) for t in idx]
        full_mean = [statistics.fmean(s[t] for s in series) for t in range(reached)]
        alarms = {d: sorted({a for r in runs for a in r.alarms.get(d, []) if a < reached}) for d in detectors}
        values = {d: [full_mean[a] for a in steps] for d, steps in alarms.items()}
        curves.append(LearnerCurve(learner.label, idx, mean, low, high, len(runs), alarms, values))
    title = f"rolling prequential {metric} ({cfg.window}-step window)"
    return StreamCurvesData(metric, title, cfg.window, [tuple(d) for d in race.drifts], race.n_steps, curves)


def stream_curves_figure(data: StreamCurvesData, *, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    for start, end in data.drifts:
        # An abrupt drift (start == end) is shaded one step wide so it shows.
        fig.add_vrect(x0=start - 0.5, x1=end + 0.5, fillcolor="rgba(120,120,120,0.25)", line_width=0, layer="below")
    for i, c in enumerate(data.curves):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=c.steps + c.steps[::-1], y=c.high + c.low[::-1], fill="toself", fillcolor=rgba(color, 0.18),
            line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=c.label,
        ))
        fig.add_trace(go.Scatter(
            x=c.steps, y=c.mean, mode="lines", name=f"{c.label} ({c.seeds} seed{'s' if c.seeds != 1 else ''})", legendgroup=c.label,
            line={"color": color},
        ))
        for d, steps in c.alarms.items():
            if steps:
                fig.add_trace(go.Scatter(
                    x=steps, y=c.alarm_values[d], mode="markers", name=f"{DETECTORS[d].label} alarms",
                    legendgroup=c.label, showlegend=False, marker={"symbol": MARKERS.get(d, "circle"), "size": 9,
                                                                   "color": color, "line": {"width": 1}},
                    hovertemplate=f"{c.label}: {DETECTORS[d].label} alarm at step %{{x}}<extra></extra>",
                ))
    fig.update_layout(
        title=title or f"{data.y_title}; grey: true drifts; marks: alarms (▼ ADWIN, x Page-Hinkley, ◆ KSWIN)",
        xaxis_title="step (mini-batch)", yaxis_title=data.metric, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def recovery_table_data(race: StreamRace) -> list[dict[str, Any]]:
    """One row per learner: mean final and average accuracy, mean steps to recover after each drift
    (``recover_<i>``; ``recovered_<i>``: seeds that did) and resets."""
    return recovery_rows(race)


def detector_table_data(race: StreamRace) -> list[dict[str, Any]]:
    """One row per detector: precision, recall, mean time to detect, false alarms per 1,000 steps,
    each beside the ``always_*`` and ``never_*`` baselines scored by the same function."""
    return detector_rows(race)
