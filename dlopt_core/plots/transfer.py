"""Transfer figures: accuracy curves with seed bands, trainable parameters, learning vs forgetting,
per-layer weight change and learning rate, accuracy against the target data's size.

Each in two steps: ``*_data()`` turns a :class:`~dlopt_core.experiments.transfer.Transfer` into
plain lists (what tests check), ``*_figure()`` draws them and computes nothing. A diverged run
has no final accuracy: it is left out of the means and named in ``diverged``, so it never drags
the other seeds' band down.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlopt_core.engine.records import Status
from dlopt_core.experiments.transfer import ArmRun, Transfer
from dlopt_core.plots.style import PALETTE, rgba
from dlopt_core.transfer.arms import get_arm


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _by_arm(transfer: Transfer, fraction: float | None) -> dict[str, list[ArmRun]]:
    fraction = fraction if fraction is not None else transfer.config.fractions()[0]
    out: dict[str, list[ArmRun]] = {}
    for r in transfer.runs:
        if r.fraction == fraction:
            out.setdefault(r.arm, []).append(r)
    return out


def _color(arm: str, arms: Sequence[str]) -> str:
    return PALETTE[list(arms).index(arm) % len(PALETTE)]


@dataclass(frozen=True)
class Band:
    arm: str
    label: str
    color: str
    x: list[int]  # epochs
    mean: list[float]
    sd: list[float]
    seeds: list[int]  # runs averaged at each epoch


@dataclass(frozen=True)
class AccuracyCurvesData:
    """Per arm, mean and sd over seeds of the target validation and the shifted test accuracy by epoch."""

    target: list[Band]
    shifted: list[Band]
    diverged: list[str]  # "arm seed=N", left out of the bands


def _band(arm: str, color: str, series: list[list[float]]) -> Band:
    epochs = max((len(s) for s in series), default=0)
    x, mean, sd, n = [], [], [], []
    for e in range(epochs):
        values = [s[e] for s in series if e < len(s)]
        m, d = _mean_sd(values)
        x.append(e)
        mean.append(m)
        sd.append(d)
        n.append(len(values))
    return Band(arm, get_arm(arm).label, color, x, mean, sd, n)


def accuracy_curves_data(transfer: Transfer, *, fraction: float | None = None) -> AccuracyCurvesData:
    """Seed bands per arm at ``fraction`` (default: the config's first target fraction)."""
    groups = _by_arm(transfer, fraction)
    arms = list(groups)
    target, shifted, diverged = [], [], []
    for arm, runs in groups.items():
        ok = [r for r in runs if r.status is not Status.DIVERGED]
        diverged += [f"{arm} seed={r.config.seed}" for r in runs if r.status is Status.DIVERGED]
        color = _color(arm, arms)
        target.append(_band(arm, color, [r.target_accuracies for r in ok]))
        shifted.append(_band(arm, color, [list(r.shifted_accuracy) for r in ok]))
    return AccuracyCurvesData(target, shifted, diverged)


def accuracy_curves_figure(data: AccuracyCurvesData, *, title: str | None = None) -> go.Figure:
    """Two panels (target validation, shifted test), one colour per arm, mean ± sd over seeds."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("target validation accuracy", "shifted test accuracy"))
    for col, bands in ((1, data.target), (2, data.shifted)):
        for b in bands:
            if not b.x:
                continue
            upper = [m + s for m, s in zip(b.mean, b.sd)]
            lower = [m - s for m, s in zip(b.mean, b.sd)]
            fig.add_trace(go.Scatter(
                x=b.x + b.x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=rgba(b.color, 0.15),
                line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=b.arm,
            ), row=1, col=col)
            fig.add_trace(go.Scatter(
                x=b.x, y=b.mean, mode="lines", name=b.label, line={"color": b.color}, legendgroup=b.arm,
                showlegend=col == 1, customdata=list(zip(b.sd, b.seeds)),
                hovertemplate=f"{b.label}<br>epoch %{{x}}<br>accuracy %{{y:.3f}} ± %{{customdata[0]:.3f}}"
                "<br>%{customdata[1]} seeds<extra></extra>",
            ), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    note = f" (diverged, left out: {', '.join(data.diverged)})" if data.diverged else ""
    # The legend below the panels: seven arm names beside them left each panel a third of a phone's width.
    fig.update_layout(title=(title or "accuracy by arm, mean ± sd over seeds") + note,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    return fig


@dataclass(frozen=True)
class TrainableParamsData:
    arms: list[str]
    labels: list[str]
    params: list[int]
    colors: list[str]


def trainable_params_data(transfer: Transfer) -> TrainableParamsData:
    """Numbers each arm trains (known once one of its runs started)."""
    groups = _by_arm(transfer, None)
    arms = [a for a, runs in groups.items() if runs[0].trainable_params]
    return TrainableParamsData(
        arms, [get_arm(a).label for a in arms], [groups[a][0].trainable_params for a in arms],
        [_color(a, list(groups)) for a in arms],
    )


def trainable_params_figure(data: TrainableParamsData) -> go.Figure:
    """One bar per arm, log scale."""
    fig = go.Figure(go.Bar(
        x=data.labels, y=data.params, marker_color=data.colors, text=[f"{p:,}" for p in data.params],
        textposition="outside", hovertemplate="%{x}: %{y:,} trainable<extra></extra>",
    ))
    fig.update_yaxes(type="log", title_text="trainable parameters (log scale)")
    fig.update_layout(title="trainable parameters per arm")
    return fig


@dataclass(frozen=True)
class ForgettingPoint:
    arm: str
    label: str
    color: str
    target: float
    target_sd: float
    source: float
    source_sd: float
    seeds: int
    on_front: bool


@dataclass(frozen=True)
class ForgettingData:
    """Per arm: target accuracy against the source accuracy it kept (finished runs only), and the front."""

    points: list[ForgettingPoint]
    front: list[tuple[float, float]]  # (retained source, target), by source accuracy
    source_model_accuracy: float | None
    left_out: list[str]  # arms with no finished run


def forgetting_data(transfer: Transfer, *, fraction: float | None = None) -> ForgettingData:
    """The learning–forgetting trade-off: no arm on the front is beaten on both accuracies by another."""
    groups = _by_arm(transfer, fraction)
    raw, left_out = [], []
    for arm, runs in groups.items():
        if not get_arm(arm).uses_source:  # it kept nothing of a source it never saw
            continue
        done = [r for r in runs if r.target_accuracy is not None and r.source_accuracy is not None]
        if not done:
            left_out.append(arm)
            continue
        t, t_sd = _mean_sd([r.target_accuracy for r in done])  # type: ignore[misc]
        s, s_sd = _mean_sd([r.source_accuracy for r in done])  # type: ignore[misc]
        raw.append((arm, t, t_sd, s, s_sd, len(done)))
    def beaten(t: float, s: float) -> bool:
        return any(t2 >= t and s2 >= s and (t2 > t or s2 > s) for _, t2, _, s2, _, _ in raw)
    points = [
        ForgettingPoint(a, get_arm(a).label, _color(a, list(groups)), t, tsd, s, ssd, n, not beaten(t, s))
        for a, t, tsd, s, ssd, n in raw
    ]
    front = sorted((p.source, p.target) for p in points if p.on_front)
    return ForgettingData(points, front, transfer.source_accuracy, left_out)


def forgetting_figure(data: ForgettingData) -> go.Figure:
    """Target accuracy (y) against retained source accuracy (x), one marker per arm with seed error bars."""
    fig = go.Figure()
    if data.front:
        fig.add_trace(go.Scatter(
            x=[f[0] for f in data.front], y=[f[1] for f in data.front], mode="lines", name="front",
            line={"color": "grey", "dash": "dot"}, hoverinfo="skip",
        ))
    for p in data.points:
        fig.add_trace(go.Scatter(
            x=[p.source], y=[p.target], mode="markers", name=p.label,
            marker={"color": p.color, "size": 12, "symbol": "star" if p.on_front else "circle"},
            error_x={"type": "data", "array": [p.source_sd]}, error_y={"type": "data", "array": [p.target_sd]},
            hovertemplate=f"{p.label}<br>target %{{y:.3f}} ± {p.target_sd:.3f}<br>source kept %{{x:.3f}} ± "
            f"{p.source_sd:.3f}<br>{p.seeds} seeds<extra></extra>",
        ))
    if data.source_model_accuracy is not None:
        fig.add_vline(x=data.source_model_accuracy, line_dash="dash", line_color="grey",
                      annotation_text="source model before fine-tuning")
    fig.update_xaxes(title_text="source accuracy kept (backbone under the source head)", range=[0, 1.05])
    fig.update_yaxes(title_text="target accuracy")
    fig.update_layout(title="learning vs forgetting")
    return fig


@dataclass(frozen=True)
class LayerHeatmapData:
    """One arm's per-layer value by epoch (mean over its finished or running seeds)."""

    arm: str
    label: str
    what: str  # "relative weight change" or "learning rate"
    layers: list[str]  # bottom first, the head last
    epochs: list[int]
    z: list[list[float | None]]  # z[layer][epoch]


def _layer_data(transfer: Transfer, arm: str, attr: str, what: str, fraction: float | None) -> LayerHeatmapData:
    runs = [r for r in _by_arm(transfer, fraction).get(arm, []) if r.status is not Status.DIVERGED and r.layers]
    layers = runs[0].layers if runs else []
    epochs = max((len(getattr(r, attr)[layers[0]]) for r in runs), default=0) if layers else 0
    z: list[list[float | None]] = []
    for layer in layers:
        row: list[float | None] = []
        for e in range(epochs):
            values = [getattr(r, attr)[layer][e] for r in runs if e < len(getattr(r, attr)[layer])]
            row.append(statistics.fmean(values) if values else None)
        z.append(row)
    # Module names of a Sequential are numbers ("0", "2"): named by role, so no axis reads them as values.
    names = [f"head ({l})" if i == len(layers) - 1 else f"layer {i + 1} ({l})" for i, l in enumerate(layers)]
    return LayerHeatmapData(arm, get_arm(arm).label, what, names, list(range(1, epochs + 1)), z)


def layer_change_data(transfer: Transfer, arm: str, *, fraction: float | None = None) -> LayerHeatmapData:
    """||θ_l − θ_l(start)|| / ||θ_l(start)|| per layer after each epoch (a LoRA layer: its effective weight)."""
    return _layer_data(transfer, arm, "layer_change", "relative weight change", fraction)


def layer_lr_data(transfer: Transfer, arm: str, *, fraction: float | None = None) -> LayerHeatmapData:
    """The learning rate each layer trained with in each epoch (0 while frozen)."""
    return _layer_data(transfer, arm, "layer_lr", "learning rate", fraction)


def _heatmap(data: LayerHeatmapData, colorscale: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(
        x=data.epochs, y=data.layers, z=data.z, colorscale=colorscale, colorbar={"title": data.what}, zmin=0,
        hovertemplate=f"layer %{{y}}<br>epoch %{{x}}<br>{data.what} %{{z:.4g}}<extra></extra>",
    ))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="layer (bottom first)", type="category")
    fig.update_layout(title=f"{data.label}: {data.what} per layer")
    return fig


