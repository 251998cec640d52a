"""The experiment-page kit: attach or start a job, the Run / Stop row, and the one live view.

Every training page runs the same steps (docs/architecture.md): the URL preamble and the form
(:mod:`ui.binding`), then :func:`run_row` to attach to or start the job for the config, then
:func:`live` to draw it while it runs. A view only draws its figures and tables from a job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from dlopt_core.engine.records import Status
from dlopt_core.runner.jobs import registry
from dlopt_core.runner.work import Job, Work
from ui.binding import ViewKey
from ui.status import OTHERS_JOB, browser_id, may_stop, report_errors, started

POLL_SECONDS = 0.3
SLOW_REDRAWS = 8  # slow redraws in a row before a live view lengthens its interval (see live)


def poll_seconds(render_s: float, *, least: float = POLL_SECONDS) -> float:
    """How often a live view redraws, given how long one redraw takes.

    A redraw that outlasts its interval is cut short by the next: its charts fade as stale
    and pile up (six optimizers with decision boundaries took 0.2-0.7 s while the first job
    trained in the server's own thread). So the interval keeps 2.5x the redraw time.
    """
    return min(2.0, max(least, 2.5 * render_s))


def find(key: str) -> Job | None:
    """The latest job with ``key`` in this server process, finished or not."""
    return registry().get(key)


def attach_or_start(key: str, work: Callable[[], Work], *, ready: Callable[[Any], bool] | None = None) -> Job:
    """The running job with ``key``, or a new one of ``work()`` owned by this browser.

    ``ready``: wait up to half a second for it (the first evaluation of a warm worker lands
    within milliseconds), so this rerun draws it instead of the next polling tick.
    """
    existing = registry().get(key)
    if existing is not None and existing.active:
        return existing
    job = registry().submit(work(), owner=browser_id())
    if ready is not None:
        deadline = time.monotonic() + 0.5
        while job.active and not ready(job.work) and time.monotonic() < deadline:
            time.sleep(0.01)
    return job


def run_row(
    jobs: Sequence[Job], start: Callable[[], object], *, key: str = "", blocked: bool = False,
    on_start: Callable[[], None] | None = None,
) -> bool:
    """Run, Stop, and the note for a job another browser started; True while any job runs.

    ``start`` is called once under :func:`ui.status.started` (a setting only the data can
    refuse is a message, not an error); ``blocked`` keeps Run off (nothing left to do);
    ``key`` tells apart two rows on one page.
    """
    running = any(j.active for j in jobs)
    cols = st.columns([1, 1, 3])
    suffix = f"-{key}" if key else ""
    if cols[0].button("Run", type="primary", disabled=running or blocked, key=f"run{suffix}", width="stretch"):
        if started(start) is not None:
            if on_start is not None:
                on_start()
            st.rerun()  # Run turns disabled, the sidebar counts the job, the view starts polling
    mine = [j for j in jobs if may_stop(j)]
    if cols[1].button("Stop", disabled=not mine, key=f"stop{suffix}", width="stretch"):
        for job in mine:
            job.cancel()
    if running and not mine:
        st.caption(OTHERS_JOB)
    return running


def state_text(job: Job, *, running: str = "training") -> str:
    """One word for where a job stands: waiting, ``running``, or how it ended."""
    return {Status.PENDING: "waiting for a free worker", Status.RUNNING: running}.get(job.status, str(job.status))


def progress(job: Job, done: float, detail: str, *, running: str = "training") -> None:
    """The status line: a bar for ``done`` (0..1) and where the job stands."""
    st.progress(min(max(done, 0.0), 1.0), text=f"{state_text(job, running=running)}: {detail}")


def problems(job: Job, *, what: str, named: bool = False) -> None:
    """Why a job failed, and the MLflow writes that failed or wait on the server; ``named``:
    say which job (a page with several)."""
    if job.status is Status.FAILED:
        which = f" ({job.label})" if named else ""
        st.error(f"The {what} failed{which}: {job.error}")
    work = job.work
    for err in work.tracking_errors:
        st.warning(f"MLflow logging failed: {err}")
    if (unwritten := work.unwritten) and not job.active:
        st.warning(
            f"{unwritten} MLflow writes could not be made; they are kept on the server "
            "and written when the run store answers again."
        )


def live(
    jobs: Callable[[], Sequence[Job]], draw: Callable[[Sequence[Job]], None], *, name: str, what: str,
    least: float = POLL_SECONDS, primary: bool = True,
) -> None:
    """Draw ``draw(jobs())`` and redraw it while any of them runs: the one live view.

    One rule for all pages: the interval keeps 2.5x the redraw time (at least ``least``), a
    redraw shows :func:`problems` for every job, and when the work ends the final state is drawn
    first and the full rerun (which turns polling off and Run back on) comes one tick later, so
    a watcher sees how it ended even if that rerun is lost. ``name`` keys the view's state;
    ``primary``: this view says what failed and reruns the page at the end (a second view of
    the same jobs, such as one under a widget of its own, leaves both to the first).
    """
    render_key, ended_key, slow_key = f"_live.{name}.render_s", f"_live.{name}.ended", f"_live.{name}.slow"
    polling = any(j.active for j in jobs())
    if polling:
        st.session_state.pop(ended_key, None)
    interval = poll_seconds(st.session_state.get(render_key, 0.0), least=least)
    inline = [True]  # the call below, inside this full run; the fragment's own reruns come later

    @st.fragment(run_every=interval if polling else None)
    def view() -> None:
        report_errors()  # a fragment's rerun has a context of its own
        began = time.perf_counter()
        now = list(jobs())
        draw(now)
        if primary:
            for job in now:
                problems(job, what=what, named=len(now) > 1)
        took = time.perf_counter() - began
        render_s = st.session_state[render_key] = 0.7 * st.session_state.get(render_key, took) + 0.3 * took
        # A full rerun comes only from the fragment's own runs. Called inside a full run it
        # drops that run's unsent widgets, and Streamlit sends a widget the value a link set
        # only in the run that set it: a tab opened on a busy server drew its widgets at
        # their first options and minimums (epochs 1, model linear) and watched another config.
        # The interval grows only once redraws have been slow for SLOW_REDRAWS ticks in a row:
        # a tab that has just opened may still be drawing its first run's widgets, and a full
        # run that reaches them first does so without the link's values (the same defaults).
        if not (polling and primary) or inline[0]:
            st.session_state[slow_key] = 0
            return
        if not any(j.active for j in now):
            ended = tuple(j.key for j in now)
            if st.session_state.get(ended_key) == ended:
                st.rerun()
            st.session_state[ended_key] = ended
            return
        slow = poll_seconds(render_s, least=least) > 1.5 * interval
        st.session_state[slow_key] = st.session_state.get(slow_key, 0) + 1 if slow else 0
        if st.session_state[slow_key] >= SLOW_REDRAWS:
            st.rerun()  # a full rerun sets a longer interval (the fragment's is fixed when defined)

    view()
    inline[0] = False


def live_job(job: Job, draw: Callable[[Job], None], *, name: str, what: str, least: float = POLL_SECONDS) -> None:
    """:func:`live` for a page of one job."""
    live(lambda: [job], lambda jobs: draw(jobs[0]), name=name, what=what, least=least)


def page_tabs(view: ViewKey, labels: Sequence[str]) -> tuple[str, Any]:
    """Tabs of one page, each a form of its own; only the open one runs: its name and container.

    ``view`` names the tabs (its choices, the first the default) and carries the open one in the
    URL beside the tab's config (each tab's :class:`~ui.binding.Binding` lists ``view``). A link
    names its tab once per browser session; a switch clears the link, because the other tab's
    settings are no link for this one, so the tab's binding shows its last settings or its defaults.
    """
    s = st.session_state
    widget = f"{view.state}.widget"
    by_label = dict(zip(labels, view.choices, strict=True))
    if view.state not in s:
        s[view.state] = view.read(st.query_params.get(view.url))
    s.setdefault(widget, labels[view.choices.index(s[view.state])])

    def switched() -> None:
        s[view.state] = by_label[s[widget]]
        st.query_params.clear()

    tabs = st.tabs(list(labels), key=widget, on_change=switched)
    for tab, label in zip(tabs, labels, strict=True):
        if tab.open:
            s[view.state] = by_label[label]
            return by_label[label], tab
    return view.choices[0], tabs[0]
