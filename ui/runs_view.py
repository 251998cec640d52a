"""The Runs page: past comparisons from the run store, listed page by page, opened, overlaid, exported."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import streamlit as st

from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.models import MODELS, convex_optimum
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.config import RunConfig
from dlopt_core.engine.loop import data_key, load_run_data
from dlopt_core.plots import X_LABELS, curves_data, curves_figure
from dlopt_core.plots.hparams import hparams_data, hparams_figure
from dlopt_core.plots.overlay import OVERLAY_METRICS, overlay_data, overlay_figure
from tracking.runs import (
    KINDS, STATUS_FILTER, Entry, EntryPage, RunFilter, RunsError, StoredComparison, list_entries, load_comparison,
    run_rows,
)
from tracking.store import settings
from ui.compare_view import CURVES_NOTE, results_frame
from ui.exports import download_row
from ui.widgets import code_span

PREFIX = "runs"
PAGE_SIZE = 20
COMPARE_PAGE = "pages/1_Compare_optimizers.py"
OVERLAY_X = {"epoch": X_LABELS["epoch"], "step": X_LABELS["step"], "wall_time": X_LABELS["wall_time"]}


def _any(value: object) -> str:
    return "any" if value in (None, "") else str(value)


def filters() -> RunFilter:
    """The filter widgets; their values stay in this session."""
    row = st.columns(3)
    dataset = row[0].selectbox("data set", [None, *DATASETS], key=f"{PREFIX}.dataset", format_func=_any)
    model = row[1].selectbox("model", [None, *MODELS], key=f"{PREFIX}.model", format_func=_any)
    optimizer = row[2].selectbox("optimizer", [None, *OPTIMIZERS], key=f"{PREFIX}.optimizer", format_func=_any)
    row = st.columns(3)
    status = row[0].selectbox("status", [None, *STATUS_FILTER], key=f"{PREFIX}.status", format_func=_any)
    since = row[1].date_input("started on or after", value=None, key=f"{PREFIX}.since", format="YYYY-MM-DD")
    kinds = row[2].multiselect(
        "kind", list(dict.fromkeys(KINDS.values())), key=f"{PREFIX}.kinds", placeholder="any kind",
    )
    return RunFilter(
        dataset=dataset, model=model, optimizer=optimizer, status=status,
        since=since if isinstance(since, dt.date) else None, kinds=tuple(kinds),
    )


def _page_tokens(current: RunFilter) -> list[str | None]:
    """The tokens of the pages seen so far under ``current`` (the first page's is ``None``)."""
    s = st.session_state
    if s.get(f"{PREFIX}._filter") != current:
        s[f"{PREFIX}._filter"] = current
        s[f"{PREFIX}._tokens"] = [None]
    return s[f"{PREFIX}._tokens"]


def entries_page(current: RunFilter) -> EntryPage | None:
    """One server-side search for the page of the list being viewed (``None``: the store did
    not answer, and the page says why)."""
    tokens = _page_tokens(current)
    try:
        return list_entries(current, page_size=PAGE_SIZE, page_token=tokens[-1])
    except Exception as err:  # an unreachable or refusing server: a message, not a traceback
        st.error(f"The run store cannot be read: {code_span(f'{type(err).__name__}: {err}'[:600])}")
        return None


def _older(token: str) -> None:
    st.session_state[f"{PREFIX}._tokens"].append(token)


def _newer() -> None:
    st.session_state[f"{PREFIX}._tokens"].pop()


def entries_frame(entries: list[Entry]) -> pd.DataFrame:
    """The list as a table: one row per comparison, sweep or study."""
    return pd.DataFrame([
        {
            "started": e.started.strftime("%Y-%m-%d %H:%M:%S"),
            "kind": e.kind,
            "optimizers": ", ".join(e.labels or e.optimizers),
            "data set": e.dataset,
            "model": e.model,
            "runs": "" if e.n_runs is None else str(e.n_runs),
            "status": e.status,
            "id": e.ref,
        }
        for e in entries
    ], columns=["started", "kind", "optimizers", "data set", "model", "runs", "status", "id"])


def entries_table(page: EntryPage | None) -> list[Entry]:
    """The page's table with row selection, and the Newer/Older buttons; returns the selected rows."""
    tokens = st.session_state[f"{PREFIX}._tokens"]
    if page is None:
        return []
    if not page.entries:
        st.info("No runs match these filters on this page. Runs appear here as soon as a comparison starts.")
    event = None
    if page.entries:
        # A selection is row positions: the key names the rows shown (filter, page and which
        # runs), so new runs or another filter start a fresh selection instead of a stale one.
        shown = _key_of([e.ref for e in page.entries], st.session_state.get(f"{PREFIX}._filter"))
        event = st.dataframe(
            entries_frame(page.entries), hide_index=True, width="stretch", on_select="rerun",
            selection_mode="multi-row", key=f"{PREFIX}.table.{shown}",
            column_config={"optimizers": st.column_config.TextColumn(width="large")},
        )
    nav = st.container(horizontal=True, vertical_alignment="center")  # wraps in a narrow window
    nav.button("Newer", icon=":material/chevron_left:", disabled=len(tokens) == 1, on_click=_newer)
    nav.button("Older", icon=":material/chevron_right:", disabled=page.next_token is None, on_click=_older,
               args=(page.next_token,))
    nav.caption(f"Page {len(tokens)} · {PAGE_SIZE} rows a page, newest first · select rows to open or overlay them")
    if event is None:
        return []
    return [page.entries[i] for i in event.selection.rows if i < len(page.entries)]  # type: ignore[attr-defined]


@st.cache_resource(max_entries=16, ttl=600, show_spinner="Reading the comparison from the run store…")
def stored(uri: str, ref: str) -> StoredComparison:
    # A finished comparison never changes; one still training is read again by Reload.
    return load_comparison(ref, store=settings())


@st.cache_resource(max_entries=4, show_spinner="Solving for the optimum…", hash_funcs={RunConfig: data_key})
def optimum(config: RunConfig) -> float:
    # What the live page solves beside training (linear models): the dashed line.
    return convex_optimum(load_run_data(config))


def load(ref: str) -> StoredComparison | None:
    """The comparison ``ref`` read back (cached), or ``None`` with the reason on the page."""
    try:
        found = stored(settings().mlflow_uri, ref)
    except RunsError as err:
        st.warning(code_span(str(err)))
        return None
    comparison = found.comparison
    if comparison.optimum is None and comparison.has_optimum and not any(
        not r.status.ended for r in comparison.runs
    ):
        try:
            comparison.optimum = optimum(comparison.runs[0].config)
        except Exception:  # noqa: BLE001  (the dashed line is a help; the chart draws without it)
            comparison.optimum = None
    return found


def compare_query(found: StoredComparison) -> dict[str, str | list[str]] | None:
    """The Compare page's URL query for this comparison's config (``None``: not a Compare config)."""
    if found.config is None:
        return None
    flat = found.config.to_dict()
    return {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in flat.items()}


def opened_view(found: StoredComparison) -> None:
    """One comparison as the Compare page drew it live: curves, table, then links and exports."""
    comparison = found.comparison
    st.subheader(found.title)
    runs = len(comparison.runs)
    parent = f" · parent run `{found.parent_run_id}`" if found.parent_run_id else ""
    st.caption(f"{runs} runs in MLflow experiment `{found.experiment}`{parent}")
    cols = st.columns(2, vertical_alignment="bottom")
    x = cols[0].selectbox("x-axis", list(X_LABELS), key=f"{PREFIX}.view.x", format_func=X_LABELS.get)
    log_y = cols[0].toggle("log-scale loss", key=f"{PREFIX}.view.log_y")
    band = cols[1].segmented_control(
        "band over seeds", ["minmax", "sd"], key=f"{PREFIX}.view.band", default="minmax", required=True,
        format_func={"minmax": "min-max", "sd": "±1 sd"}.get,
    )
    data = curves_data(comparison, x=x, band=band or "minmax")  # type: ignore[arg-type]
    st.plotly_chart(curves_figure(data, log_y=log_y), key=f"{PREFIX}.curves", width="stretch")
    st.caption(CURVES_NOTE)
    table = results_frame(comparison)
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={c: st.column_config.TextColumn(width="medium") for c in table.columns if c != "seeds"},
    )
    actions(found, table)


