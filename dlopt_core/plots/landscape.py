"""Landscape figures: the surface with paths and animation, 3-D surface, value and distance curves."""

from __future__ import annotations

import base64
import math
import struct
import zlib

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale
from plotly.subplots import make_subplots

from dlopt_core.experiments.landscape import LandscapeResult, Surface
from dlopt_core.plots.style import PALETTE, stride

SURFACE_NAME = "surface"  # the layout image's name: tests and pages find the surface by it


def surface_image(surface: Surface, *, scale: int = 4, levels: int = 35) -> str:
    """The surface as a PNG data URI: ``levels`` filled bands of reversed Blues (low is dark)
    with light lines between them, as a filled contour plot draws it.

    A picture, not a contour trace, because plotly.js removes every trace it cannot animate
    (contour, heatmap) from the plot at each animation frame and never draws it back: the
    paths then moved over a blank plot. A layout image is not a trace, so frames leave it be.
    The grid is interpolated ``scale`` times finer so the band edges are not jagged;
    ``levels`` is at most 128 (a PNG palette holds 256 colours: each band and its line).
    """
    z = _upsample(np.asarray(surface.z, dtype=np.float64), scale)
    finite = np.isfinite(z)
    lo, hi = (float(z[finite].min()), float(z[finite].max())) if finite.any() else (0.0, 1.0)
    t = np.clip((np.where(finite, z, hi) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    band = np.minimum((t * levels).astype(np.uint8), levels - 1)
    edge = np.zeros(band.shape, dtype=bool)
    edge[:, :-1] |= band[:, :-1] != band[:, 1:]
    edge[:-1, :] |= band[:-1, :] != band[1:, :]
    # Palette: entry b is band b's colour, entry levels + b the same lightened into a line.
    stops = get_colorscale("Blues")
    where = [1.0 - p for p, _ in stops][::-1]  # reversed: the lowest values are the darkest
    rgb = np.array([[int(c) for c in colour[4:-1].split(",")] for _, colour in stops][::-1], dtype=np.float64)
    centres = (np.arange(levels) + 0.5) / levels
    fill = np.stack([np.interp(centres, where, rgb[:, k]) for k in range(3)], axis=1)
    palette = np.vstack([fill, 0.6 * fill + 0.4 * 255.0]).round().astype(np.uint8)
    index = np.where(edge, band + levels, band).astype(np.uint8)[::-1]  # row 0 is the top (y max)
    return "data:image/png;base64," + base64.b64encode(_png(index, palette)).decode("ascii")


def _upsample(z: np.ndarray, scale: int) -> np.ndarray:
    # Bilinear, one axis at a time: ``scale`` - 1 new points between each pair of grid points.
    for axis in (0, 1):
        n = z.shape[axis]
        pos = np.linspace(0.0, n - 1.0, (n - 1) * scale + 1)
        i = np.minimum(pos.astype(int), n - 2)
        w = pos - i
        a, b = np.take(z, i, axis=axis), np.take(z, i + 1, axis=axis)
        w = w[:, None] if axis == 0 else w[None, :]
        z = a * (1 - w) + b * w
    return z


def _png(index: np.ndarray, palette: np.ndarray) -> bytes:
    """An ``(h, w)`` array of palette indices and its ``(n, 3)`` RGB palette as a PNG file."""
    h, w = index.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), index], axis=1)  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8 bits per pixel, colour type 3: palette
    return b"".join([
        b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"PLTE", palette.tobytes()),
        chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)), chunk(b"IEND", b""),
    ])


