"""Tracking backends, found through entry points so the core never imports one.

``dlopt.tracking``: callables ``(kind, *, experiment, **options)`` that return the backend's
observer for an experiment of that kind (see :func:`dlopt_core.experiments.observer.tracking_observers`;
the ``tracking`` package registers MLflow's). ``dlopt.startup``: functions run once when a
process that logs starts (ending runs whose process died, writing what a lost server missed);
each must not raise for an unreachable store. ``dlopt.stopped``: functions ``(pid, start)`` the
server calls after it ended a worker hard because its job was stopped (a worker that missed the
Stop's grace), so the runs that worker left open end as stopped, not as interrupted; each must
not raise.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

TRACKING_GROUP = "dlopt.tracking"
STARTUP_GROUP = "dlopt.startup"
STOPPED_GROUP = "dlopt.stopped"

_started: set[str] = set()


def tracking_start() -> None:
    """Run every backend's start-up work, once per process and tracking location."""
    where = os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("DLOPT_HOME", "")
    if where in _started:
        return
    for ep in entry_points(group=STARTUP_GROUP):
        ep.load()()
    _started.add(where)


def load_tracking() -> None:
    """Import every backend now (MLflow's import takes ~1.5 s), so a first job does not wait."""
    for group in (TRACKING_GROUP, STARTUP_GROUP):
        for ep in entry_points(group=group):
            ep.load()


def worker_stopped(pid: int, start: str) -> None:
    """Tell every backend that worker ``pid`` (started at ``start``) was ended hard for a Stop."""
    for ep in entry_points(group=STOPPED_GROUP):
        ep.load()(pid, start)
