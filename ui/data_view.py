"""The Data page's views: the augmentation preview, and the two experiments drawn live."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
import torch

from dlopt_core.catalog.augmentations import AUGMENTATIONS, BatchInfo, compose
from dlopt_core.catalog.datasets import Dataset
from dlopt_core.config import ConfigError, RunConfig
from dlopt_core.experiments.compare import ComparisonWork, metric_name
from dlopt_core.experiments.data_demos import AugmentDemoConfig, ReduceSweepConfig, VariantRow, variant_rows
from dlopt_core.plots import curves_data, curves_figure
from dlopt_core.plots.augment import augment_grid_data, augment_grid_figure, augment_scatter_data, augment_scatter_figure
from dlopt_core.plots.reduction import XAxis, reduction_data, reduction_figure
from dlopt_core.runner.work import Job
from ui.compare_view import boundary_chart, run_data
from ui.kit import attach_or_start, find, live_job, progress, run_row
from ui.widgets import code_span, seed_state

GAP_NOTE = (
    "**What to look for:** on a small training set the train loss keeps falling while the validation "
    "loss stalls, then climbs: overfitting (compare a variant's last validation loss with its lowest). "
    "An augmentation that helps lowers the validation loss. A smaller gap alone is not a win: a harder "
    "task raises the train loss too, and a variant whose validation loss is also higher underfits "
    "(a flip turns a 2 into something else)."
)
REDUCE_NOTE = (
    "**What to look for:** each line is one way of shrinking the training data, from its smallest to "
    "its largest setting; the star and the dashed line are the full data. A line that reaches the "
    "dashed line far to the left of the star keeps the accuracy with much less data. Subsampling "
    "throws rows away, k-means keeps representative rows, PCA keeps every row with fewer features, "
    "and float16/int8 keep everything at fewer bits per value."
)


def preview(config: RunConfig, augment: list[dict], seed: int) -> None:
    """Original samples beside augmented versions (images), or points and their copies (2-D data)."""
    data: Dataset = run_data(config)
    info = BatchInfo(data.image_shape, data.n_classes if data.task == "classification" else 0)
    made = [AUGMENTATIONS[a["name"]].make(a["params"], info) for a in augment]
    transform = compose(made)
    classes = [str(k) for k in range(data.n_classes)]
    x, y = data.x_train.cpu(), data.y_train.cpu()
    if data.image_shape is not None:
        picks = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:6]
        grid = augment_grid_data(x[picks], y[picks], data.image_shape, transform, classes=classes, seed=seed)
        st.plotly_chart(augment_grid_figure(grid), key="augment_grid", width="stretch")
        st.caption("Each row: a training image (left) and four augmented versions of it, as the model sees them "
                   "in training; mixed images are titled with their blended labels.")
    elif data.n_features == 2 and data.task == "classification":
        picks = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:150]
        scatter = augment_scatter_data(x[picks], y[picks], transform, classes=classes, seed=seed)
        st.plotly_chart(augment_scatter_figure(scatter), key="augment_scatter", width="stretch")
        st.caption("Filled dots: 150 training points; rings: three augmented copies of each (a mixed copy "
                   "takes the colour of its heavier label).")
    else:
        st.caption(f"A picture needs image or 2-D data; this data set has {data.n_features} features.")


def preview_section(setup: dict[str, Any], augment: list[dict[str, Any]]) -> None:
    """"What the model sees", with a button for other samples."""
    seed_state("data.preview_seed", 0)
    cols = st.columns([2, 1], vertical_alignment="bottom")
    cols[0].subheader("What the model sees")
    if cols[1].button("New samples", icon=":material/casino:", width="stretch"):
        st.session_state["data.preview_seed"] += 1
    try:
        preview(RunConfig.make(**setup, augment=augment), augment, st.session_state["data.preview_seed"])
    except ConfigError as err:
        st.error(f"Fix this first: {code_span(str(err))}")


def experiment_section(config: AugmentDemoConfig | ReduceSweepConfig, kind: str) -> XAxis | None:
    """Run, Stop and the live view of one experiment; the x axis chosen for the reduction's chart."""
    job = find(config.key())
    run_row([job] if job else [], lambda: start(config), key=kind)
    if job is None:
        return None
    x_axis = None
    if kind == "reduce":
        seed_state("data.view.x", "bytes")
        x_axis = st.segmented_control(
            "x axis", ["bytes", "rows"], key="data.view.x", required=True,
            format_func={"bytes": "bytes stored", "rows": "share of rows"}.get,
        )
    experiment_view(job, kind=kind, x_axis=x_axis or "bytes")
    return x_axis


