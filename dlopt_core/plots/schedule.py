"""The learning-rate schedule figure, drawn from the plan before anything trains."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from dlopt_core.catalog.schedules import Budget, lr_curve
from dlopt_core.config import ComparisonConfig
from dlopt_core.plots.style import PALETTE, stride


@dataclass(frozen=True)
class LRCurve:
    """The planned learning rate of one optimizer, per step."""

    label: str
    color: str
    epoch: list[float]
    lr: list[float]


def lr_schedule_data(config: ComparisonConfig, n_train: int) -> list[LRCurve]:
    """Each optimizer's lr over the whole budget, before anything trains."""
    from dlopt_core.engine.loop import steps_per_epoch

    curves = []
    for i, run_cfg in enumerate(config.runs()[:: len(config.seeds)]):
        per_epoch = steps_per_epoch(run_cfg, n_train)
        budget = Budget(run_cfg.epochs, per_epoch)
        # The figure needs ~500 points, not every step of a long run.
        steps = stride(budget.total_steps, 500)
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


