"""Figures in two steps, as Optuna does: ``*_data()`` gives plain data, ``*_figure()`` draws it."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dlopt_core.compare import Comparison, RunResult, metric_name
from dlopt_core.config import ComparisonConfig
from dlopt_core.landscape import LandscapeResult
from dlopt_core.reference import loss
from dlopt_core.schedules import Budget, lr_curve
from dlopt_core.train import Record

XAxis = Literal["epoch", "step", "samples", "wall_time"]
BandKind = Literal["minmax", "sd"]
X_LABELS: dict[str, str] = {
    "epoch": "epoch",
    "step": "optimizer step",
    "samples": "samples seen",
    "wall_time": "wall-clock seconds",
}
METRICS = ("train_loss", "val_loss", "val_metric")
PALETTE = qualitative.Plotly + qualitative.D3


@dataclass(frozen=True)
class Band:
    """One optimizer's curve over its seeds: mean with a low/high band."""

    label: str
    color: str
    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    n_runs: int
    note: str = ""


@dataclass(frozen=True)
class CurvesData:
    """Everything the comparison figure draws, per metric."""

    bands: dict[str, list[Band]]
    x: XAxis
    metric_label: str
    optimum: float | None = None


def _value(rec: Record, key: str) -> float:
    v = getattr(rec, key)
    return math.nan if v is None else float(v)


def _band(label: str, color: str, runs: list[RunResult], metric: str, x: XAxis, band: BandKind) -> Band:
    series = [[r for r in run.records if r.is_eval and math.isfinite(_value(r, metric))] for run in runs]
    length = max((len(s) for s in series), default=0)
    xs, means, lows, highs = [], [], [], []
    for i in range(length):
        points = [s[i] for s in series if len(s) > i]
        values = [_value(p, metric) for p in points]
        mean = statistics.fmean(values)
        if band == "sd" and len(values) > 1:
            sd = statistics.stdev(values)
            low, high = mean - sd, mean + sd
        else:
            low, high = min(values), max(values)
        xs.append(statistics.fmean(_value(p, x) for p in points))
        means.append(mean)
        lows.append(low)
        highs.append(high)
    # Runs that did not finish say so in the legend (e.g. "diverged at step 5").
    note = ", ".join(sorted({r.status_text for r in runs if r.status not in ("finished", "running", "pending")}))
    return Band(label, color, xs, means, lows, highs, len(runs), note)


