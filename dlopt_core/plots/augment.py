"""What augmentation does to the data: original samples beside augmented versions of them.

Images: a grid, one row per sample, its original first and then several augmented versions
(each version's title gives the label it trains with, mixed labels as their weights). Points
(2-D data such as moons): the originals and their augmented copies in one scatter.
Two steps, as every figure family here: ``*_data`` draws the samples through the transform,
``*_figure`` draws them without computing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from dlopt_core.catalog.augmentations import BatchTransform
from dlopt_core.plots.boundary import CLASS_COLORS


def _label_text(target: torch.Tensor, classes: list[str]) -> str:
    if target.dim() == 0:
        return classes[int(target)] if classes else f"{float(target):.3g}"
    weights = [(float(w), classes[i]) for i, w in enumerate(target) if w > 0.005]
    weights.sort(reverse=True)
    if len(weights) == 1:
        return weights[0][1]
    return " + ".join(f"{w:.2f}·{c}" for w, c in weights[:2])


@dataclass(frozen=True)
class AugmentGridData:
    """Rows of images: each row's first is the original, the rest augmented versions."""

    images: list[list[np.ndarray]]  # [row][column] -> (h, w)
    titles: list[list[str]]
    z_range: tuple[float, float]


def augment_grid_data(
    x: torch.Tensor, y: torch.Tensor, image_shape: tuple[int, int, int], transform: BatchTransform | None,
    *, classes: list[str], versions: int = 4, seed: int = 0,
) -> AugmentGridData:
    """``x`` (n, features) flattened images; ``versions`` augmented copies of each, drawn with ``seed``."""
    n = x.shape[0]
    # Each version is a batch of its own: mixing draws one weight (and one CutMix box) per batch,
    # so one shared batch would show the same mix in every cell.
    xs, ys = [], []
    for v in range(versions):
        bx, by = x, y
        if transform is not None:
            bx, by = transform(x, y, torch.Generator().manual_seed(seed * 1000 + v))
        xs.append(bx)
        ys.append(by)
    repeated_x, repeated_y = torch.cat(xs), torch.cat(ys)
    shape = image_shape[1:]
    images, titles = [], []
    for i in range(n):
        row = [x[i].reshape(shape).numpy()]
        row_titles = [f"original: {_label_text(y[i], classes)}"]
        for v in range(versions):
            k = v * n + i
            row.append(repeated_x[k].reshape(image_shape)[0].numpy())
            row_titles.append(_label_text(repeated_y[k], classes))
        images.append(row)
        titles.append(row_titles)
    # One colour scale for every panel, from the originals: a brightened image looks brighter.
    lo, hi = float(np.percentile(x.numpy(), 1)), float(np.percentile(x.numpy(), 99))
    return AugmentGridData(images, titles, (lo, hi))


def augment_grid_figure(data: AugmentGridData, *, panel_px: int = 110) -> go.Figure:
    """The grid of originals (first column) and augmented versions, in grey."""
    rows, cols = len(data.images), len(data.images[0]) if data.images else 1
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[t for row in data.titles for t in row],
        horizontal_spacing=0.02, vertical_spacing=0.35 / max(rows, 1),
    )
    for r, row in enumerate(data.images, start=1):
        for c, image in enumerate(row, start=1):
            fig.add_trace(go.Heatmap(
                z=image[::-1], colorscale="gray_r", zmin=data.z_range[0], zmax=data.z_range[1], showscale=False,
                hovertemplate="%{z:.2f}<extra></extra>", name=data.titles[r - 1][c - 1],
            ), row=r, col=c)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, constrain="domain")
    for k in range(1, rows * cols + 1):  # square pixels in every panel, each against its own x axis
        fig.layout[f"yaxis{k if k > 1 else ''}"].scaleanchor = f"x{k if k > 1 else ''}"
    fig.update_annotations(font_size=11)
    fig.update_layout(height=rows * panel_px + 60, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


@dataclass(frozen=True)
class AugmentScatterData:
    """2-D points: the originals and their augmented copies, by class."""

    original: list[tuple[str, list[float], list[float]]]  # class name, x, y
    augmented: list[tuple[str, list[float], list[float]]]


def augment_scatter_data(
    x: torch.Tensor, y: torch.Tensor, transform: BatchTransform | None, *, classes: list[str], versions: int = 3,
    seed: int = 0,
) -> AugmentScatterData:
    """``versions`` augmented copies of each 2-D point; mixed points take their heaviest class."""
    rep_x, rep_y = x.repeat(versions, 1), y.repeat(versions)
    if transform is not None:
        rep_x, rep_y = transform(rep_x, rep_y, torch.Generator().manual_seed(seed))
    hard = rep_y.argmax(dim=1) if rep_y.dim() == 2 else rep_y

    def by_class(points: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, list[float], list[float]]]:
        return [
            (name, points[labels == k, 0].tolist(), points[labels == k, 1].tolist())
            for k, name in enumerate(classes) if (labels == k).any()
        ]

    return AugmentScatterData(by_class(x, y), by_class(rep_x, hard))


def augment_scatter_figure(data: AugmentScatterData, *, height: int = 420) -> go.Figure:
    """Originals as filled dots, augmented copies as faint rings in the same class colour."""
    fig = go.Figure()
    for name, xs, ys in data.augmented:
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=f"class {name}, augmented", legendgroup=name,
            marker={"symbol": "circle-open", "size": 6, "color": CLASS_COLORS[int(name) % len(CLASS_COLORS)], "opacity": 0.5},
        ))
    for name, xs, ys in data.original:
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=f"class {name}", legendgroup=name,
            marker={"size": 7, "color": CLASS_COLORS[int(name) % len(CLASS_COLORS)], "line": {"width": 1, "color": "white"}},
        ))
    fig.update_layout(
        title={"text": "Original points and their augmented copies"}, height=height,
        margin={"l": 40, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.12},
    )
    fig.update_yaxes(scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig
