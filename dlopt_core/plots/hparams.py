"""Hyperparameters against a final metric: one line per run through parallel axes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

# Flat params that describe the run rather than tune it.
_NOT_HYPERPARAMS = frozenset({"comparison", "run", "status", "seed", "device", "deterministic", "precision"})
LOG_AXES = ("optimizer.lr",)  # spread over decades: drawn as log10


@dataclass(frozen=True)
class Axis:
    """One vertical axis: numbers, or categories drawn at 0, 1, ... with their names as ticks."""

    name: str
    values: list[float]
    ticks: list[str] | None = None  # category names, for a categorical axis


@dataclass(frozen=True)
class HparamsData:
    axes: list[Axis]
    metric: str
    values: list[float]  # the metric per run (the colour and the last axis)
    n_runs: int


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def hparams_data(rows: Sequence[dict[str, Any]], *, metric: str) -> HparamsData:
    """Axes for every flat param that all the runs with ``metric`` have, and that differs between them.

    Numeric params become numeric axes (``optimizer.lr`` as log10), others categorical. A param
    only some runs have (one optimizer's beta) is left out: twenty axes of mostly empty values
    hid the few that matter.
    """
    kept = [r for r in rows if _number(r.get(metric)) is not None]
    keys = [
        k for k in dict.fromkeys(k for r in kept for k in r)
        if not k.startswith("final ") and k not in _NOT_HYPERPARAMS and all(k in r for r in kept)
    ]
    axes = []
    for key in keys:
        raw = [r.get(key) for r in kept]
        if len({str(v) for v in raw}) < 2:
            continue  # the same for every run: says nothing
        numbers = [_number(v) for v in raw]
        if all(n is not None for n in numbers):
            if key in LOG_AXES and all(n > 0 for n in numbers):  # type: ignore[operator]
                axes.append(Axis(f"log10 {key}", [math.log10(n) for n in numbers]))  # type: ignore[arg-type]
            else:
                axes.append(Axis(key, numbers))  # type: ignore[arg-type]
            continue
        names = sorted({str(v) for v in raw})
        axes.append(Axis(key, [float(names.index(str(v))) for v in raw], names))
    # The optimizer first: it is what the page compares.
    axes.sort(key=lambda a: a.name != "optimizer")
    return HparamsData(axes, metric, [float(r[metric]) for r in kept], len(kept))


def hparams_figure(data: HparamsData) -> go.Figure:
    """A parallel-coordinates chart; each run's line is coloured by the metric."""
    label = data.metric.removeprefix("final ")
    dims = []
    for a in data.axes:
        dim: dict[str, Any] = {"label": a.name, "values": a.values}
        if a.ticks is not None:
            dim.update(tickvals=list(range(len(a.ticks))), ticktext=a.ticks)
        dims.append(dim)
    dims.append({"label": label, "values": data.values})
    fig = go.Figure(go.Parcoords(
        line={"color": data.values, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": {"text": label}}},
        dimensions=dims,
    ))
    # The axis names sit above the axes: the title goes higher still.
    fig.update_layout(height=460, margin={"l": 70, "r": 70, "t": 110, "b": 30},
                      title={"text": f"{data.n_runs} runs: hyperparameters against {label}", "y": 0.97})
    return fig
