"""Landscape figures: contour with paths and animation, 3-D surface, value and distance curves."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlopt_core.experiments.landscape import LandscapeResult
from dlopt_core.plots.style import PALETTE, stride


def landscape_figure(
    result: LandscapeResult, *, frames: int = 40, max_points: int = 250, click_grid: int = 0
) -> go.Figure:
    """Contour of the function, every trajectory, the minima, and a play button and slider.

    ``click_grid`` > 0 lays an invisible ``click_grid`` x ``click_grid`` grid of points over
    the window (trace name ``start here``), so a click on the plot can pick a start point.
    """
    fn = result.config.test_function
    surf = result.surface
    fig = go.Figure()
    if click_grid:
        (x0, x1), (y0, y1) = fn.window
        gx, gy = np.meshgrid(np.linspace(x0, x1, click_grid), np.linspace(y0, y1, click_grid))
        fig.add_trace(
            go.Scatter(
                x=gx.ravel().round(3), y=gy.ravel().round(3), mode="markers", name="start here",
                marker={"size": 9, "opacity": 0}, showlegend=False,
                hovertemplate="start here: (%{x}, %{y})<extra></extra>",
            )
        )
    fig.add_trace(
        go.Contour(
            x=np.asarray(surf.x), y=np.asarray(surf.y), z=np.asarray(surf.z), ncontours=35, colorscale="Blues", reversescale=True,
            showscale=False, opacity=0.75, hoverinfo="skip",
            contours={"coloring": "heatmap", "showlines": True},
            line={"width": 0.5, "color": "rgba(255,255,255,0.4)"},
            name="log₁₀ f" if surf.log_scaled else "f",
        )
    )
    first_path = len(fig.data)
    # numpy arrays, not lists: plotly validates lists element by element (10x slower here).
    kept = [stride(len(t.x), max_points) for t in result.trajectories]
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
    longest = max(len(t.x) for t in result.trajectories)
    cuts = sorted({max(1, round(longest * k / frames)) for k in range(1, frames + 1)})
    traces = list(range(first_path, first_path + len(result.trajectories)))
    fig.frames = [
        go.Frame(
            name=str(cut - 1),
            traces=traces,
            data=[
                go.Scatter(x=tx[: np.searchsorted(idx, cut)], y=ty[: np.searchsorted(idx, cut)])
                for (tx, ty), idx in zip(thinned, kept)
            ],
        )
        for cut in cuts
    ]
    play = {"frame": {"duration": 60, "redraw": False}, "fromcurrent": True, "transition": {"duration": 0}}
    fig.update_layout(
        height=620,
        margin={"l": 40, "r": 20, "t": 90, "b": 110},
        title={"text": f"{fn.label}: {fn.formula}", "y": 0.98, "yanchor": "top"},
        xaxis={"range": list(fn.window[0]), "title": "x"},
        yaxis={"range": list(fn.window[1]), "title": "y"},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        updatemenus=[{
            "type": "buttons", "showactive": False, "direction": "left",
            "x": 0.0, "y": -0.1, "xanchor": "left", "yanchor": "top",
            "buttons": [
                {"label": "▶ play", "method": "animate", "args": [None, play]},
                {"label": "❚❚ pause", "method": "animate",
                 "args": [[None], {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}]},
            ],
        }],
        sliders=[{
            "currentvalue": {"prefix": "step ", "xanchor": "right"}, "x": 0.22, "len": 0.78, "y": -0.06, "yanchor": "top",
            "steps": [
                {"label": f.name, "method": "animate",
                 "args": [[f.name], {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}]}
                for f in fig.frames
            ],
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
    fig.update_layout(height=560, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      title=f"{fn.label} ({'log₁₀ f' if surf.log_scaled else 'f'})",
                      scene={"xaxis_title": "x", "yaxis_title": "y", "zaxis_title": "log₁₀ f" if surf.log_scaled else "f"})
    return fig


def landscape_curves_figure(result: LandscapeResult) -> go.Figure:
    """Function value and distance to the nearest minimum per step, one colour per optimizer."""
    fn = result.config.test_function
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("f(x, y)", f"distance to the nearest {fn.target_label}"))
    for i, t in enumerate(result.trajectories):
        color = PALETTE[i % len(PALETTE)]
        steps = list(range(len(t.values)))
        fig.add_trace(go.Scatter(x=steps, y=t.values, name=t.label, legendgroup=t.label,
                                 line={"color": color}), row=1, col=1)
        dist = t.distances(fn.minima)
        fig.add_trace(go.Scatter(x=list(range(len(dist))), y=dist, name=t.label, legendgroup=t.label,
                                 showlegend=False, line={"color": color}), row=2, col=1)
    if fn.min_value is not None:
        fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(height=560, margin={"l": 40, "r": 20, "t": 40, "b": 40}, showlegend=False)
    return fig