def actions(found: StoredComparison, table: pd.DataFrame) -> None:
    """Open in Compare, the downloads, and the command that reproduces the comparison."""
    query = compare_query(found)

    def link() -> None:
        if query is not None:
            st.page_link(COMPARE_PAGE, label="Open in Compare", icon=":material/open_in_new:", query_params=query)
        else:
            st.caption("Not a Compare config (a sweep or a Data-page comparison): no Compare link.")

    download_row(
        found.comparison, config=found.config, table=table, name=f"dlopt-{found.comparison_id}",
        title=f"dlopt {found.title}", run_ids=found.run_ids, started=found.started, first=link,
    )


def overlay_view(chosen: list[StoredComparison]) -> None:
    """The runs of the chosen comparisons on one chart, aligned on step, epoch or seconds."""
    runs = [
        (f"{found.comparison_id[:6]} · {r.label} seed={r.config.seed}", r)
        for found in chosen for r in found.comparison.runs
    ]
    labels = [label for label, _ in runs]
    picked = st.multiselect("runs", labels, default=labels, key=f"{PREFIX}.overlay.runs.{len(labels)}")
    cols = st.columns(2, vertical_alignment="bottom")
    metric = cols[0].selectbox("metric", list(OVERLAY_METRICS), key=f"{PREFIX}.overlay.metric",
                               format_func=OVERLAY_METRICS.get)
    # A selectbox: three long options side by side did not fit 820 px.
    x = cols[1].selectbox("align by", list(OVERLAY_X), key=f"{PREFIX}.overlay.x", format_func=OVERLAY_X.get)
    smoothing = cols[0].slider(
        "smoothing", 0.0, 0.95, 0.0, 0.05, key=f"{PREFIX}.overlay.smoothing",
        help="An exponential moving average (0: none); the raw curve stays faint behind the smoothed one",
    )
    log_y = cols[1].toggle("log-scale", key=f"{PREFIX}.overlay.log_y")
    data = overlay_data(
        [(label, r) for label, r in runs if label in picked], metric=metric, x=x, smoothing=smoothing,
    )
    st.plotly_chart(overlay_figure(data, log_y=log_y), key=f"{PREFIX}.overlay", width="stretch")