def curves_data(
    comparison: Comparison,
    *,
    x: XAxis = "epoch",
    band: BandKind = "minmax",
    optimum: float | None = None,
) -> CurvesData:
    """Mean and band per optimizer for train loss, validation loss and validation metric."""
    groups: dict[str, list[RunResult]] = {}
    for r in comparison.runs:
        groups.setdefault(r.label, []).append(r)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(groups)}
    bands = {
        m: [_band(label, colors[label], runs, m, x, band) for label, runs in groups.items()]
        for m in METRICS
    }
    return CurvesData(bands, x, metric_name(comparison.config), optimum)


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def curves_figure(data: CurvesData, *, log_y: bool = False, title: str | None = None) -> go.Figure:
    """Three panels (train loss, validation loss, validation metric), one colour per optimizer."""
    titles = ("train loss", "validation loss", data.metric_label)
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    for col, metric in enumerate(METRICS, start=1):
        for b in data.bands[metric]:
            if b.n_runs > 1 and b.x:
                fig.add_trace(
                    go.Scatter(
                        x=b.x + b.x[::-1],
                        y=b.high + b.low[::-1],
                        fill="toself",
                        fillcolor=_rgba(b.color, 0.18),
                        line={"width": 0},
                        hoverinfo="skip",
                        legendgroup=b.label,
                        showlegend=False,
                        name=f"{b.label} band",
                    ),
                    row=1,
                    col=col,
                )
            fig.add_trace(
                go.Scatter(
                    x=b.x,
                    y=b.mean,
                    mode="lines+markers" if len(b.x) < 30 else "lines",
                    line={"color": b.color, "width": 2},
                    marker={"size": 4},
                    name=f"{b.label} ({b.note})" if b.note else b.label,
                    legendgroup=b.label,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=X_LABELS[data.x], row=1, col=col)
    if log_y:
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_yaxes(type="log", row=1, col=2)
    # On separable data the optimum is ~0, which a log axis cannot show; the caption says so.
    if data.optimum is not None and not (log_y and data.optimum < 1e-6):
        fig.add_hline(
            y=data.optimum,
            line={"dash": "dash", "color": "black", "width": 1},
            annotation_text=f"optimum {data.optimum:.4g}",
            annotation_position="top right",
            row=1,
            col=1,
        )
    fig.update_layout(
        title=title,
        height=420,
        margin={"l": 40, "r": 20, "t": 60 if title else 40, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        hovermode="x unified",
    )
    return fig


@dataclass(frozen=True)
class LRCurve:
    """The planned learning rate of one optimizer, per step."""

    label: str
    color: str
    epoch: list[float]
    lr: list[float]


def lr_schedule_data(config: ComparisonConfig, n_train: int) -> list[LRCurve]:
    """Each optimizer's lr over the whole budget, before anything trains."""
    from dlopt_core.train import steps_per_epoch

    curves = []
    for i, run_cfg in enumerate(config.runs()[:: len(config.seeds)]):
        per_epoch = steps_per_epoch(run_cfg, n_train)
        budget = Budget(run_cfg.epochs, per_epoch)
        # The figure needs ~500 points, not every step of a long run.
        steps = _stride(budget.total_steps, 500)
        lrs = lr_curve(run_cfg.schedule.name, run_cfg.schedule.params, run_cfg.optimizer.lr, budget, steps=steps)
        curves.append(
            LRCurve(run_cfg.optimizer.label, PALETTE[i % len(PALETTE)], [s / per_epoch for s in steps], lrs.tolist())
        )
    return curves


def lr_schedule_figure(curves: list[LRCurve], *, log_y: bool = True, note: str | None = None) -> go.Figure:
    """The lr schedule of every optimizer against epochs."""
    fig = go.Figure()
    for c in curves:
        fig.add_trace(go.Scatter(x=c.epoch, y=c.lr, name=c.label, line={"color": c.color, "shape": "hv"}))
    fig.update_layout(
        height=260,
        margin={"l": 40, "r": 20, "t": 40, "b": 40},
        title=note or "learning-rate schedule",
        xaxis_title="epoch",
        yaxis_title="learning rate",
        yaxis_type="log" if log_y else "linear",
        showlegend=True,
    )
    return fig


def _stride(n: int, most: int) -> list[int]:
    """Indices that thin a path of ``n`` points to about ``most``, keeping the last one."""
    step = max(1, math.ceil(n / most))
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


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
    kept = [_stride(len(t.x), max_points) for t in result.trajectories]
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


def reference_figure(ref: Any, torch_iterates: Any, *, x: Any, y: Any, kind: str) -> go.Figure:
    """The from-scratch and torch iterates over the loss contour in (bias, weight) space."""

    both = np.vstack([ref, torch_iterates])
    lo, hi = both.min(axis=0), both.max(axis=0)
    pad = np.maximum((hi - lo) * 0.25, 0.5)
    b_axis = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 60)
    w_axis = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 60)
    z = [[loss(np.array([b, w]), x, y, kind) for b in b_axis] for w in w_axis]  # type: ignore[arg-type]
    fig = go.Figure(go.Contour(x=b_axis, y=w_axis, z=np.log10(np.array(z)), colorscale="Blues",
                               reversescale=True, showscale=False, opacity=0.6, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=torch_iterates[:, 0], y=torch_iterates[:, 1], mode="lines",
                             line={"color": "#EF553B", "width": 6}, opacity=0.5, name="torch.optim"))
    fig.add_trace(go.Scatter(x=ref[:, 0], y=ref[:, 1], mode="lines+markers", marker={"size": 3},
                             line={"color": "black", "width": 1.5, "dash": "dot"}, name="from scratch (NumPy)"))
    fig.update_layout(height=420, margin={"l": 40, "r": 20, "t": 30, "b": 40},
                      xaxis_title="bias θ₀", yaxis_title="weight θ₁", legend={"orientation": "h", "y": -0.2})
    return fig