def start(config: AugmentDemoConfig | ReduceSweepConfig) -> Job:
    """Submit (or attach to the same experiment already running), owned by this browser."""
    return attach_or_start(config.key(), lambda: ComparisonWork(config, parent=config.parent_name()))


def _rows_frame(rows: list[VariantRow], metric: str, *, reduce: bool) -> pd.DataFrame:
    out = []
    for r in rows:
        # "last", not "final", for a run that was stopped or is still training.
        when = "final" if r.finished and r.status == "finished" else "last"
        row = {"variant": r.label, "status": r.status,
               f"{when} {metric}": "—" if r.val_metric is None else f"{r.val_metric:.3f}",
               f"{when} val loss": "—" if r.val_loss is None else f"{r.val_loss:.4g}"}
        if reduce:
            row.update({"training rows": f"{r.rows:,}", "stored": f"{r.stored_bytes / 1000:,.1f} kB",
                        "ms per epoch": "—" if r.seconds_per_epoch is None else f"{r.seconds_per_epoch * 1000:.3g}"})
        else:
            row.update({"lowest val loss": "—" if r.best_val_loss is None else f"{r.best_val_loss:.4g}",
                        f"{when} train loss": "—" if r.train_loss is None else f"{r.train_loss:.4g}",
                        "gap (val − train loss)": "—" if r.gap is None else f"{r.gap:.4g}"})
        out.append(row)
    return pd.DataFrame(out)


def experiment_view(job: Job, *, kind: str, x_axis: XAxis = "bytes") -> None:
    """Progress, then the curves (augmentation) or the size chart (reduction), and the table."""
    live_job(job, lambda j: _draw(j, kind, x_axis), name=f"data.{kind}", what="experiment", least=0.5)


def _draw(job: Job, kind: str, x_axis: XAxis) -> None:
    comparison = job.work.comparison  # type: ignore[attr-defined]
    progress(job, comparison.progress, f"{comparison.progress:.0%} of {comparison.total_steps:,} steps")
    # Once per redraw: a variant's sizes come from its reduced data set.
    rows = variant_rows(comparison)
    metric = metric_name(comparison.runs[0].config)  # val accuracy, or val R² for a regression
    if kind == "augment":
        st.plotly_chart(curves_figure(curves_data(comparison, x="epoch")), key="augment_curves", width="stretch")
        st.caption(GAP_NOTE)
        st.dataframe(_rows_frame(rows, metric, reduce=False), hide_index=True, width="stretch")
        if any(r.weights is not None for r in comparison.runs):
            st.plotly_chart(boundary_chart(comparison, live=job.active), key="augment_boundary", width="stretch")
            st.caption("Each panel: one variant's model over the plane, its decision boundary in black.")
    else:
        shown = reduction_data(rows, x_axis=x_axis, metric=metric)
        st.plotly_chart(reduction_figure(shown), key="reduce_chart", width="stretch")
        st.caption(REDUCE_NOTE + (
            f" Not drawn against the share of rows: {', '.join(shown.left_out)} (they keep every row; "
            "see them against bytes)." if shown.left_out else ""
        ))
        st.dataframe(_rows_frame(rows, metric, reduce=True), hide_index=True, width="stretch")
