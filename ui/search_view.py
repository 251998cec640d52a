"""Start a learning-rate search's workers, and draw its studies live from the study storage.

The storage is the source of truth: every worker's trials (this server's, other processes',
other machines') are read from it at each redraw, so a reload, a second tab or a reopened
past search all show the same studies.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import optuna
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from optuna.exceptions import ExperimentalWarning

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import ConfigError
from dlopt_core.experiments.search import SearchConfig, comparison_at_tuned, search_works
from dlopt_core.experiments.study.store import load_study
from dlopt_core.experiments.study.summary import StudySummary, study_summary
from dlopt_core.experiments.study_storage import StudyStorage
from dlopt_core.plots.sensitivity import log_ticks
from dlopt_core.plots import lr_text, trial_lr_data, trial_lr_figure, tuning_budget_data, tuning_budget_figure
from dlopt_core.runner.work import Job
from ui import compare_form
from ui.kit import attach_or_start, find, live
from ui.search_form import MAX_WORKERS, METRIC_LABELS

COMPARE_PAGE = "pages/1_Compare_optimizers.py"
MIN_POLL_S = 1.0
_IMPORTANCE = "search._importance_cache"
BUDGET_NOTE = (
    "**What to look for:** each line is one optimizer's best result after so many trials. A line that "
    "drops early and stays flat belongs to an optimizer that is easy to tune: a few tries find a good "
    "lr. One that keeps stepping down needed the whole budget, and might improve with more."
)
TRIALS_NOTE = (
    "**What to look for:** every finished trial at its lr: dots completed, rings pruned (stopped early "
    "because it was behind; the value where it stopped), ✕ diverged (drawn at the top edge), ★ each "
    "optimizer's best. Dotted lines mark each search range: a ★ next to one means the best lr may lie "
    "beyond it. A wide basin of good dots is a forgiving optimizer; TPE gathers its trials where the "
    "dots are lowest."
)


def start_search(config: SearchConfig, workers: int) -> list[Job]:
    """Submit ``workers`` workers per study (a study's worker that is already running is kept)."""
    return [attach_or_start(work.key, lambda w=work: w) for work in search_works(config, workers=workers)]


def search_jobs(config: SearchConfig) -> list[Job]:
    """The jobs of this search's studies in this server process, any worker count, newest state."""
    keys = [f"study-{s.name}-w{w}" for s in config.studies() for w in range(MAX_WORKERS)]
    return [job for key in keys if (job := find(key)) is not None]


def read_summaries(config: SearchConfig, storage: StudyStorage) -> list[StudySummary | None]:
    """Each study as stored now; ``None`` for a study not created yet."""
    out: list[StudySummary | None] = []
    for study in config.studies():
        try:
            out.append(study_summary(study.name, storage))
        except (KeyError, ConfigError):  # not created yet, or created a moment ago without its config
            out.append(None)
    return out


def _progress_text(config: SearchConfig, summaries: Sequence[StudySummary | None], active: bool) -> str:
    parts = []
    for opt, s in zip(config.optimizers, summaries):
        label = get_optimizer(opt.name).label
        if s is None:
            parts.append(f"{label}: not started")
            continue
        diverged = sum(t.diverged_step is not None for t in s.trials)
        details = [f"{s.counts['pruned'] - diverged} pruned"] if s.counts["pruned"] - diverged else []
        if diverged:
            details.append(f"{diverged} diverged")
        if s.counts["running"]:
            details.append(f"{s.counts['running']} running")
        more = f" ({', '.join(details)})" if details else ""
        parts.append(f"{label}: {min(s.finished, s.n_trials)} of {s.n_trials}{more}")
    state = "searching" if active else "stored"
    return f"{state} · " + " · ".join(parts)


def best_frame(config: SearchConfig, summaries: Sequence[StudySummary | None]) -> pd.DataFrame:
    """One row per optimizer: its best lr (and whether it sits on its range's edge), the result
    there, its range, what its trials did and any other searched values of the best trial."""
    objective = METRIC_LABELS[config.metric].split(" (")[0]
    rows = []
    for opt, s in zip(config.optimizers, summaries):
        # The note stays next to the lr it is about: at 820 px the last columns scroll out of view.
        row = {"optimizer": get_optimizer(opt.name).label, "best lr": "—", "note": "", f"best {objective}": "—",
               "search range": "—", "trials": "0"}
        if s is not None:
            diverged = sum(t.diverged_step is not None for t in s.trials)
            row["search range"] = f"{lr_text(s.lr_range[0])} – {lr_text(s.lr_range[1])}"
            row["trials"] = f"{s.counts['complete']} complete, {s.counts['pruned'] - diverged} pruned, {diverged} diverged"
            if s.best is not None and s.best.lr is not None and s.best.value is not None:
                row["best lr"] = lr_text(s.best.lr)
                row["note"] = "on the edge of the range: widen it" if s.best_on_edge else ""
                row[f"best {objective}"] = f"{s.best.value:.4g}"
                if others := {k: v for k, v in s.best.params.items() if k != "lr"}:
                    row["other searched values"] = ", ".join(
                        f"{k.removeprefix('optimizer.')}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in others.items()
                    )
            elif s.finished:
                row["note"] = "no trial completed (all pruned or diverged)"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def _log_loss_axis(fig: go.Figure, y_range: tuple[float, float] | None) -> go.Figure:
    # A diverged trial reports its divergence limit (10^6 x the first loss); on a linear axis
    # every other trial would be a flat line at the bottom.
    fig.update_yaxes(type="log", tickformat="~g", **({"range": list(y_range)} if y_range else {}))
    if y_range and len(ticks := log_ticks(10 ** y_range[0], 10 ** y_range[1])) >= 2:
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:.3g}" for t in ticks])  # plotly's minor labels overlap
    return fig


