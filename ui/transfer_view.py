"""The Transfer page's live views: the transfer lab's arms and the parameter-sharing variants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dlopt_core.experiments.share import Share, ShareConfig, ShareWork, summary_rows as share_rows
from dlopt_core.experiments.transfer import TransferConfig, TransferWork, size_sweep, summary_rows
from dlopt_core.plots import (
    accuracy_curves_data,
    accuracy_curves_figure,
    conflict_data,
    conflict_figure,
    forgetting_data,
    forgetting_figure,
    layer_change_data,
    layer_change_figure,
    layer_lr_data,
    layer_lr_figure,
    share_cost_data,
    share_cost_figure,
    share_curves_data,
    share_curves_figure,
    sharing_table_data,
    size_curve_data,
    size_curve_figure,
    trainable_params_data,
    trainable_params_figure,
)
from dlopt_core.runner.work import Job
from dlopt_core.sharing import get_family, get_task
from dlopt_core.transfer.arms import ARMS
from ui.kit import attach_or_start, find, live, live_job, progress, run_row
from ui.widgets import seed_state

ACC = "%.3f"
CURVES_NOTE = (
    "**What to look for.** Left: accuracy on the target's validation set; right: on the shifted test "
    "(the target rotated or noised further than anything the arms trained on), which measures robustness. "
    "Bands: ± 1 sd over seeds. An arm that starts high at epoch 0 already knew something from the source."
)
PARETO_NOTE = (
    "**Learning against forgetting.** Each arm's target accuracy against the source accuracy its network "
    "keeps (the fine-tuned layers under the source model's own head). Up and to the right is better: "
    "frozen or low-rank arms forget less but may learn less (Biderman et al. 2024 saw this for LoRA on LLMs; "
    "this chart is what happened here)."
)
HEATMAP_NOTE = (
    "Each cell: how far a layer's weights moved from where fine-tuning started, ‖Δθ‖ / ‖θ‖, after each "
    "epoch (left), and the learning rate its parameter group was set to at the epoch's end (right: the "
    "schedule's lr times the arm's multiplier for the layer; 0 while frozen)."
)
RULES = {"equal": "equal weights", "pcgrad": "PCGrad"}
SIZE_NOTE = (
    "Scratch and one transfer arm trained at each share of the target data (same seeds and budget per size): "
    "where the lines meet, the source model stops paying."
)
CONFLICT_NOTE = (
    "The cosine between the two tasks' gradients on each shared trunk layer, measured each epoch on the same "
    "rows before any projection. Below 0 the tasks pull the trunk in opposite directions, where PCGrad "
    "projects each gradient off the other's. Run the other rule too to see both."
)
CHECKS_NOTE = (
    "Read from the built model and optimizer, not from the design: shared weights are one storage and one "
    "Parameter, counted once, get one optimizer state, receive the sum of their uses' gradients (checked "
    "against autograd on an untied copy) and are weight-decayed once."
)


def start_transfer(config: TransferConfig, source_state: Mapping[str, Any] | None = None) -> Job:
    """Submit (or attach to the same transfer experiment already running), owned by this browser;
    ``source_state``: the finished run's weights that ``config.source_run`` names."""
    return attach_or_start(config.key(), lambda: TransferWork(config, source_state=source_state))


