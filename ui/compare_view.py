"""The Compare page's view of a comparison job: progress, curves, the learning rate used, results."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.config import ComparisonConfig, RunConfig
from dlopt_core.engine.loop import data_key, load_run_data
from dlopt_core.device import resolve_device
from dlopt_core.experiments.compare import Comparison, ComparisonWork, summary_rows
from dlopt_core.plots import LRCurve, actual_lr_data, curves_data, curves_figure, lr_schedule_figure
from dlopt_core.plots.boundary import boundary_data, boundary_figure
from dlopt_core.runner.work import Job
from ui.exports import download_row
from ui.kit import attach_or_start, live_job, progress
from ui.status import may_stop


def start_comparison(config: ComparisonConfig) -> Job:
    """Submit ``config`` (or attach to the same comparison already running)."""
    return attach_or_start(
        config.key(), lambda: ComparisonWork(config),
        ready=lambda work: any(r.records for r in work.comparison.runs),
    )


def number_text(value: float | None) -> str:
    """4 significant digits (0.0001234 stays visible; 0.9749 and 0.9751 stay apart); n/a for none."""
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def results_frame(comparison: Comparison) -> pd.DataFrame:
    """The results table for reading: significant figures, mean ± sd over seeds, n/a for no value."""
    rows = []
    training = {r.label for r in comparison.runs if not r.status.ended}
    for row in summary_rows(comparison):
        shown: dict[str, object] = {}
        for key, value in row.items():
            if key.endswith(" sd"):
                continue
            if key.startswith("steps to"):
                # Not by every seed (a median of the ones that did would flatter), or not yet.
                # Text in every cell: a column of numbers and words cannot be one Arrow type.
                if value is None:
                    value = "…" if row["optimizer"] in training else "not reached"
                else:
                    value = f"{value:,.0f}"
            elif isinstance(value, float) or value is None:
                text = number_text(value)
                if value is not None and (sd := row.get(f"{key} sd")) is not None:
                    text += f" ± {sd:.2g}"
                value = text
            shown[key] = value
        # The status next to the name: it says why a row reads n/a, and stays in view at 820 px.
        rows.append({"optimizer": shown.pop("optimizer"), "status": shown.pop("status"), **shown})
    return pd.DataFrame(rows)


def _stop_optimizer(job: Job, indices: list[int]) -> None:
    for index in indices:
        job.stop_run(index)


def per_optimizer_stops(job: Job, comparison: Comparison, *, per_row: int = 3) -> None:
    """A Stop button per optimizer still training; the others go on."""
    groups: dict[str, list[int]] = {}
    for r in comparison.runs:
        if not r.status.ended:
            groups.setdefault(r.label, []).append(r.index)
    if len(groups) < 2:
        return  # with one optimizer left, the page's Stop does the same
    cols = st.columns(per_row)
    for n, (label, indices) in enumerate(groups.items()):
        cols[n % per_row].button(
            f"stop {label}", icon=":material/stop_circle:", key=f"stop-opt-{indices[0]}", width="stretch",
            help=f"stop {label} only; the other optimizers go on",
            on_click=_stop_optimizer, args=(job, indices),
        )


def engine_note(comparison: Comparison) -> str | None:
    """Which runs trained batched (stacked with others), and which on their own."""
    batched = [r for r in comparison.runs if r.engine == "batched"]
    alone = sorted({r.label for r in comparison.runs if r.engine == "sequential"})
    if not batched and not alone:
        return None  # not planned yet
    parts = []
    if batched:
        parts.append(
            f"{len(batched)} runs trained batched (stacked models: several runs per forward and "
            "backward pass, split over the CPU cores for long runs)"
        )
    if alone:
        parts.append(f"{'trained on their own' if batched else 'every run trained on its own'}: {', '.join(alone)}")
    if batched:
        parts.append("a batched run's time is its whole pass's")
    return "Engine: " + "; ".join(parts) + "."


CURVES_NOTE = (
    "**What to look for:** solid lines are losses measured on the whole train and validation sets "
    "at each evaluation (same model state, dropout off), so they compare directly; the dotted "
    "line is the mean mini-batch loss while training (weights moving, dropout on). A validation "
    "loss that turns up while the train loss keeps falling is overfitting. A band is the spread "
    "over seeds: curves whose bands overlap are not reliably different."
)
BOUNDARY_NOTE = (
    "**What to look for:** each panel is one optimizer's model (its first seed) over the plane: "
    "the colour is the class it predicts and how sure it is, the black line its decision "
    "boundary, the dots the validation points. Early on the boundaries are straight; watch which "
    "optimizer bends its boundary around the data first, and whether one overfits into islands."
)
LR_NOTE = (
    "**What to look for:** the dashed line is the plan; the solid line is the rate each run really "
    "used. They part where the schedule reacts to training (reduce-on-plateau cuts the rate when "
    "the validation loss stalls), and a drop in the rate often shows as a drop in the loss just after."
)


@st.cache_resource(max_entries=4, show_spinner=False, hash_funcs={RunConfig: data_key})
def run_data(config: RunConfig) -> Dataset:
    # The same points the runs trained on (the split is seeded), for the boundary figure.
    return load_run_data(config)


BOUNDARY_SECONDS = 2.0


def boundary_chart(comparison: Comparison, *, live: bool) -> object:
    # Rebuilt when a run reported new weights, at most every BOUNDARY_SECONDS while training:
    # a live view that takes longer than its polling interval is cut short and its charts blink.
    state = tuple((r.index, r.records[-1].step if r.records else -1) for r in comparison.runs if r.weights is not None)
    cache = st.session_state.setdefault("_boundary_cache", {})
    if cache.get("id") != comparison.id or (
        cache.get("state") != state and (not live or time.monotonic() - cache.get("at", 0.0) > BOUNDARY_SECONDS)
    ):
        figure = boundary_figure(boundary_data(comparison, run_data(comparison.runs[0].config)))
        cache.update(id=comparison.id, state=state, at=time.monotonic(), figure=figure)
    return cache["figure"]


def comparison_view(job: Job, *, x: str, log_y: bool, band: str, planned_lr: list[LRCurve] | None = None) -> None:
    """Progress, curves, the learning rate used and results; live while the job runs."""
    live_job(job, lambda j: _draw(j, x=x, log_y=log_y, band=band, planned_lr=planned_lr), name="compare", what="comparison")


def _draw(job: Job, *, x: str, log_y: bool, band: str, planned_lr: list[LRCurve] | None) -> None:
    work: ComparisonWork = job.work  # type: ignore[assignment]
    comparison = work.comparison
    optimum = comparison.optimum
    progress(job, comparison.progress, f"{comparison.progress:.0%} of {comparison.total_steps:,} steps")
    if may_stop(job):
        per_optimizer_stops(job, comparison)
    data = curves_data(comparison, x=x, band=band, optimum=optimum)  # type: ignore[arg-type]
    st.plotly_chart(curves_figure(data, log_y=log_y), key="curves", width="stretch")
    st.caption(CURVES_NOTE)
    if optimum is not None and optimum < 1e-6:
        st.caption(
            "The classes are linearly separable: the train loss of this linear model can "
            f"approach 0 (scikit-learn's solver reached {optimum:.1e})."
        )
    elif optimum is not None:
        st.caption(
            "Dashed line: the lowest train loss a linear model can reach here "
            "(closed form / scikit-learn, no regularisation)."
        )
    table = results_frame(comparison)
    st.dataframe(
        table, hide_index=True, width="stretch",
        # Wide enough for "0.08749 ± 0.00064": a cut "± 0.000" reads as no spread at all.
        column_config={c: st.column_config.TextColumn(width="medium") for c in table.columns if c != "seeds"},
    )
    if note := engine_note(comparison):
        st.caption(note)
    if not job.active and comparison.runs:
        download_row(comparison, config=comparison.config, table=table, name=f"dlopt-{comparison.id}",
                     title=f"dlopt comparison {comparison.id}")
    if any(r.weights is not None for r in comparison.runs):
        st.plotly_chart(boundary_chart(comparison, live=job.active), key="boundary", width="stretch")
        st.caption(BOUNDARY_NOTE)
    if planned_lr is not None:
        st.plotly_chart(
            lr_schedule_figure(planned_lr, actual=actual_lr_data(comparison)), key="lr_used", width="stretch"
        )
        st.caption(LR_NOTE)
    if resolve_device(comparison.config.device).type == "cuda":
        st.caption(
            "GPU kernels: deterministic (the same seed gives the same curves)"
            if comparison.config.deterministic
            else "GPU kernels: the fastest, not reproducible (curves may differ between runs of one seed)"
        )
