"""Bring MLflow in line with what happened: runs whose process died are ended, not left RUNNING.

Every run is tagged when it is created with the host, the pid of the process that trains it
and that process's start time (``/proc/<pid>/stat``, field 22: clock ticks after boot), so a
pid the kernel has since given to another process is not mistaken for the original.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Run, RunTag

from dlopt_core.runner.process_identity import process_alive, process_start
from tracking.spool import ReplayResult, replay_spool, spooled_run_ids
from tracking.store import StoreSettings, client, settings

HOST_TAG = "dlopt.host"
PID_TAG = "dlopt.pid"
PID_START_TAG = "dlopt.pid_start"
INTERRUPTED_TAG = "dlopt.interrupted"
INTERRUPTED_TEXT = "interrupted: the process that trained it ended"

_SEARCH_PAGE = 1000
_LOG = logging.getLogger(__name__)


def run_identity_tags() -> dict[str, str]:
    """Tags naming the process that trains a run (call it in that process)."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: process_start(pid) or ""}


def _running_runs(store: StoreSettings, query: str = "") -> Iterator[tuple[Any, Run]]:
    """The RUNNING runs of this host that name the process training them, with no writes
    still in the local spool (replay it first: a run's end is likely among them)."""
    c = client(store)
    experiment_ids = []
    token = None
    while True:
        page = c.search_experiments(max_results=_SEARCH_PAGE, page_token=token)
        experiment_ids += [e.experiment_id for e in page]
        if not (token := page.token):
            break
    if not experiment_ids:
        return
    spooled = spooled_run_ids(store)
    query = f"tags.`{HOST_TAG}` = '{socket.gethostname()}' and attributes.status = 'RUNNING'{query}"
    token = None
    while True:
        runs = c.search_runs(experiment_ids, query, max_results=_SEARCH_PAGE, page_token=token)
        for run in runs:
            if run.info.run_id not in spooled and run.data.tags.get(PID_TAG, "").isdigit():
                yield c, run
        if not (token := runs.token):
            break


def _end(c: Any, run: Run, status: str, tags: dict[str, str]) -> str:
    c.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    c.set_terminated(run.info.run_id, status)
    return run.info.run_id


def end_orphaned_runs(store: StoreSettings | None = None) -> list[str]:
    """End as FAILED every RUNNING run of this host whose training process has ended.

    Searches all experiments. A run of a live process is never touched, nor a run of another
    host, nor a run without the identity tags, nor one with writes still in the local spool.
    Tags each ended run ``dlopt.interrupted=true`` and ``status="interrupted: ..."``. Returns
    the ended run ids. Store errors are raised (:func:`recover` catches them).
    """
    return [
        _end(c, run, "FAILED", {INTERRUPTED_TAG: "true", "status": INTERRUPTED_TEXT})
        for c, run in _running_runs(store or settings())
        if not process_alive(int(run.data.tags[PID_TAG]), run.data.tags.get(PID_START_TAG, ""))
    ]


def end_stopped_runs(pid: int, start: str, store: StoreSettings | None = None) -> list[str]:
    """End as KILLED, ``status="cancelled"``, the runs left RUNNING by worker ``pid`` (started at
    ``start``), which the server ended because its job was stopped; returns their ids.

    A worker that misses the grace of a Stop (a large batched comparison still writing its
    runs' ends) is ended hard: the runs it trained were stopped all the same, not interrupted.
    """
    return [
        _end(c, run, "KILLED", {"status": "cancelled"})
        for c, run in _running_runs(store or settings(), f" and tags.`{PID_TAG}` = '{pid}'")
        if not start or run.data.tags.get(PID_START_TAG, "") in ("", start)
    ]


def stopped_hard(pid: int, start: str) -> None:
    """The ``dlopt.stopped`` entry point: :func:`end_stopped_runs` in the default store; an
    unreachable store leaves the runs to :func:`end_orphaned_runs` (as interrupted)."""
    try:
        end_stopped_runs(pid, start)
    except Exception as exc:  # noqa: BLE001  (the server goes on; the reason goes to its log)
        _LOG.warning("could not end the stopped worker's runs as cancelled: %s: %s", type(exc).__name__, exc)


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