def layer_change_figure(data: LayerHeatmapData) -> go.Figure:
    """Layer x epoch heatmap of the relative weight change."""
    return _heatmap(data, "Viridis")


def layer_lr_figure(data: LayerHeatmapData) -> go.Figure:
    """Layer x epoch heatmap of the learning rate used (0: frozen)."""
    return _heatmap(data, "Blues")


@dataclass(frozen=True)
class SizeLine:
    arm: str
    label: str
    color: str
    fractions: list[float]
    mean: list[float]
    sd: list[float]


@dataclass(frozen=True)
class SizeCurveData:
    """Final accuracy against the target fraction, per arm (scratch and the transfer arms of a size sweep)."""

    metric: str  # "target" or "shifted"
    lines: list[SizeLine]
    best_transfer: str | None  # the transfer arm with the best mean over the fractions


def size_curve_data(transfer: Transfer, *, metric: str = "target") -> SizeCurveData:
    """Mean ± sd over finished seeds of the final ``target`` (or ``shifted``) accuracy at each fraction."""
    arms = list(dict.fromkeys(r.arm for r in transfer.runs))
    lines = []
    for arm in arms:
        xs, means, sds = [], [], []
        for f in transfer.config.fractions():
            values = [v for r in transfer.runs if r.arm == arm and r.fraction == f
                      and (v := (r.target_accuracy if metric == "target" else r.shifted)) is not None]
            if values:
                m, s = _mean_sd(values)
                xs.append(f)
                means.append(m)
                sds.append(s)
        lines.append(SizeLine(arm, get_arm(arm).label, _color(arm, arms), xs, means, sds))
    transfer_lines = [line for line in lines if line.arm != "scratch" and line.mean]
    best = max(transfer_lines, key=lambda line: statistics.fmean(line.mean)).arm if transfer_lines else None
    return SizeCurveData(metric, lines, best)


def size_curve_figure(data: SizeCurveData) -> go.Figure:
    """Accuracy against the target fraction (log scale), scratch against the transfer arms."""
    fig = go.Figure()
    for line in data.lines:
        fig.add_trace(go.Scatter(
            x=line.fractions, y=line.mean, mode="lines+markers", name=line.label,
            line={"color": line.color, "width": 3 if line.arm == data.best_transfer else 2},
            error_y={"type": "data", "array": line.sd},
        ))
    fig.update_xaxes(type="log", title_text="share of the target's training data (log scale)")
    fig.update_yaxes(title_text=f"final {data.metric} accuracy", range=[0, 1.02])
    fig.update_layout(title="accuracy against target data size")
    return fig
