"""The learning-rate figure: the plan before anything trains, and what each run used."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from dlopt_core.catalog.schedules import lr_curve
from dlopt_core.config import ComparisonConfig
from dlopt_core.experiments.compare import Comparison
from dlopt_core.plots.style import PALETTE, stride
from dlopt_core.engine.budget import step_budget
from dlopt_core.engine.loop import run_budget


@dataclass(frozen=True)
class LRCurve:
    """The planned learning rate of one optimizer, per step."""

    label: str
    color: str
    epoch: list[float]
    lr: list[float]


def lr_schedule_data(config: ComparisonConfig, n_train: int | None = None) -> list[LRCurve]:
    """Each optimizer's lr over the whole budget, before anything trains; ``n_train``: a training
    set size to lay it over instead of each run's own (rows after its reduction)."""
    curves = []
    for i, run_cfg in enumerate(config.runs()[:: len(config.seeds)]):
        budget = (run_budget(run_cfg) if n_train is None else step_budget(run_cfg, n_train)).schedule
        per_epoch = budget.steps_per_epoch
        # The figure needs ~500 points, not every step of a long run.
        steps = stride(budget.total_steps, 500)
        lrs = lr_curve(run_cfg.schedule.name, run_cfg.schedule.params, run_cfg.optimizer.lr, budget, steps=steps)
        curves.append(
            LRCurve(run_cfg.optimizer.label, PALETTE[i % len(PALETTE)], [s / per_epoch for s in steps], lrs.tolist())
        )
    return curves


def actual_lr_data(comparison: Comparison) -> list[LRCurve]:
    """The lr every run used, from its records (one curve per run, its optimizer's colour)."""
    colors: dict[str, str] = {}
    curves = []
    several = len(comparison.config.seeds) > 1 if hasattr(comparison.config, "seeds") else False
    for r in comparison.runs:
        color = colors.setdefault(r.label, PALETTE[len(colors) % len(PALETTE)])
        if r.lr_points:
            label = f"{r.label} seed {r.config.seed}" if several else r.label
            epochs, lrs = [e for e, _ in r.lr_points], [lr for _, lr in r.lr_points]
            # Change points only: carry the last rate on to where the run is now.
            now = r.steps / r.steps_per_epoch
            if now > epochs[-1]:
                epochs.append(now)
                lrs.append(lrs[-1])
            curves.append(LRCurve(label, color, epochs, lrs))
    return curves


def lr_schedule_figure(
    curves: list[LRCurve], *, log_y: bool = True, note: str | None = None, actual: list[LRCurve] | None = None
) -> go.Figure:
    """The planned lr of every optimizer against epochs; with ``actual``, what each run used beside it."""
    fig = go.Figure()
    for c in curves:
        fig.add_trace(go.Scatter(
            x=c.epoch, y=c.lr, name=f"{c.label} (plan)" if actual else c.label,
            line={"color": c.color, "shape": "hv", "dash": "dash" if actual else "solid", "width": 1 if actual else 2},
            legendgroup=c.label,
        ))
    seen: set[str] = set()
    for c in actual or []:
        group = c.label.split(" seed ")[0]
        fig.add_trace(go.Scatter(
            x=c.epoch, y=c.lr, name=f"{group} (used)", mode="lines", legendgroup=group,
            line={"color": c.color, "shape": "hv", "width": 2}, showlegend=group not in seen,
            hovertemplate=f"{c.label}: lr %{{y:.3g}} at epoch %{{x:.3g}}<extra></extra>",
        ))
        seen.add(group)
    if actual:
        title = "learning rate: planned (dashed) and used by each run (solid)"
    else:
        title = note or "learning-rate schedule"
    fig.update_layout(
        height=300 if actual else 260,
        margin={"l": 40, "r": 20, "t": 40, "b": 40},
        title=title,
        xaxis_title="epoch",
        yaxis_title="learning rate",
        yaxis_type="log" if log_y else "linear",
        yaxis_tickformat="~g",  # 0.05 and 1e-05, never a bare "5" or "100µ"
        showlegend=True,
    )
    return fig


