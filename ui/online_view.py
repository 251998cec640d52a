"""The Online and continual page's live views: the drift race and continual learning."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dlopt_core.continual import STRATEGIES
from dlopt_core.engine.records import Status
from dlopt_core.experiments.continual import MEASURES, ContinualConfig, ContinualWork, summary_rows
from dlopt_core.experiments.stream import StreamConfig, StreamWork
from dlopt_core.plots import (
    accuracy_matrix_data,
    accuracy_matrix_figure,
    anytime_data,
    anytime_figure,
    detector_table_data,
    forgetting_rank_data,
    forgetting_rank_figure,
    recovery_table_data,
    stream_curves_data,
    stream_curves_figure,
)
from dlopt_core.plots.continual import MEASURE_TITLES
from dlopt_core.runner.work import Job
from ui.kit import attach_or_start, live_job, progress
from ui.widgets import seed_state

MATRIX_NOTE = (
    "**How to read a matrix.** Row i: accuracy on every task after training task i; the diagonal is "
    "each task just learned, below it what is kept of earlier tasks, above it what is known of tasks "
    "not trained yet. A bright diagonal over a dark lower triangle is forgetting."
)
MEASURES_NOTE = (
    "Average accuracy: over all tasks after the last one. Forgetting (Chaudhry et al. 2018): how far "
    "each earlier task fell from its best. Backward transfer (Lopez-Paz & Ranzato 2017): how training "
    "later tasks changed earlier ones (negative: forgetting). Forward transfer: accuracy on a task "
    "before training it, against an untrained model's. Mean ± sd over the finished seeds."
)


RACE_NOTE = (
    "**How to read it.** Each mini-batch is scored before the learner trains on it (prequential, "
    "test-then-train), so the curve is accuracy on data the learner has not seen. Grey: where the stream "
    "really drifts. Marks: where each detector, watching that learner's errors, raised an alarm. Band: "
    "min to max over seeds."
)
DETECTOR_NOTE = (
    "Each detector scored against the true drifts on every learner's error stream: precision (alarms "
    "that were a drift), recall (drifts that got an alarm), mean steps to detect, and false alarms per "
    "1,000 steps. The last two rows score a detector that always fires and one that never does the same "
    "way: a detector is only good where it beats both."
)

def start_stream(config: StreamConfig) -> Job:
    """Submit (or attach to the same drift race already running), owned by this browser."""
    return attach_or_start(config.key(), lambda: StreamWork(config))


def stream_view(job: Job) -> None:
    """Progress, the prequential curves with drifts and alarms, recovery and detector scores."""
    live_job(job, _draw_stream, name="stream", what="drift race", least=0.5)


def _recovery_frame(rows: list[dict], drifts: int) -> tuple[pd.DataFrame, dict[str, object]]:
    frame = pd.DataFrame(rows).drop(columns=["optimizer"])
    cols: dict[str, object] = {
        "final_accuracy": st.column_config.NumberColumn("final acc", format="%.3f"),
        "average_accuracy": st.column_config.NumberColumn("average acc", format="%.3f"),
        "resets": st.column_config.NumberColumn("resets", format="%.1f"),
    }
    for d in range(1, drifts + 1):
        # "never": every seed trained through the drift's span and none got back; "…": not there yet.
        frame[f"recover_{d}"] = [
            _number(v, ".0f", "…" if seen == "-" else "never") for v, seen in zip(frame[f"recover_{d}"], frame[f"recovered_{d}"])
        ]
        cols[f"recover_{d}"] = st.column_config.TextColumn(f"steps to recover, drift {d}")
        cols[f"recovered_{d}"] = st.column_config.TextColumn("seeds recovered")
    return frame, cols


def _number(value: object, fmt: str, missing: str) -> str:
    return missing if value is None or value != value else format(value, fmt)  # NaN != NaN


def _detector_frame(rows: list[dict]) -> pd.DataFrame:
    # Undefined, not zero: no alarm has no precision, no detection no time to detect.
    cells = {"precision": (".3f", "— (no alarm)"), "recall": (".3f", "—"),
             "mean_time_to_detect": (".1f", "— (none detected)"), "false_per_1000": (".1f", "—")}

    def row(name: str, values: dict) -> dict:
        return {"detector": name, **{k: _number(values[k], fmt, missing) for k, (fmt, missing) in cells.items()}}

    out = [row(r["detector"], r) for r in rows]
    if rows:  # the baselines are scored on the same runs whatever the detector: one row each
        out += [row(f"{b} fires (baseline)", {k: rows[0][f"{b}_{k}"] for k in cells}) for b in ("always", "never")]
    return pd.DataFrame(out)


def _draw_stream(job: Job) -> None:
    race = job.work.race  # type: ignore[attr-defined]
    done = sum(r.status.ended for r in race.runs)
    progress(job, race.progress, f"{done} of {len(race.runs)} runs, {race.n_steps:,} steps each")
    seed_state("stream.view.metric", "accuracy")
    metric = st.segmented_control("show", ["accuracy", "loss"], key="stream.view.metric", required=True)
    st.plotly_chart(stream_curves_figure(stream_curves_data(race, metric=metric)), key="stream.curves", width="stretch")
    st.caption(RACE_NOTE)
    frame, cols = _recovery_frame(recovery_table_data(race), len(race.drifts))
    st.dataframe(frame, hide_index=True, width="stretch", column_config=cols)
    st.caption(
        f"Steps to recover: after each drift, how many steps until the rolling accuracy is back to "
        f"{race.config.recover_fraction:.0%} of what it was before the drift (mean over the seeds that got there)."
    )
    st.dataframe(_detector_frame(detector_table_data(race)), hide_index=True, width="stretch", column_config={
        "mean_time_to_detect": st.column_config.TextColumn("steps to detect"),
        "false_per_1000": st.column_config.TextColumn("false alarms / 1,000 steps"),
    })
    st.caption(DETECTOR_NOTE)


def start_continual(config: ContinualConfig) -> Job:
    """Submit (or attach to the same continual experiment already running), owned by this browser."""
    return attach_or_start(config.key(), lambda: ContinualWork(config))


def continual_view(job: Job) -> None:
    """Progress, an accuracy matrix per optimizer x strategy, the measures, anytime accuracy and who forgets least."""
    live_job(job, _draw_continual, name="continual", what="continual experiment", least=0.5)


def _measure_columns() -> dict[str, object]:
    cols: dict[str, object] = {}
    for m in MEASURES:
        cols[m] = st.column_config.NumberColumn(MEASURE_TITLES[m], format="%.3f")
        cols[f"{m}_sd"] = st.column_config.NumberColumn("± sd", format="%.3f")
    return cols


def _draw_continual(job: Job) -> None:
    c = job.work.continual  # type: ignore[attr-defined]
    done = sum(r.status.ended for r in c.runs)
    progress(job, c.progress, f"{done} of {len(c.runs)} runs")
    optimizers = list(dict.fromkeys(r.optimizer for r in c.runs))
    for optimizer in optimizers:  # a row per optimizer, a matrix per strategy
        st.markdown(f"**{optimizer}**")
        cols = st.columns(len(c.config.strategies))
        for col, strategy in zip(cols, c.config.strategies, strict=True):
            data = accuracy_matrix_data(c, optimizer=optimizer, strategy=strategy)
            title = f"{STRATEGIES[strategy].label} ({data.seeds} seed{'s' if data.seeds != 1 else ''})"
            col.plotly_chart(accuracy_matrix_figure(data, title=title), key=f"continual.matrix.{optimizer}.{strategy}",
                             width="stretch")
    st.caption(MATRIX_NOTE + " Tasks: " + ", ".join(f"T{i + 1} {t}" for i, t in enumerate(c.config.tasks)) + ".")
    frame = pd.DataFrame(summary_rows(c))
    frame["strategy"] = [STRATEGIES[n].label for n in frame["strategy"]]
    if len(c.config.seeds) == 1:  # one seed has no spread: a column of zeros would say it had
        frame = frame.drop(columns=[f"{m}_sd" for m in MEASURES])
    st.dataframe(frame, hide_index=True, width="stretch", column_config=_measure_columns())
    if broken := [r for r in c.runs if r.status in (Status.DIVERGED, Status.FAILED)]:
        st.warning("Left out of the means: " + "; ".join(
            f"{r.optimizer} + {STRATEGIES[r.strategy].label} seed {r.seed} {r.status_text}" for r in broken
        ) + ". A diverged run's matrix is not drawn.")
    st.caption(MEASURES_NOTE)
    cols = st.columns(2)
    cols[0].plotly_chart(anytime_figure(anytime_data(c)), key="continual.anytime", width="stretch")
    cols[1].plotly_chart(forgetting_rank_figure(forgetting_rank_data(c)), key="continual.rank", width="stretch")
