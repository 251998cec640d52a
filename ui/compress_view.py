"""The Compression page's live view: progress, training curves, the table of every variant,
the Pareto chart, accuracy against sparsity and the per-layer sensitivity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from dlopt_core.engine.records import Status
from dlopt_core.experiments.compress.config import CompressionConfig
from dlopt_core.experiments.compress.rows import CompressionRow
from dlopt_core.experiments.compress.run import Compression
from dlopt_core.experiments.compress.work import CompressionWork
from dlopt_core.plots import curves_data, curves_figure
from dlopt_core.plots.compression import (
    X_TITLES,
    layer_sensitivity_data,
    layer_sensitivity_figure,
    pareto_data,
    pareto_figure,
    sparsity_data,
    sparsity_figure,
)
from dlopt_core.runner.work import Job
from ui.compare_view import number_text
from ui.kit import attach_or_start, live_job, progress

PARETO_NOTE = (
    "**What to look for:** up and to the left is better (more accurate, smaller or faster). The line "
    "joins the variants no other variant beats on both; the star is the baseline. A badge says what "
    "kind of saving a variant makes: *masked only* means zeros in a dense tensor, which is not smaller "
    "on disk or faster until it is stored or multiplied sparsely (switch the x axis to the sparse bytes)."
)
SPARSITY_NOTE = (
    "Each pruning method at every sparsity swept; the dashed line is the baseline. Accuracy usually "
    "holds until a knee, then falls: the knee is how much a model of this size can lose."
)
SENSITIVITY_NOTE = (
    "Each bar: the accuracy when only that layer is pruned (or int8-quantized) and every other layer "
    "is left as trained. A layer whose bar drops far below the baseline is one to keep dense."
)
X_CHOICES = {
    "bytes": "bytes saved", "sparse_bytes": "bytes, sparse", "latency_b1_ms": "latency, batch 1",
    "latency_b256_ms": "latency, batch 256", "compiled_b1_ms": "compiled, batch 1",
    "compiled_b256_ms": "compiled, batch 256",
}


def start(config: CompressionConfig, baseline_state: Mapping[str, Any] | None = None) -> Job:
    """Submit (or attach to the same compression already running), owned by this browser."""
    return attach_or_start(
        config.key(), lambda: CompressionWork(config, baseline_state=baseline_state)
    )


def _size(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def rows_frame(rows: list[CompressionRow], metric: str) -> pd.DataFrame:
    """The table as read: sizes in kB/MB, times in ms (3 significant figures), n/a where not measured."""
    base = next((r for r in rows if r.is_baseline), None)
    out = []
    for r in rows:
        change = None
        if base is not None and base.val_metric is not None and r.val_metric is not None and not r.is_baseline:
            change = r.val_metric - base.val_metric
        ratio = base.bytes / r.bytes if base is not None and base.bytes and r.bytes else None
        out.append({
            "variant": r.label,
            "saving": r.badge,
            metric: number_text(r.val_metric),
            "vs baseline": "" if change is None else f"{change:+.4f}",
            "params": "n/a" if r.params is None else f"{r.params:,}",
            "non-zero": "n/a" if r.nonzeros is None else f"{r.nonzeros:,}",
            "saved size": _size(r.bytes),
            "smaller by": "" if ratio is None or r.is_baseline else f"{ratio:.2f}x",
            "sparse (CSR)": _size(r.sparse_bytes) if r.sparse_bytes is not None else "",
            "ms, batch 1": _ms(r.latency_b1_ms),
            "ms, batch 256": _ms(r.latency_b256_ms),
            "compiled ms, 1 / 256": (
                f"{_ms(r.compiled_b1_ms)} / {_ms(r.compiled_b256_ms)}" if r.compiled_b1_ms is not None else r.compiled_note
            ),
            "note": r.error or r.note or r.latency_note,
        })
    return pd.DataFrame(out)


def slower_text(rows: list[CompressionRow]) -> str | None:
    """The variants slower than the baseline at batch 1 on this machine: a finding, said plainly."""
    base = next((r for r in rows if r.is_baseline), None)
    if base is None or not base.latency_b1_ms:
        return None
    slower = [f"{r.label} ({r.latency_b1_ms / base.latency_b1_ms:.1f}x)" for r in rows
              if not r.is_baseline and r.latency_b1_ms is not None and r.latency_b1_ms > 1.2 * base.latency_b1_ms]
    if not slower:
        return None
    return ("**Slower than the baseline at batch 1 on this device:** " + ", ".join(slower) + ". Smaller is not "
            "faster when the kernels for it are missing or slow here (int8 and fp16 matrix products on a CPU); "
            "compare the batch-256 and compiled columns.")


def csv_text(rows: list[CompressionRow]) -> str:
    """Every number of every variant, unrounded, one row each (settings as JSON-like text)."""
    frame = pd.DataFrame([r.as_dict() for r in rows])
    if "settings" in frame:
        frame["settings"] = frame["settings"].map(lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
    return frame.to_csv(index=False)


def compression_view(job: Job, *, x_axis: str) -> None:
    """Everything the compression has so far; live while the job runs."""
    live_job(job, lambda j: _draw(j, x_axis), name="compress", what="compression")


def _draw(job: Job, x_axis: str) -> None:
    c: Compression = job.work.compression  # type: ignore[attr-defined]
    progress(job, c.progress, f"{c.progress:.0%}", running=c.phase)
    if c.runs:
        with st.expander("training curves (baseline, fine-tuning, students)", expanded=job.active and not c.rows):
            st.plotly_chart(curves_figure(curves_data(c, x="epoch")), key="compress_curves", width="stretch")
    metric = c.metric_name
    if c.rows:
        measured = [r for r in c.rows if r.error is None]
        data = pareto_data(measured, x_axis=x_axis, metric=metric)  # type: ignore[arg-type]
        st.plotly_chart(pareto_figure(data), key="pareto", width="stretch")
        st.caption(PARETO_NOTE)
        if data.left_out:
            st.caption(f"Not on this chart (no {X_TITLES[x_axis].split(' (')[0]}): {', '.join(data.left_out)}.")
        st.dataframe(
            rows_frame(c.rows, metric), hide_index=True, width="stretch",
            column_config={"variant": st.column_config.TextColumn(width="large"),
                           "saving": st.column_config.TextColumn(width="medium")},
        )
        if slower := slower_text(c.rows):
            st.caption(slower)
        st.download_button(
            "Download the table (CSV)", csv_text(c.rows), file_name=f"compression-{c.id}.csv",
            mime="text/csv", icon=":material/download:",
        )
        curves = sparsity_data(c.rows, metric=metric)
        if curves.lines:
            st.plotly_chart(sparsity_figure(curves), key="sparsity", width="stretch")
            st.caption(SPARSITY_NOTE)
    if c.sensitivity:
        base = c.baseline.val_metric if c.baseline is not None else None
        st.plotly_chart(
            layer_sensitivity_figure(layer_sensitivity_data(c.sensitivity, baseline=base, metric=metric)),
            key="sensitivity", width="stretch",
        )
        st.caption(SENSITIVITY_NOTE)
    if job.status is Status.FAILED and job.error is None and c.error:
        st.error(f"The compression failed: {c.error}")
