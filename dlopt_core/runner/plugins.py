"""Tracking backends, found through entry points so the core never imports one.

``dlopt.observers``: classes called with ``experiment=...`` that observe a comparison (the
``tracking`` package registers MLflow). ``dlopt.startup``: functions run once when a process
that logs starts (ending runs whose process died, writing what a lost server missed); each
must not raise for an unreachable store.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any


def tracking_observers(*, experiment: str, **options: Any) -> list[Any]:
    """One observer per installed tracking backend (``parent="name"``: runs nest under one run)."""
    return [ep.load()(experiment=experiment, **options) for ep in entry_points(group="dlopt.observers")]


_started: set[str] = set()


def tracking_start() -> None:
    """Run every backend's start-up work, once per process and tracking location."""
    where = os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("DLOPT_HOME", "")
    if where in _started:
        return
    for ep in entry_points(group="dlopt.startup"):
        ep.load()()
    _started.add(where)


def load_tracking() -> None:
    """Import every backend now (MLflow's import takes ~1.5 s), so a first job does not wait."""
    for group in ("dlopt.observers", "dlopt.startup"):
        for ep in entry_points(group=group):
            ep.load()
