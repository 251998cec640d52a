"""Decision boundaries on 2-D classification data: what each optimizer's model has learned."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.models import build_model
from dlopt_core.experiments.compare import Comparison, RunResult
from dlopt_core.plots.style import PALETTE

CLASS_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class BoundaryPanel:
    """One optimizer's model over a grid: P(class 1) for two classes, else the predicted class."""

    label: str
    color: str
    xs: list[float]
    ys: list[float]
    z: list[list[float]]
    accuracy: float | None
    epoch: float
    status: str


@dataclass(frozen=True)
class BoundaryData:
    panels: list[BoundaryPanel]
    points_x: list[float]
    points_y: list[float]
    points_class: list[int]
    n_classes: int


def _grid(data: Dataset, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = data.x_train.cpu().numpy()
    (x0, y0), (x1, y1) = x.min(0), x.max(0)
    pad_x, pad_y = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    return np.linspace(x0 - pad_x, x1 + pad_x, n), np.linspace(y0 - pad_y, y1 + pad_y, n)


def _first_runs(comparison: Comparison) -> list[RunResult]:
    # The run of each optimizer with the lowest seed that has weights: one panel per optimizer.
    chosen: dict[str, RunResult] = {}
    for r in comparison.runs:
        if r.weights is not None and (r.label not in chosen or r.config.seed < chosen[r.label].config.seed):
            chosen[r.label] = r
    return list(chosen.values())


@torch.no_grad()
def boundary_data(comparison: Comparison, data: Dataset, *, grid: int = 40, max_points: int = 300) -> BoundaryData:
    """Each optimizer's latest model evaluated over a grid covering the (standardised) data."""
    xs, ys = _grid(data, grid)
    gx, gy = np.meshgrid(xs, ys)
    inputs = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    labels = [r.label for r in comparison.runs]
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(dict.fromkeys(labels))}
    panels = []
    for r in _first_runs(comparison):
        model = build_model(r.config.model, data, r.config.seed).cpu()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in (r.weights or {}).items()})
        model.eval()
        out = model(inputs)
        if not torch.all(torch.isfinite(out)):
            continue  # a diverged model has no boundary to draw
        if data.n_classes == 2:
            z = torch.softmax(out, 1)[:, 1]
        else:
            z = out.argmax(1).float()
        last = next((rec for rec in reversed(r.records) if rec.val_metric is not None), None)
        panels.append(BoundaryPanel(
            # Two decimals: the picture needs no more, and the live page sends it every update.
            r.label, colors[r.label], xs.round(3).tolist(), ys.round(3).tolist(),
            np.round(z.reshape(grid, grid).numpy(), 2).tolist(),
            last.val_metric if last else None, last.epoch if last else 0.0, r.status_text,
        ))
    x, y = data.x_val.cpu().numpy(), data.y_val.cpu().numpy()
    keep = np.random.default_rng(0).permutation(len(x))[:max_points]
    return BoundaryData(
        panels, x[keep, 0].round(3).tolist(), x[keep, 1].round(3).tolist(), y[keep].astype(int).tolist(), data.n_classes
    )


def boundary_figure(data: BoundaryData, *, per_row: int = 4) -> go.Figure:
    """One panel per optimizer: the model's class probability (or class) with the validation points on top."""
    n = max(1, len(data.panels))
    cols = min(per_row, n)
    rows = math.ceil(n / cols)
    titles = [
        f"{p.label}<br><sup>epoch {p.epoch:.3g}, val acc {p.accuracy:.3g}</sup>" if p.accuracy is not None else p.label
        for p in data.panels
    ]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles or None, horizontal_spacing=0.04,
                        vertical_spacing=0.12)
    binary = data.n_classes == 2
    for i, p in enumerate(data.panels):
        row, col = i // cols + 1, i % cols + 1
        fig.add_trace(
            go.Contour(
                x=p.xs, y=p.ys, z=p.z, showscale=False, hoverinfo="skip", opacity=0.55,
                colorscale=[[0, CLASS_COLORS[0]], [0.5, "#ffffff"], [1, CLASS_COLORS[1]]] if binary else "Turbo",
                zmin=0, zmax=1 if binary else data.n_classes - 1,
                contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "heatmap", "showlines": True}
                if binary else {"coloring": "heatmap"},
                line={"width": 2, "color": "black"} if binary else {"width": 0},
                name=f"{p.label} boundary",
            ),
            row=row, col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=data.points_x, y=data.points_y, mode="markers", showlegend=False, hoverinfo="skip",
                marker={"size": 4, "color": [CLASS_COLORS[c % len(CLASS_COLORS)] for c in data.points_class],
                        "line": {"width": 0.5, "color": "white"}},
                name="validation points",
            ),
            row=row, col=col,
        )
        fig.update_xaxes(showticklabels=False, row=row, col=col)
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{i + 1 if i else ''}", row=row, col=col)
    fig.update_layout(height=300 * rows + 40, margin={"l": 10, "r": 10, "t": 60, "b": 10}, showlegend=False)
    return fig