def _importances(study: optuna.Study, summary: StudySummary) -> go.Figure:
    # fANOVA takes a noticeable share of a redraw: computed again only when a trial completed.
    cache = st.session_state.setdefault(_IMPORTANCE, {})
    stamp = (study.study_name, summary.counts["complete"])
    if cache.get("stamp") != stamp:
        cache.update(stamp=stamp, figure=optuna.visualization.plot_param_importances(study))
    return cache["figure"]


def _study_picker(config: SearchConfig) -> str:
    """Which optimizer's study Optuna's figures show."""
    st.subheader("Optuna's own views")
    labels = {o.name: get_optimizer(o.name).label for o in config.optimizers}
    if len(labels) == 1:
        return next(iter(labels))
    return st.segmented_control(
        "study", list(labels), format_func=labels.get, key="search.view.study",
        default=next(iter(labels)),
    ) or next(iter(labels))


def _optuna_figures(
    config: SearchConfig, summaries: Sequence[StudySummary | None], storage: StudyStorage, name: str
) -> None:
    present = [(opt, s) for opt, s in zip(config.optimizers, summaries) if s is not None and s.finished]
    chosen = next(((o, s) for o, s in present if o.name == name), None)
    if chosen is None:
        st.caption(f"They draw {get_optimizer(name).label}'s study once one of its trials has finished.")
        return
    labels = {opt.name: get_optimizer(opt.name).label for opt, _ in present}
    opt, summary = chosen
    study = load_study(summary.study_name, storage)
    loss = config.metric == "val_loss"
    y_range = trial_lr_data([summary]).y_range if loss else None
    target = METRIC_LABELS[config.metric].split(" (")[0]
    tabs = st.tabs(["history", "intermediate values", "slice on lr", "importances", "EDF (all studies)"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        history = optuna.visualization.plot_optimization_history(study, target_name=target)
        if loss:
            _log_loss_axis(history, y_range)
        tabs[0].plotly_chart(history, key="optuna_history", width="stretch")
        tabs[0].caption(f"{labels[name]}: each completed trial's {target} in the order they ran, and the best so far.")
        intermediate = optuna.visualization.plot_intermediate_values(study)
        if loss:
            _log_loss_axis(intermediate, y_range)
        intermediate.update_layout(xaxis_title="epoch", yaxis_title=target, showlegend=False)
        tabs[1].plotly_chart(intermediate, key="optuna_intermediate", width="stretch")
        tabs[1].caption(
            "Each trial's value at each epoch, pruned trials included: a line that stops early was "
            "pruned there (or diverged: its last point lies far above the plot)."
        )
        params = ["lr"] if summary.counts["complete"] else []
        if params:
            slice_fig = optuna.visualization.plot_slice(study, params=params, target_name=target)
            slice_fig.update_xaxes(type="log")
            if loss:
                _log_loss_axis(slice_fig, y_range)
            tabs[2].plotly_chart(slice_fig, key="optuna_slice", width="stretch")
            tabs[2].caption("Completed trials' results against the lr; the colour is the trial number (later is darker).")
        else:
            tabs[2].caption("No completed trial yet.")
        searched = len(config.studies()[0].search_space()) if config.optimizers else 1
        importance = _importances(study, summary) if searched > 1 and summary.counts["complete"] >= 2 else None
        if importance is not None:
            tabs[3].plotly_chart(importance, key="optuna_importances", width="stretch")
            few = " With fewer than about 20 completed trials these shares are rough." if summary.counts["complete"] < 20 else ""
            tabs[3].caption(f"How much of the result's variation each searched parameter explains (fANOVA).{few}")
        else:
            tabs[3].caption(
                "Importances compare searched parameters; this search has only the lr. Search the "
                "hyperparameters, schedule or batch size too to see which matters most."
                if searched < 2 else "Needs at least two completed trials."
            )
        studies = [load_study(s.study_name, storage) for _, s in present if s.counts["complete"]]
        if studies:
            edf = optuna.visualization.plot_edf(studies, target_name=target)
            names = {s.study_name: get_optimizer(o.name).label for o, s in present}
            edf.for_each_trace(lambda t: t.update(name=names.get(t.name, t.name)))
            if loss:
                edf.update_xaxes(type="log")
            tabs[4].plotly_chart(edf, key="optuna_edf", width="stretch")
            tabs[4].caption(
                f"For each optimizer, the share of its completed trials with a {target} at most x: a curve "
                "further left rises with more good trials, an optimizer that is good across many rates."
            )


def search_view(config: SearchConfig, storage: StudyStorage, summaries: Sequence[StudySummary | None]) -> None:
    """Progress, the tuning budget, every trial against its lr, the best table and Optuna's own
    figures; redraws itself while any of the search's workers is queued or running.

    ``summaries``: the studies as the page read them in this run; each view reads the storage
    again only when it redraws on its own.
    """
    def reader() -> Callable[[], Sequence[StudySummary | None]]:
        first = [summaries]
        return lambda: first.pop() if first else read_summaries(config, storage)

    # Trials take seconds: a redraw a second is live enough.
    read = reader()
    live(lambda: search_jobs(config), lambda jobs: _draw(config, read(), jobs), name="search", what="search worker",
         least=MIN_POLL_S)
    # Optuna's figures in a view of their own, under their study picker: a widget inside a
    # fragment that reruns on a timer is one more way for a second tab to lose its state.
    study = _study_picker(config)
    read_again = reader()
    live(lambda: search_jobs(config), lambda jobs: _optuna_figures(config, read_again(), storage, study),
         name="search.optuna", what="search worker", least=MIN_POLL_S, primary=False)


def _draw(config: SearchConfig, summaries: Sequence[StudySummary | None], jobs: Sequence[Job]) -> None:
    finished = sum(min(s.finished, s.n_trials) for s in summaries if s is not None)
    total = sum(s.n_trials if s is not None else config.n_trials for s in summaries)
    st.progress(min(1.0, finished / max(1, total)), text=_progress_text(config, summaries, any(j.active for j in jobs)))
    present = [s for s in summaries if s is not None]
    if not present:
        return
    st.plotly_chart(tuning_budget_figure(tuning_budget_data(present)), key="tuning_budget", width="stretch")
    st.caption(BUDGET_NOTE)
    st.plotly_chart(trial_lr_figure(trial_lr_data(present)), key="trials_lr", width="stretch")
    st.caption(TRIALS_NOTE)
    st.dataframe(best_frame(config, summaries), hide_index=True, width="stretch")
    for s in present:
        if s.best_on_edge and s.best is not None and s.best.lr is not None:
            side = "lowest" if abs(s.best.lr / s.lr_range[0] - 1) < abs(s.best.lr / s.lr_range[1] - 1) else "highest"
            st.warning(
                f"{get_optimizer(s.optimizer).label}'s best lr, {lr_text(s.best.lr)}, sits at the {side} end "
                f"of its range ({lr_text(s.lr_range[0])} – {lr_text(s.lr_range[1])}): the true best may "
                "lie beyond it; widen the range on that side."
            )


def compare_button(config: SearchConfig, summaries: Sequence[StudySummary | None]) -> None:
    """Send each optimizer at its tuned lr (and hyperparameters) to the Compare page, through the URL.

    ``summaries``: the studies as :func:`read_summaries` read them (no worker is running).
    """
    ready = [s for s in summaries if s is not None and s.best is not None]
    pressed = st.button(
        "Compare at the tuned learning rates", icon=":material/compare_arrows:", disabled=not ready,
        help="open the Compare page with each optimizer at its best trial's lr: the full training curves",
    )
    missing = [get_optimizer(o.name).label for o in config.optimizers if o.name not in {s.optimizer for s in ready}]
    if missing and ready:
        st.caption(f"Left out (no completed trial): {', '.join(missing)}.")
    if config.search_schedule or config.search_batch_size:
        st.caption("The Compare page uses the setup's schedule and batch size for every optimizer, not the searched ones.")
    if pressed:
        cfg = comparison_at_tuned(config, ready)
        compare_form.BINDING.open(cfg, page=COMPARE_PAGE)
