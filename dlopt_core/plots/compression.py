"""Compression figures: the Pareto chart, accuracy against sparsity, per-layer sensitivity.

Each in two steps: ``*_data()`` turns a compression's rows into plain lists (what tests check),
``*_figure()`` draws them and computes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import plotly.graph_objects as go

from dlopt_core.compression.methods import get_compression
from dlopt_core.experiments.compress.config import BASELINE
from dlopt_core.experiments.compress.rows import CompressionRow, LayerSensitivity
from dlopt_core.plots.style import PALETTE

ParetoX = Literal["bytes", "sparse_bytes", "latency_b1_ms", "latency_b256_ms", "compiled_b1_ms", "compiled_b256_ms"]
X_TITLES: dict[str, str] = {
    "bytes": "saved state_dict (bytes, log scale)",
    "sparse_bytes": "bytes, masked weights stored sparse (CSR) (log scale)",
    "latency_b1_ms": "CPU latency at batch 1 (ms, log scale)",
    "latency_b256_ms": "CPU latency at batch 256 (ms, log scale)",
    "compiled_b1_ms": "torch.compile'd CPU latency at batch 1 (ms, log scale)",
    "compiled_b256_ms": "torch.compile'd CPU latency at batch 256 (ms, log scale)",
}


@dataclass(frozen=True)
class ParetoPoint:
    label: str
    method: str
    badge: str
    x: float
    y: float
    baseline: bool
    on_front: bool
    text: str


@dataclass(frozen=True)
class ParetoData:
    """Every measured variant at (cost, metric), and the front: no other variant is both cheaper and better."""

    x_axis: ParetoX
    y_title: str
    points: list[ParetoPoint]
    front: list[tuple[float, float]]  # in order of cost
    left_out: list[str]  # variants without this measurement (failed, or n/a)


def _size(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _hover(r: CompressionRow, metric: str) -> str:
    sparse = f" (CSR {_size(r.sparse_bytes)})" if r.sparse_bytes is not None else ""
    b1 = f"{r.latency_b1_ms:.3g} ms" if r.latency_b1_ms is not None else "n/a"
    b256 = f"{r.latency_b256_ms:.3g} ms" if r.latency_b256_ms is not None else "n/a"
    return (f"{r.label} [{r.badge}]: {metric} {r.val_metric:.3f}, {r.params:,} params ({r.nonzeros:,} non-zero), "
            f"{_size(r.bytes)}{sparse}, {b1} at batch 1, {b256} at 256")


def pareto_data(rows: Sequence[CompressionRow], *, x_axis: ParetoX = "bytes", metric: str = "val accuracy") -> ParetoData:
    """Each variant's ``x_axis`` cost against its validation metric (higher is better); the front.

    ``sparse_bytes`` takes a masked-only variant's CSR bytes and every other variant's bytes.
    """
    points, left_out = [], []
    for r in rows:
        x = r.sparse_bytes if x_axis == "sparse_bytes" and r.sparse_bytes is not None else getattr(
            r, "bytes" if x_axis == "sparse_bytes" else x_axis
        )
        if r.error or x is None or r.val_metric is None:
            left_out.append(r.label)
            continue
        points.append(ParetoPoint(r.label, r.method, r.badge, float(x), r.val_metric, r.method == BASELINE, False,
                                  _hover(r, metric)))
    front_ids = _front([(p.x, p.y) for p in points])
    points = [ParetoPoint(**{**vars(p), "on_front": i in front_ids}) for i, p in enumerate(points)]
    front = sorted((p.x, p.y) for p in points if p.on_front)
    return ParetoData(x_axis, metric, points, front, left_out)


def _front(xy: list[tuple[float, float]]) -> set[int]:
    """Indices of the points no other point dominates (no more cost and no less metric, one strictly)."""
    return {
        i for i, (x, y) in enumerate(xy)
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2 in xy)
    }


def pareto_figure(data: ParetoData, *, height: int = 460) -> go.Figure:
    """One marker per variant (coloured by method), the baseline a star, the front a dashed step line."""
    fig = go.Figure()
    if data.front:
        fig.add_trace(go.Scatter(
            x=[x for x, _ in data.front], y=[y for _, y in data.front], mode="lines", name="Pareto front",
            line={"color": "grey", "dash": "dash", "shape": "hv"}, hoverinfo="skip",
        ))
    methods = list(dict.fromkeys(p.method for p in data.points if not p.baseline))
    for i, method in enumerate(methods):
        mine = [p for p in data.points if p.method == method]
        fig.add_trace(go.Scatter(
            x=[p.x for p in mine], y=[p.y for p in mine], mode="markers", name=method,
            marker={"color": PALETTE[i % len(PALETTE)], "size": 11,
                    "line": {"width": [2 if p.on_front else 0 for p in mine], "color": "black"}},
            text=[p.text for p in mine], hovertemplate="%{text}<extra></extra>",
        ))
    for p in (p for p in data.points if p.baseline):
        fig.add_trace(go.Scatter(
            x=[p.x], y=[p.y], mode="markers", name=BASELINE, marker={"symbol": "star", "size": 18, "color": "black"},
            text=[p.text], hovertemplate="%{text}<extra></extra>",
        ))
    fig.update_layout(
        # Two lines: one would be cut at 820 px.
        title={"text": "What each compression costs<br><sup>" + data.y_title + " against "
               + X_TITLES[data.x_axis].split(" (")[0] + "</sup>"},
        height=height, hovermode="closest", margin={"l": 60, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        xaxis={"title": {"text": X_TITLES[data.x_axis]}, "type": "log"},
        yaxis={"title": {"text": data.y_title}},
    )
    return fig


@dataclass(frozen=True)
class SparsityLine:
    name: str  # the method and its settings other than sparsity
    color: str
    sparsity: list[float]
    metric: list[float]


@dataclass(frozen=True)
class SparsityData:
    y_title: str
    lines: list[SparsityLine]
    baseline: float | None


def sparsity_data(rows: Sequence[CompressionRow], *, metric: str = "val accuracy") -> SparsityData:
    """One line per pruning method (and its other settings) through the sparsities it ran at."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.sparsity is None or r.val_metric is None or r.error:
            continue
        # Only what differs from the method's defaults names the line (the legend stays readable).
        defaults = {p.name: p.default for p in get_compression(r.method).hyperparams}
        others = ",".join(f"{k}={v}" for k, v in sorted(r.settings.items()) if k != "sparsity" and defaults.get(k) != v)
        groups.setdefault(f"{r.method}:{others}" if others else r.method, []).append((r.sparsity, r.val_metric))
    lines = [
        SparsityLine(name, PALETTE[i % len(PALETTE)], [s for s, _ in sorted(pts)], [m for _, m in sorted(pts)])
        for i, (name, pts) in enumerate(groups.items())
    ]
    base = next((r.val_metric for r in rows if r.method == BASELINE), None)
    return SparsityData(metric, lines, base)