def _key_of(*values: object) -> str:
    return hashlib.sha1(repr(values).encode()).hexdigest()[:12]


def hparams_view(entries: list[Entry]) -> None:
    """Parallel coordinates: every run's hyperparameters against a final metric."""
    try:
        rows = run_rows(entries, store=settings())
    except Exception as err:  # an unreachable store: a message, not a traceback
        st.error(f"The run store cannot be read: {code_span(f'{type(err).__name__}: {err}'[:600])}")
        return
    metrics = sorted({k for r in rows for k in r if k.startswith("final ")})
    if not metrics:
        st.info("These runs have no final metrics yet.")
        return
    default = "final val_loss" if "final val_loss" in metrics else metrics[0]
    metric = st.selectbox("final metric", metrics, index=metrics.index(default), key=f"{PREFIX}.hparams.metric")
    data = hparams_data(rows, metric=metric)
    if not data.axes:
        st.info("Every run of the selection has the same hyperparameters: select runs that differ.")
    st.plotly_chart(hparams_figure(data), key=f"{PREFIX}.hparams", width="stretch")
    st.caption(
        "Each line is one run; drag along an axis to keep only the runs in that range. "
        "Hyperparameters that are the same for every run are left out."
    )


def opened_refs(selected: list[Entry]) -> list[str]:
    """The comparisons to show: the selected ones that open, else the URL's ``open`` values.

    A selection is written to the URL (``?open=a&open=b``), so the address reopens the same view.
    """
    refs = list(dict.fromkeys(e.ref for e in selected if e.openable))
    if refs:
        if st.query_params.get_all("open") != refs:
            st.query_params["open"] = refs
        return refs
    return list(dict.fromkeys(st.query_params.get_all("open")))


def selection_views(selected: list[Entry]) -> None:
    """The first comparison opened, the overlay of all of them and the hyperparameter view."""
    refs = opened_refs(selected)
    if not refs and not selected:
        st.caption("Select a row to open it; select several to overlay their curves.")
        return
    tabs = st.tabs(["Comparison", "Overlay", "Hyperparameters"])
    chosen = [c for r in refs if (c := load(r)) is not None]
    with tabs[0]:
        if chosen:
            if st.button("Reload", icon=":material/refresh:", help="Read it again (a comparison still training)"):
                stored.clear()
                st.rerun()
            opened_view(chosen[0])
            if len(chosen) > 1:
                st.caption(f"{len(chosen) - 1} more selected: their runs are together in the Overlay tab.")
        elif selected:
            st.info(f"A {selected[0].kind} opens on its own page; its runs are in the Hyperparameters tab.")
    with tabs[1]:
        if chosen:
            overlay_view(chosen)
        else:
            st.info("Select comparisons or sweeps to overlay their runs.")
    with tabs[2]:
        if scope := selected or chosen_entries(chosen):
            hparams_view(scope)


def chosen_entries(chosen: list[StoredComparison]) -> list[Entry]:
    """Minimal rows for comparisons opened from the URL (not selected in the table)."""
    return [
        Entry(kind=c.kind, experiment=c.experiment, run_id=c.parent_run_id or "", comparison_id=c.comparison_id,
              name=c.comparison_id, started=c.started, status="", dataset="", model="", optimizers=())
        for c in chosen
    ]

