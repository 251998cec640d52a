"""Bring MLflow in line with what happened: runs whose process died are ended, not left RUNNING.

Every run is tagged when it is created with the host, the pid of the process that trains it
and that process's start time (``/proc/<pid>/stat``, field 22: clock ticks after boot), so a
pid the kernel has since given to another process is not mistaken for the original.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from mlflow.entities import RunTag

from tracking.spool import ReplayResult, replay_spool, spooled_run_ids
from tracking.store import StoreSettings, client, settings

HOST_TAG = "dlopt.host"
PID_TAG = "dlopt.pid"
PID_START_TAG = "dlopt.pid_start"
INTERRUPTED_TAG = "dlopt.interrupted"
INTERRUPTED_TEXT = "interrupted: the process that trained it ended"

_SEARCH_PAGE = 1000


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (opaque, comparable); ``None`` if it is gone or unknowable.

    A zombie (ended, not yet reaped by its parent) counts as gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # Field 2 (the command name, in parentheses) may hold spaces and ")": split after the last.
    fields = stat[stat.rfind(")") + 2 :].split()
    state, start = fields[0], fields[19]  # fields 3 and 22 of proc_pid_stat(5)
    return None if state in ("Z", "X") else start


def _proc_available() -> bool:
    return os.path.exists("/proc/self/stat")


def run_identity_tags() -> dict[str, str]:
    """Tags naming the process that trains a run (call it in that process)."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: process_start(pid) or ""}


def process_alive(pid: int, start: str) -> bool:
    """Is the process that was ``pid`` started at ``start`` still running?

    Without ``/proc`` (macOS), or for a run tagged without a start time, only the pid can be
    checked: a reused pid then keeps its run open rather than ending a live one.
    """
    if _proc_available():
        now = process_start(pid)
        return now is not None and (not start or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def end_orphaned_runs(store: StoreSettings | None = None) -> list[str]:
    """End as FAILED every RUNNING run of this host whose training process has ended.

    Searches all experiments. A run of a live process is never touched, nor a run of another
    host, nor a run without the identity tags, nor one with writes still in the local spool
    (replay it first: its end is likely among them). Tags each ended run
    ``dlopt.interrupted=true`` and ``status="interrupted: ..."``. Returns the ended run ids.
    Store errors are raised (:func:`recover` catches them).
    """
    store = store or settings()
    c = client(store)
    host = socket.gethostname()
    experiment_ids = []
    token = None
    while True:
        page = c.search_experiments(max_results=_SEARCH_PAGE, page_token=token)
        experiment_ids += [e.experiment_id for e in page]
        if not (token := page.token):
            break
    if not experiment_ids:
        return []
    spooled = spooled_run_ids(store)
    query = f"tags.`{HOST_TAG}` = '{host}' and attributes.status = 'RUNNING'"
    ended = []
    token = None
    while True:
        runs = c.search_runs(experiment_ids, query, max_results=_SEARCH_PAGE, page_token=token)
        for run in runs:
            tags = run.data.tags
            if run.info.run_id in spooled or not tags.get(PID_TAG, "").isdigit():
                continue
            if process_alive(int(tags[PID_TAG]), tags.get(PID_START_TAG, "")):
                continue
            marks = [RunTag(INTERRUPTED_TAG, "true"), RunTag("status", INTERRUPTED_TEXT)]
            c.log_batch(run.info.run_id, tags=marks)
            c.set_terminated(run.info.run_id, "FAILED")
            ended.append(run.info.run_id)
        if not (token := runs.token):
            break
    return ended


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` did."""

    replay: ReplayResult
    ended: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def recover(store: StoreSettings | None = None) -> Recovery:
    """Start-up work of a process that logs: replay the spool, then end orphaned runs.

    In that order: a run whose process died while the server was away has its end in the
    spool; once that is written the run is no longer RUNNING. Never raises for a store error
    (an unreachable server must not stop the app or a CLI command): they are in ``errors``.
    """
    store = store or settings()
    replay = replay_spool(store)
    errors = list(replay.errors)
    ended: list[str] = []
    if not replay.store_failed:  # it just failed us: do not wait on it a second time
        try:
            ended = end_orphaned_runs(store)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return Recovery(replay, ended, errors)