def sparsity_figure(data: SparsityData, *, height: int = 400) -> go.Figure:
    """The metric against the share pruned, per method; the baseline's metric dashed across."""
    fig = go.Figure()
    for line in data.lines:
        fig.add_trace(go.Scatter(x=line.sparsity, y=line.metric, mode="lines+markers", name=line.name,
                                 line={"color": line.color}))
    if data.baseline is not None:
        fig.add_hline(y=data.baseline, line={"color": "black", "width": 1, "dash": "dash"},
                      annotation_text=BASELINE, annotation_position="bottom left")
    fig.update_layout(
        title={"text": f"{data.y_title} against sparsity"}, height=height, margin={"l": 60, "r": 20, "t": 60, "b": 40},
        xaxis={"title": {"text": "sparsity (share of weights or units removed)"}, "tickformat": ".0%", "range": [0, 1]},
        yaxis={"title": {"text": data.y_title}}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


@dataclass(frozen=True)
class LayerSensitivityData:
    layers: list[str]  # "0 (linear, 16,640 params)"
    pruned: list[float]
    quantized: list[float | None]
    sparsity: float
    baseline: float | None
    y_title: str


def layer_sensitivity_data(
    sensitivity: Sequence[LayerSensitivity], *, baseline: float | None, metric: str = "val accuracy",
) -> LayerSensitivityData:
    """Per weight layer: the metric with only that layer pruned, and with only it int8-quantized."""
    return LayerSensitivityData(
        [f"layer {s.layer} ({s.kind}, {s.params:,} params)" for s in sensitivity],
        [s.pruned_metric for s in sensitivity], [s.quantized_metric for s in sensitivity],
        sensitivity[0].sparsity if sensitivity else 0.0, baseline, metric,
    )


def layer_sensitivity_figure(data: LayerSensitivityData, *, height: int = 380) -> go.Figure:
    """Grouped bars per layer (pruned, quantized); the baseline dashed across: a short bar is a layer to keep."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=data.layers, y=data.pruned, name=f"only this layer pruned ({data.sparsity:.0%})",
                         marker={"color": PALETTE[0]}))
    if any(q is not None for q in data.quantized):
        fig.add_trace(go.Bar(x=data.layers, y=data.quantized, name="only this layer int8 (linear layers)",
                             marker={"color": PALETTE[1]}))
    if data.baseline is not None:
        fig.add_hline(y=data.baseline, line={"color": "black", "width": 1, "dash": "dash"},
                      annotation_text=BASELINE, annotation_position="top left")
    low = min([v for v in [*data.pruned, *data.quantized, data.baseline] if v is not None], default=0.0)
    fig.update_layout(
        title={"text": "Per-layer sensitivity: which layers to keep"}, height=height, barmode="group",
        margin={"l": 60, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.25},
        yaxis={"title": {"text": data.y_title}, "range": [max(0.0, low - 0.05), 1.0] if 0 < low <= 1 else None},
    )
    return fig
