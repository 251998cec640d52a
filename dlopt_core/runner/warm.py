"""Warm-up done once per process that trains, so no job pays for first-time imports."""

from __future__ import annotations

from dlopt_core.catalog.models import INIT_LOCK
from dlopt_core.catalog.optimizers import warm_up


def warm_up_process() -> None:
    """Build every optimizer once (torch's first optimizer costs ~1 s of compiler imports).

    The warm-up builds a layer, which draws from torch's global generator: it takes the
    lock that seeded model building holds, so it never disturbs a model built meanwhile.
    """
    with INIT_LOCK:
        warm_up()
    import dlopt_core.experiments.compare  # noqa: F401  (the work's imports)
    from dlopt_core.runner.plugins import load_tracking

    load_tracking()
