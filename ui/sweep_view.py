"""Start learning-rate sweeps in the background job registry and draw them live while they train."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import ComparisonConfig, TrainingSetup
from dlopt_core.engine.records import Status
from dlopt_core.experiments.compare import ComparisonWork, metric_name
from dlopt_core.experiments.sweep import BestLr, SweepConfig, SweepPoint, best_lrs, sweep_points
from dlopt_core.plots import SensitivityData, initial_val_loss, lr_text, sensitivity_data, sensitivity_figure
from dlopt_core.plots.sensitivity import GOOD_WITHIN, SweepMetric
from dlopt_core.runner.jobs import Job, registry
from ui.live import engine_note
from ui.status import browser_id, report_errors

POLL_SECONDS = 0.5
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
    existing = registry().get(config.key())
    if existing is not None and existing.active:
        return existing
    work = ComparisonWork(config, experiment="dlopt-sweep", parent=config.parent_name())
    return registry().submit(work, owner=browser_id())


def find_sweep(config: SweepConfig) -> Job | None:
    """The job for this exact sweep, if one ran in this server process."""
    return registry().get(config.key())


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
    """Progress, the sensitivity figure and the best-lr table; refreshes itself while the job runs."""
    polling = job.active

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def view() -> None:
        report_errors()  # a fragment's rerun has a context of its own
        work: ComparisonWork = job.work  # type: ignore[assignment]
        comparison = work.comparison
        config, points, best = _results(job)
        done = comparison.progress
        states = {Status.PENDING: "waiting for a free worker", Status.RUNNING: "training"}
        state = states.get(job.status, str(job.status))
        st.progress(
            min(done, 1.0),
            text=f"{state}: {done:.0%} · {comparison.done_steps:,} of {comparison.total_steps:,} steps "
            f"({len(comparison.runs):,} runs)",
        )
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
        if job.status is Status.FAILED:
            st.error(f"The sweep failed: {job.error}")
        for err in work.tracking_errors:
            st.warning(f"MLflow logging failed: {err}")
        if polling and not job.active:
            st.rerun()  # one full rerun turns polling off, re-enables Run and offers Compare

    view()


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
        query = {k: v if isinstance(v, list) else str(v) for k, v in cfg.to_dict().items()}
        # The Compare page reads its URL once per browser session; ask it to read this one.
        st.session_state.pop("compare._loaded", None)
        st.switch_page(COMPARE_PAGE, query_params=query)
