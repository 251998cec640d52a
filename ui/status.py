"""What every page shares: page set-up, the navigation, the device/jobs/store status, and
what a visitor sees when a page fails."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dlopt_core.config import ConfigError
from dlopt_core.device import describe_device, resolve_device, use_one_thread
from dlopt_core.runner.jobs import registry
from dlopt_core.runner.warm import warm_up_process
from dlopt_core.runner.work import Job
from tracking import recover
from tracking.store import experiment_id, settings
from ui.widget_defaults import install as install_widget_defaults
from ui.widgets import code_span

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PageInfo:
    path: str
    title: str
    icon: str
    help: str = ""


PAGES = (
    PageInfo("app.py", "Home", ":material/home:"),
    PageInfo(
        "pages/1_Compare_optimizers.py", "Compare optimizers", ":material/show_chart:",
        "Several optimizers, one setup, live curves and a results table",
    ),
    PageInfo(
        "pages/2_Loss_landscapes.py", "Loss landscapes", ":material/landscape:",
        "Optimizer paths on 2-D test functions; the tutorial's algorithms from scratch",
    ),
    PageInfo(
        "pages/3_LR_sensitivity.py", "LR sensitivity", ":material/tune:",
        "Every optimizer over a log grid of learning rates: the best lr and how forgiving it is",
    ),
    PageInfo(
        "pages/4_LR_search.py", "LR search", ":material/travel_explore:",
        "An LR range test, then an Optuna study per optimizer: the tuned lr and how easy it was to find",
    ),
    PageInfo(
        "pages/5_Data.py", "Data", ":material/dataset:",
        "Augmentation against overfitting, what shrinking the training data costs, and your own data (CSV, .npz, MNIST idx)",
    ),
    PageInfo(
        "pages/6_Runs.py", "Runs", ":material/history:",
        "Every past comparison from the run store: open it as it looked live, overlay several, export a report",
    ),
    PageInfo(
        "pages/7_Compression.py", "Compression", ":material/compress:",
        "Prune, quantize and distil a trained model: accuracy against size and latency, each saving measured",
    ),
    PageInfo(
        "pages/8_Transfer_and_sharing.py", "Transfer and sharing", ":material/share:",
        "Fine-tune a pretrained model seven ways (probe, LP-FT, LoRA, ...); tied, shared and multi-task weights checked",
    ),
    PageInfo(
        "pages/9_Online_and_continual.py", "Online and continual", ":material/waves:",
        "Optimizers racing on a drifting stream, drift detectors scored; forgetting across a sequence of tasks",
    ),
)


# A store that could not be prepared is tried again this long after (a server that was down,
# a disk that was full): the sidebar's "not reachable" then goes once the store answers.
STORE_RETRY_SECONDS = 30.0


@st.cache_resource(show_spinner="Preparing the run store…")
def _prepare_store(uri: str) -> tuple[str | None, float]:
    threading.Thread(target=warm_up_process, name="dlopt-warm-up", daemon=True).start()
    registry()
    try:
        recovery = recover()
        experiment_id()
    except Exception as exc:  # an unreachable server is shown, not raised
        return f"{type(exc).__name__}: {exc}", time.monotonic()
    return "; ".join(recovery.errors) or None, time.monotonic()


def prepare_store(uri: str) -> str | None:
    """Once per server: warm the workers, settle what an earlier server left, create the store;
    what went wrong, if anything.

    Runs whose process died are ended and writes a lost tracking server missed are made
    (``tracking.recover``); the worker processes start in the background meanwhile. A store that
    failed is tried again after :data:`STORE_RETRY_SECONDS` (it once said "not reachable" for
    good after the server was back).
    """
    problem, at = _prepare_store(uri)
    if problem and time.monotonic() - at >= STORE_RETRY_SECONDS:
        _prepare_store.clear(uri)
        problem, _ = _prepare_store(uri)
    return problem


def browser_id() -> str:
    """Who is asking: the same for every tab and reload of one browser, another for each browser.

    Streamlit's XSRF cookie holds one random token per browser, sent masked afresh each time
    (``2|mask|masked token|time``, the mask XOR-ed over the token); the unmasked token, hashed,
    names the browser. Without the cookie (XSRF protection off, AppTest) the session names it.
    """
    cookie = st.context.cookies.get("_streamlit_xsrf", "")
    parts = cookie.split("|")
    if len(parts) == 4:
        try:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            token = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
            return hashlib.sha256(token).hexdigest()[:16]
        except (ValueError, ZeroDivisionError):
            pass
    ctx = get_script_run_ctx()
    return f"session-{ctx.session_id}" if ctx is not None else "session-none"


def may_stop(job: Job | None) -> bool:
    """Whether this browser may stop ``job``: one it started (a job with no owner: anyone)."""
    return job is not None and job.active and job.steerable_by(browser_id())


def started(start: Callable[[], T]) -> T | None:
    """``start()``'s job; ``None`` (with the message on the page) when a setting turned out to be
    one this data cannot take, which only the data can say (PCA to more dimensions than it has)."""
    try:
        return start()
    except ConfigError as err:
        st.error(f"Fix this before running: {code_span(str(err))}")
        return None


OTHERS_JOB = (
    "Started in another browser: you are watching it live, and only that browser can stop it."
)


def device_text() -> str:
    return describe_device(resolve_device("auto"))


def report_error(exc: Exception) -> bool:
    """Show a short message with an error id; the traceback goes to the server log under it.

    Returns True: Streamlit shows nothing more.
    """
    error_id = secrets.token_hex(4)
    log.error("error id %s: %s", error_id, type(exc).__name__, exc_info=exc)
    st.error(
        f"Something went wrong (error id {error_id}). The details are in the server log under "
        "this id; change a setting or reload the page to go on."
    )
    return True


def report_errors() -> None:
    """For the rest of this script run, show any exception nothing catches as :func:`report_error`.

    ``st.rerun`` and ``st.stop`` are not errors and pass. :func:`page_frame` calls it; a
    fragment's own rerun is a new run, so a fragment calls it first to get the same.
    """
    # Streamlit's hook for uncaught exceptions, which st.App(on_script_error=...) sets for a
    # whole server; under `streamlit run` it lives on each run's context. One hook serves the
    # whole page, where a try around each page body would also need the page re-indented.
    if (ctx := get_script_run_ctx()) is not None:
        ctx.on_script_error = report_error


def page_frame(title: str) -> None:
    """Page config, the sidebar navigation and the status block; call first on every page.

    From here on, an exception the page does not catch shows as :func:`report_error`.
    """
    report_errors()
    install_widget_defaults()
    st.set_page_config(page_title=title, page_icon="📉", layout="wide")
    # OpenMP thread counts are per calling thread, and each script run may get a new one;
    # idle workers of a 2-thread team spin and starve the training jobs on 2 cores.
    use_one_thread()
    store = settings()
    problem = prepare_store(store.mlflow_uri)
    reg = registry()
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.path, label=page.title, icon=page.icon)
        st.divider()
        status = st.container()
    status.caption(f"**Device:** {device_text()}")
    queued = f" · {reg.queued} waiting" if reg.queued else ""
    status.caption(f"**Jobs:** {reg.running} running{queued} · at most {reg.max_workers} at once")
    status.caption(f"**Runs stored in:** `{store.mlflow_uri}`")
    if problem:
        status.error(f"The run store is not reachable: {code_span(problem)}")