def landscape_figure(
    result: LandscapeResult, *, frames: int = 40, max_points: int = 250, click_grid: int = 0
) -> go.Figure:
    """The function's surface, every trajectory, the minima, and a play button and slider.

    ``click_grid`` > 0 lays an invisible ``click_grid`` x ``click_grid`` grid of points over
    the window (trace name ``start here``), so a click on the plot can pick a start point.
    """
    fn = result.config.test_function
    (x0, x1), (y0, y1) = fn.window
    fig = go.Figure()
    kept = [stride(len(t.x), max_points) for t in result.trajectories]
    # numpy arrays, not lists: plotly validates lists element by element (10x slower here).
    thinned = [(np.asarray(t.x)[idx], np.asarray(t.y)[idx]) for t, idx in zip(result.trajectories, kept)]
    for i, (t, (tx, ty)) in enumerate(zip(result.trajectories, thinned)):
        fig.add_trace(
            go.Scatter(
                x=tx, y=ty, mode="lines+markers",
                line={"color": PALETTE[i % len(PALETTE)], "width": 2}, marker={"size": 3},
                name=t.label, legendgroup=t.label,
                hovertemplate=f"{t.label}<br>x=%{{x:.4g}}<br>y=%{{y:.4g}}<extra>{t.status_text}</extra>",
            )
        )
    for i, t in enumerate(result.trajectories):
        if t.stopped_at is not None:
            fig.add_trace(
                go.Scatter(
                    x=[t.x[-1]], y=[t.y[-1]], mode="markers+text", text=[t.status_text],
                    textposition="top center", marker={"symbol": "x", "size": 12, "color": PALETTE[i % len(PALETTE)]},
                    showlegend=False, legendgroup=t.label, hoverinfo="skip",
                )
            )
    start = result.config.start_point
    fig.add_trace(
        go.Scatter(x=[start[0]], y=[start[1]], mode="markers", name="start",
                   marker={"symbol": "circle-open", "size": 12, "color": "black", "line": {"width": 2}})
    )
    fig.add_trace(
        go.Scatter(
            x=[m[0] for m in fn.minima], y=[m[1] for m in fn.minima], mode="markers", name=fn.target_label,
            marker={"symbol": "star", "size": 16, "color": "gold", "line": {"width": 1, "color": "black"}},
        )
    )
    if click_grid:
        gx, gy = np.meshgrid(np.linspace(x0, x1, click_grid), np.linspace(y0, y1, click_grid))
        fig.add_trace(
            go.Scatter(
                x=gx.ravel().round(3), y=gy.ravel().round(3), mode="markers", name="start here",
                marker={"size": 9, "opacity": 0}, showlegend=False,
                hovertemplate="start here: (%{x}, %{y})<extra></extra>",
            )
        )
    n_paths = len(result.trajectories)
    longest = max(len(t.x) for t in result.trajectories)
    cuts = sorted({max(1, round(longest * k / frames)) for k in range(1, frames + 1)})
    # Every trace is in every frame, the fixed ones with an empty update: plotly.js redraws
    # only the traces a frame lists, and a click selects among all of them; one it has not
    # redrawn since the last frame has no node to restyle, and the click then fails.
    fig.frames = [
        go.Frame(
            name=str(cut - 1),
            traces=list(range(len(fig.data))),
            data=[
                go.Scatter(x=tx[: np.searchsorted(idx, cut)], y=ty[: np.searchsorted(idx, cut)])
                for (tx, ty), idx in zip(thinned, kept)
            ] + [go.Scatter() for _ in range(len(fig.data) - n_paths)],
        )
        for cut in cuts
    ]
    still = {"mode": "immediate", "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}}
    play = {"frame": {"duration": 60, "redraw": False}, "fromcurrent": True, "transition": {"duration": 0}}
    surf = result.surface
    fig.update_layout(
        height=640 + 12 * len(result.trajectories),  # room for the legend rows many paths take
        margin={"l": 40, "r": 10, "t": 10, "b": 150},
        images=[{
            "source": surface_image(surf), "name": SURFACE_NAME, "layer": "below", "sizing": "stretch", "opacity": 0.75,
            "xref": "x", "yref": "y", "x": x0, "y": y1, "sizex": x1 - x0, "sizey": y1 - y0,
        }],
        xaxis={"range": [x0, x1], "title": "x", "showgrid": False, "zeroline": False},
        yaxis={"range": [y0, y1], "title": "y", "showgrid": False, "zeroline": False},
        # The title is the legend's own title: a legend that wraps onto more rows pushes the
        # plot down (plotly's automargin) and can never cover a separate title.
        legend={
            "orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
            # "top": on a row of its own; "top left" indents the items by the title's width.
            "title": {
                "text": f"<b>{fn.label}</b>" + ("  (colour: log₁₀ f)" if surf.log_scaled else "")
                + f"<br><span style='font-size:11px'>f(x, y) = {fn.formula}</span>",
                "side": "top",
            },
        },
        # Buttons and slider hang a fixed number of pixels below the plot (y=0 plus a pad):
        # positions in plot fractions moved onto the axis labels when the legend took rows.
        updatemenus=[{
            "type": "buttons", "showactive": False, "direction": "left",
            "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top", "pad": {"t": 48, "r": 10},
            "buttons": [
                {"label": "▶ play", "method": "animate", "args": [None, play]},
                {"label": "❚❚ pause", "method": "animate", "args": [[None], still]},
            ],
        }],
        sliders=[{
            "active": len(fig.frames) - 1,  # the figure opens on whole paths: the last frame
            "currentvalue": {"prefix": "step ", "xanchor": "right"}, "x": 0.0, "len": 1.0, "y": 0.0,
            "yanchor": "top", "pad": {"t": 78, "b": 0},
            "steps": [{"label": f.name, "method": "animate", "args": [[f.name], still]} for f in fig.frames],
        }],
    )
    return fig


def landscape_surface_figure(result: LandscapeResult) -> go.Figure:
    """The function as a 3-D surface with each trajectory drawn on it."""
    fn = result.config.test_function
    surf = result.surface
    fig = go.Figure(go.Surface(x=surf.x, y=surf.y, z=surf.z, colorscale="Blues", reversescale=True,
                               showscale=False, opacity=0.85))
    for i, t in enumerate(result.trajectories):
        z = [math.log10(v - (fn.min_value or 0.0) + 1e-3) if surf.log_scaled else v for v in t.values]
        n = min(len(t.x), len(z))
        fig.add_trace(go.Scatter3d(x=t.x[:n], y=t.y[:n], z=z[:n], mode="lines",
                                   line={"color": PALETTE[i % len(PALETTE)], "width": 5}, name=t.label))
    fig.update_layout(
        height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0},
        # As on the flat map: the title heads the legend, which sits above the scene (a legend
        # at the side took a third of a 490 px chart).
        legend={
            "orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom",
            "title": {"text": f"<b>{fn.label}</b>  ({'log₁₀ f' if surf.log_scaled else 'f'})", "side": "top"},
        },
        # The camera a little farther out than plotly's default, so the tick labels stay in view.
        scene={"xaxis_title": "x", "yaxis_title": "y", "zaxis_title": "log₁₀ f" if surf.log_scaled else "f",
               "camera": {"eye": {"x": 1.6, "y": 1.6, "z": 1.2}}},
    )
    return fig


