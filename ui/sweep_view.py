"""Start learning-rate sweeps in the background job registry and draw them live while they train."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import ComparisonConfig, TrainingSetup
from dlopt_core.experiments.compare import ComparisonWork, metric_name
from dlopt_core.experiments.sweep import BestLr, SweepConfig, SweepPoint, best_lrs, sweep_points
from dlopt_core.plots import SensitivityData, initial_val_loss, lr_text, sensitivity_data, sensitivity_figure
from dlopt_core.plots.sensitivity import GOOD_WITHIN, SweepMetric
from dlopt_core.runner.work import Job
from ui import compare_form
from ui.compare_view import engine_note
from ui.kit import attach_or_start, live_job, progress

GOOD = f"lrs within {GOOD_WITHIN:g}× best loss"
COMPARE_PAGE = "pages/1_Compare_optimizers.py"
WHAT_TO_LOOK_FOR = (
    "**What to look for.** A wide, flat valley means the optimizer is easy to tune: many learning "
    "rates give nearly the best result. A narrow dip means the lr must be just right. Left of the "
    "valley the lr is too small (the loss barely moved in the budget); right of it, too large "
    "(the loss climbs, then the runs diverge). A best lr at the end of the range may not be the "
    "best at all: widen the range on that side. Adaptive optimizers (Adam, RMSprop) usually want "
    "learning rates 10-100× smaller than SGD's."
)


def start_sweep(config: SweepConfig) -> Job:
    """Submit ``config`` (or attach to the same sweep already running)."""
    return attach_or_start(config.key(), lambda: ComparisonWork(config, parent=config.parent_name()))


def _results(job: Job) -> tuple[SweepConfig, list[SweepPoint], dict[str, BestLr]]:
    work: ComparisonWork = job.work  # type: ignore[assignment]
    config: SweepConfig = work.config
    points = sweep_points(work.comparison)
    return config, points, best_lrs(points, config.lrs())


def best_frame(
    config: SweepConfig, points: list[SweepPoint], best: dict[str, BestLr], data: SensitivityData
) -> pd.DataFrame:
    """One row per optimizer: its best lr (and whether it sits on the grid's edge), the loss and
    metric there, the lrs nearly as good, and where runs diverged. ``data`` is the loss view."""
    metric = metric_name(config)
    by_key = {(p.optimizer, p.lr): p for p in points}
    lines = {line.optimizer: line for line in data.lines}
    rows = []
    for opt in config.optimizers:
        b, line = best.get(opt.name), lines.get(opt.name)
        diverged = [] if line is None else line.diverged_lr
        row = {
            "optimizer": " ".join([get_optimizer(opt.name).label, *opt.changed()]),
            "best lr": "—", "val loss ± sd": "—", metric: "—", GOOD: "—",
            "diverged": f"{len(diverged)} of {config.points} lrs, from {lr_text(min(diverged))}" if diverged else "",
            "note": "",
        }
        if b is None:
            row["note"] = "every lr diverged" if len(diverged) == config.points else "no result yet"
        else:
            sd = by_key[(opt.name, b.lr)].sd_loss
            low, high = line.good_range if line and line.good_range else (b.lr, b.lr)
            row.update({
                "best lr": lr_text(b.lr),
                "val loss ± sd": f"{b.loss:.3g} ± {sd:.2g}" if sd else f"{b.loss:.3g}",
                metric: "—" if b.metric is None else f"{b.metric:.3f}",
                GOOD: lr_text(low) if low == high else f"{lr_text(low)} – {lr_text(high)}",
                # The true best may lie outside the grid; a warning under the table says so too.
                "note": "on the edge of the range: widen it" if b.on_edge else "",
            })
        rows.append(row)
    return pd.DataFrame(rows)


def _epoch_caption(config: SweepConfig, data: SensitivityData, job: Job) -> str:
    span = f"{data.epoch_min:g}" if data.epoch_min == data.epoch_max else f"{data.epoch_min:g}–{data.epoch_max:g}"
    seeds = ", ".join(map(str, config.seeds))
    what = "validation loss" if data.metric == "loss" else metric_name(config)
    if job.active:
        return (f"Training: the curve shows each learning rate's latest evaluation, epoch {span} of "
                f"{config.epochs}; it fills in as the runs train.")
    stopped = "" if data.epoch_min >= config.epochs else f" (stopped at epoch {span} of {config.epochs})"
    band = "; band: ± 1 sd over seeds" if len(config.seeds) > 1 else ""
    return f"Final {what}{stopped}, mean over seeds {seeds}{band}."


def _marks_caption(data: SensitivityData) -> str:
    parts = ["★ the best lr of each optimizer (lowest mean validation loss)"]
    if any(line.diverged_lr for line in data.lines):
        edge = "top" if data.metric == "loss" else "bottom"
        parts.append(f"✕ at the {edge}: a learning rate where a seed diverged (the line breaks there)")
    if any(line.off_scale_lr for line in data.lines):
        side = "above" if data.metric == "loss" else "below"
        parts.append(f"▲ a value {side} the plotted range, its number written beside it (hover for every value)")
    return "; ".join(parts) + "."


def sweep_view(job: Job, *, metric: SweepMetric) -> None:
    """Progress, the sensitivity figure and the best-lr table; live while the job runs."""
    live_job(job, lambda j: _draw(j, metric), name="sweep", what="sweep", least=0.5)


def _draw(job: Job, metric: SweepMetric) -> None:
    comparison = job.work.comparison  # type: ignore[attr-defined]
    config, points, best = _results(job)
    done = comparison.progress
    progress(job, done, f"{done:.0%} · {comparison.done_steps:,} of {comparison.total_steps:,} steps ({len(comparison.runs):,} runs)")
    common = {"seeds": len(config.seeds), "initial_loss": initial_val_loss(comparison)}
    shown = sensitivity_data(points, best, config.lrs(), metric, **common)
    label = "final validation loss" if metric == "loss" else f"final {metric_name(config)}"
    st.plotly_chart(sensitivity_figure(shown, label), key="sensitivity", width="stretch")
    st.caption(_epoch_caption(config, shown, job) + " " + _marks_caption(shown))
    # The table is about the loss whichever y axis is shown.
    by_loss = shown if metric == "loss" else sensitivity_data(points, best, config.lrs(), "loss", **common)
    st.dataframe(best_frame(config, points, best, by_loss), hide_index=True, width="stretch")
    if edge := [b for b in best.values() if b.on_edge]:
        st.warning(" ".join(
            f"{b.label}'s best lr, {lr_text(b.lr)}, is the {'lowest' if b.lr == config.lrs()[0] else 'highest'} "
            "of the range: the true best may lie beyond it; widen the range on that side."
            for b in edge
        ))
    st.caption(WHAT_TO_LOOK_FOR)
    if note := engine_note(comparison):
        st.caption(note)


def comparison_at_best(config: SweepConfig, best: dict[str, BestLr]) -> ComparisonConfig:
    """The same setup and seeds, each optimizer (that has a best lr) at its best lr."""
    shared = config.model_dump(include=set(TrainingSetup.model_fields))
    optimizers = [o.model_copy(update={"lr": best[o.name].lr}) for o in config.optimizers if o.name in best]
    return ComparisonConfig.make(**shared, optimizers=optimizers, seeds=config.seeds, engine=config.engine)


def compare_button(job: Job) -> None:
    """Send each optimizer at its best lr to the Compare page, through the URL."""
    config, _, best = _results(job)
    missing = [get_optimizer(o.name).label for o in config.optimizers if o.name not in best]
    pressed = st.button(
        "Compare at the best learning rates", icon=":material/compare_arrows:", disabled=not best,
        help="open the Compare page with each optimizer at its best lr: the full training curves",
    )
    if missing and best:
        st.caption(
            f"Left out (no learning rate reached the end of the budget with every seed): {', '.join(missing)}."
        )
    if pressed:
        cfg = comparison_at_best(config, best)
        compare_form.BINDING.open(cfg, page=COMPARE_PAGE)
