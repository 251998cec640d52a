"""Data reduction: validation accuracy against the size of the training data, one line per method.

The full training set is a star with a dashed line across, so every method reads as "how
much accuracy for how many fewer bytes". Two steps: :func:`reduction_data` turns variant
rows into plain lists, :func:`reduction_figure` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import plotly.graph_objects as go

from dlopt_core.experiments.data_demos import FULL_DATA, VariantRow
from dlopt_core.plots.style import PALETTE

XAxis = Literal["bytes", "rows"]
X_TITLES = {"bytes": "training data stored (bytes, log scale)", "rows": "training rows kept (share of the full set)"}


@dataclass(frozen=True)
class ReductionLine:
    method: str
    color: str
    x: list[float]
    y: list[float]
    text: list[str]


@dataclass(frozen=True)
class ReductionData:
    """Everything the figure draws."""

    x_axis: XAxis
    y_title: str
    lines: list[ReductionLine]
    baseline: tuple[float, float, str] | None  # x, y, hover
    left_out: list[str]  # methods not drawn: against the share of rows, those that keep every row


def _size_text(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def reduction_data(rows: Sequence[VariantRow], *, x_axis: XAxis = "bytes", metric: str = "val accuracy") -> ReductionData:
    """One line per method through its sizes; the full data as the baseline."""
    full = next((r for r in rows if r.method == FULL_DATA), None)
    full_rows = full.rows if full is not None else max((r.rows for r in rows), default=1)

    def x_of(r: VariantRow) -> float:
        return float(r.stored_bytes) if x_axis == "bytes" else r.rows / full_rows

    def hover(r: VariantRow) -> str:
        per_epoch = f", {r.seconds_per_epoch * 1000:.3g} ms per epoch" if r.seconds_per_epoch else ""
        return f"{r.label}: {metric} {r.val_metric:.3f}, {_size_text(r.stored_bytes)}, {r.rows:,} rows{per_epoch}"

    keep_all = {r.method for r in rows if r.method != FULL_DATA and r.rows == full_rows}
    left_out = sorted(keep_all) if x_axis == "rows" else []
    lines: dict[str, ReductionLine] = {}
    for r in rows:
        if r.method == FULL_DATA or r.val_metric is None or r.method in left_out:
            continue
        line = lines.setdefault(r.method, ReductionLine(r.method, PALETTE[len(lines) % len(PALETTE)], [], [], []))
        line.x.append(x_of(r))
        line.y.append(r.val_metric)
        line.text.append(hover(r))
    baseline = None
    if full is not None and full.val_metric is not None:
        baseline = (x_of(full), full.val_metric, hover(full))
    return ReductionData(x_axis, metric, list(lines.values()), baseline, left_out)


def reduction_figure(data: ReductionData, *, height: int = 440) -> go.Figure:
    """Accuracy against size per method; the full data starred, its accuracy dashed across."""
    fig = go.Figure()
    for line in data.lines:
        order = sorted(range(len(line.x)), key=lambda i: line.x[i])
        fig.add_trace(go.Scatter(
            x=[line.x[i] for i in order], y=[line.y[i] for i in order], mode="lines+markers", name=line.method,
            line={"color": line.color}, text=[line.text[i] for i in order], hovertemplate="%{text}<extra></extra>",
            # A method with one size (float16, int8) is one point: big enough to see beside a line.
            marker={"size": 12 if len(line.x) == 1 else 7, "symbol": "diamond" if len(line.x) == 1 else "circle"},
        ))
    if data.baseline is not None:
        x, y, text = data.baseline
        fig.add_hline(y=y, line={"color": "black", "width": 1, "dash": "dash"})
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", name=FULL_DATA, marker={"symbol": "star", "size": 16, "color": "black"},
            text=[text], hovertemplate="%{text}<extra></extra>",
        ))
    fig.update_layout(
        title={"text": "What shrinking the training data costs"}, height=height, hovermode="closest",
        margin={"l": 60, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2},
        xaxis={"title": {"text": X_TITLES[data.x_axis]}, "type": "log" if data.x_axis == "bytes" else "linear",
               # Bytes as 20k, 50k, 100k (plotly's log axis would write bare minor digits).
               **({"tickformat": ".0%"} if data.x_axis == "rows" else {"tickformat": "~s", "dtick": "D2"})},
        yaxis={"title": {"text": data.y_title}},
    )
    return fig