# Below this a value or distance is "at the minimum" for the eye (float64 resolves 1e-16 of 1).
LOG_FLOOR = 1e-12


def landscape_curves_figure(result: LandscapeResult) -> go.Figure:
    """Function value and distance to the nearest minimum per step, one colour per optimizer."""
    fn = result.config.test_function
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("f(x, y)", f"distance to the nearest {fn.target_label}"))
    log_values = fn.min_value is not None
    for i, t in enumerate(result.trajectories):
        color = PALETTE[i % len(PALETTE)]
        steps = list(range(len(t.values)))
        # On a log axis, values that reached the minimum (1e-300, or exactly 0) would stretch
        # the axis over 300 decades or break the line: drawn at the floor instead.
        values = np.maximum(np.asarray(t.values, dtype=float), LOG_FLOOR) if log_values else t.values
        fig.add_trace(go.Scatter(x=steps, y=values, name=t.label, legendgroup=t.label,
                                 line={"color": color}, customdata=t.values,
                                 hovertemplate="%{customdata:.3g}<extra>" + t.label + "</extra>"), row=1, col=1)
        dist = np.maximum(np.asarray(t.distances(fn.minima), dtype=float), LOG_FLOOR)
        fig.add_trace(go.Scatter(x=list(range(len(dist))), y=dist, name=t.label, legendgroup=t.label,
                                 showlegend=False, line={"color": color}), row=2, col=1)
    if log_values:
        fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(exponentformat="power")  # 10⁻⁶, not plotly's "1µ", which reads as a unit
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(height=560, margin={"l": 40, "r": 20, "t": 40, "b": 40}, showlegend=False)
    return fig


