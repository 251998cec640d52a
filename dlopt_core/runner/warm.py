"""Warm-up done once per process that trains, so no job pays for first-time imports."""

from __future__ import annotations

import torch

from dlopt_core.catalog.models import INIT_LOCK
from dlopt_core.catalog.optimizers import warm_up


def warm_up_process() -> None:
    """Build every optimizer once (torch's first optimizer costs ~1 s of compiler imports).

    The warm-up builds a layer, which draws from torch's global generator: it takes the
    lock that seeded model building holds, so it never disturbs a model built meanwhile.
    """
    import torch._dynamo  # noqa: F401  (what the first optimizer imports: 1.5 s, outside the lock)

    with INIT_LOCK:
        warm_up()
    from dlopt_core.runner.plugins import load_tracking

    load_tracking()


def warm_up_worker() -> None:
    """A worker's first job would otherwise wait ~1.5 s: connecting to the run store (with
    its schema check) and making the default data set. Both happen here, before any job."""
    warm_up_process()
    from dlopt_core.catalog.datasets import load_dataset
    from dlopt_core.runner.plugins import tracking_start

    load_dataset("digits", {}, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))
    try:
        tracking_start()
    except Exception:  # an unreachable store is reported by the job that needs it
        pass