def _summary_frame(rows: list[dict], *, sizes: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["arm"] = [ARMS[a].label for a in frame["arm"]]
    if not sizes:
        frame = frame.drop(columns=["target_fraction"])
    return frame


def _accuracy_columns() -> dict[str, object]:
    names = {
        "target_accuracy": "target acc", "shifted_accuracy": "shifted acc", "source_accuracy": "source acc kept",
    }
    cols: dict[str, object] = {k: st.column_config.NumberColumn(v, format=ACC) for k, v in names.items()}
    cols.update({f"{k}_sd": st.column_config.NumberColumn("± sd", format=ACC) for k in names})
    cols["trainable_params"] = st.column_config.NumberColumn("trainable params", format="localized")
    return cols


def transfer_view(job: Job) -> None:
    """Progress, accuracy curves, the summary, learning vs forgetting, params and the per-layer heatmaps."""
    live_job(job, _draw_transfer, name="transfer", what="transfer experiment", least=0.5)


def _draw_transfer(job: Job) -> None:
    t = job.work.transfer  # type: ignore[attr-defined]
    done = sum(r.status.ended for r in t.runs)
    source = "pretraining the source model" if t.source_accuracy is None else f"{done} of {len(t.runs)} runs"
    progress(job, t.progress, source)
    if t.source_accuracy is not None:
        st.caption(f"Source model: accuracy **{t.source_accuracy:.3f}** on the source task's validation set.")
    st.plotly_chart(accuracy_curves_figure(accuracy_curves_data(t)), key="transfer.curves", width="stretch")
    st.caption(CURVES_NOTE)
    st.dataframe(_summary_frame(summary_rows(t), sizes=False), hide_index=True, width="stretch",
                 column_config=_accuracy_columns())
    cols = st.columns(2)
    with cols[0]:
        st.plotly_chart(forgetting_figure(forgetting_data(t)), key="transfer.pareto", width="stretch")
        st.caption(PARETO_NOTE)
    with cols[1]:
        st.plotly_chart(trainable_params_figure(trainable_params_data(t)), key="transfer.params", width="stretch")
        st.caption("Parameters each arm trains within the budget (log scale); the rest stay as the source left them.")
    arms = list(t.config.arms)
    seed_state("transfer.view.arm", "full" if "full" in arms else arms[0])
    if st.session_state["transfer.view.arm"] not in arms:
        st.session_state["transfer.view.arm"] = arms[0]
    arm = st.selectbox("where the arm changes the network", arms, key="transfer.view.arm",
                       format_func=lambda n: ARMS[n].label)
    cols = st.columns(2)
    cols[0].plotly_chart(layer_change_figure(layer_change_data(t, arm)), key="transfer.change", width="stretch")
    cols[1].plotly_chart(layer_lr_figure(layer_lr_data(t, arm)), key="transfer.lr", width="stretch")
    st.caption(HEATMAP_NOTE)


def size_section(config: TransferConfig, source_state: Mapping[str, Any] | None = None) -> None:
    """The target-data-size sweep: scratch against one transfer arm at several shares of the target."""
    st.subheader("When does transfer stop paying?")
    arms = [a for a in config.arms if a != "scratch"] or ["full"]
    seed_state("transfer.size_arm", "lp-ft" if "lp-ft" in arms else arms[0])
    if st.session_state["transfer.size_arm"] not in arms:
        st.session_state["transfer.size_arm"] = arms[0]
    arm = st.selectbox("against scratch", arms, key="transfer.size_arm", format_func=lambda n: ARMS[n].label)
    sweep = size_sweep(config, arm=arm)
    st.caption(
        f"{len(sweep.fractions())} shares of the target data ({', '.join(f'{f:g}' for f in sweep.fractions())}) × "
        f"2 arms × {len(sweep.seeds)} seeds = **{len(sweep.plan())} runs**."
    )
    job = find(sweep.key())
    run_row([job] if job else [], lambda: start_transfer(sweep, source_state), key="sizes")
    if job is not None:
        live_job(job, _draw_sizes, name="transfer.sizes", what="data-size sweep", least=0.5)


def _draw_sizes(job: Job) -> None:
    t = job.work.transfer  # type: ignore[attr-defined]
    done = sum(r.status.ended for r in t.runs)
    progress(job, t.progress, f"{done} of {len(t.runs)} runs")
    st.plotly_chart(size_curve_figure(size_curve_data(t)), key="transfer.size_curve", width="stretch")
    st.caption(SIZE_NOTE)


# -- parameter sharing --


def start_share(config: ShareConfig) -> Job:
    """Submit (or attach to the same sharing experiment already running), owned by this browser."""
    return attach_or_start(config.key(), lambda: ShareWork(config))


def share_view(jobs: Sequence[Job]) -> None:
    """The first job's curves, costs, summary and checks; the conflict monitor over every job given
    (a multi-task experiment with equal weights and with PCGrad)."""
    live(lambda: [j for j in jobs if j is not None], _draw_share, name="share", what="sharing experiment", least=0.5)


def _share_columns(share: Share) -> dict[str, object]:
    cols: dict[str, object] = {"params": st.column_config.NumberColumn("params", format="localized"),
                               "train_s": st.column_config.NumberColumn("train s", format="%.2f")}
    for task in share.config.tasks:
        spec = get_task(task)
        fmt = ACC if spec.higher_is_better else "%.4f"  # accuracies to 3 places; an MSE needs more
        cols[spec.metric_key] = st.column_config.NumberColumn(spec.metric_key.replace("_", " "), format=fmt)
        cols[f"{spec.metric_key}_sd"] = st.column_config.NumberColumn("± sd", format=fmt)
    return cols


def _check_text(value: object) -> str:
    if isinstance(value, bool):
        return "✓ yes" if value else "✗ no"
    if value is None:
        return "— (keeps no state)"
    return f"{value:.1e}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)


def checks_frame(rows: list[dict]) -> pd.DataFrame:
    """The checks with a column per variant and a row per check: narrow enough for a phone."""
    frame = pd.DataFrame(rows).set_index("variant").T
    return frame.map(_check_text).rename(index=lambda name: name.replace("_", " "))


def _draw_share(jobs: Sequence[Job]) -> None:
    job = jobs[0]
    share: Share = job.work.share  # type: ignore[attr-defined]
    done = sum(r.status.ended for r in share.runs)
    progress(job, share.progress, f"{done} of {len(share.runs)} runs")
    tasks = share.config.tasks
    for other in jobs:  # with PCGrad run too: its curves under the equal-weights ones, task by task
        mirror: Share = other.work.share  # type: ignore[attr-defined]
        rule = f" · {RULES[mirror.config.combine]}" if len(jobs) > 1 else ""
        cols = st.columns(len(tasks))
        for col, task in zip(cols, tasks, strict=True):
            figure = share_curves_figure(share_curves_data(mirror, task=task), title=get_task(task).label + rule)
            col.plotly_chart(figure, key=f"share.curves.{task}.{mirror.config.combine}", width="stretch")
    st.caption("Mean over seeds; band: min to max. Validation set, after each epoch (epoch 0: untrained).")
    st.dataframe(pd.DataFrame(share_rows(share)), hide_index=True, width="stretch", column_config=_share_columns(share))
    seed_state("share.view.x", "params")
    x = st.segmented_control("cost axis", ["params", "seconds"], key="share.view.x", required=True,
                             format_func={"params": "parameters", "seconds": "training time"}.get)
    cols = st.columns(len(tasks))
    for col, task in zip(cols, tasks, strict=True):
        col.plotly_chart(share_cost_figure(share_cost_data(share, task=task, x=x)), key=f"share.cost.{task}",
                         width="stretch")
    st.markdown("**Really shared?**")
    if rows := sharing_table_data(share):
        st.dataframe(checks_frame(rows), width="stretch")
    st.caption(CHECKS_NOTE)
    if get_family(share.config.family).combines:
        shares = [j.work.share for j in jobs]  # type: ignore[attr-defined]
        st.plotly_chart(conflict_figure(conflict_data(shares)), key="share.conflict", width="stretch")
        st.caption(CONFLICT_NOTE)

