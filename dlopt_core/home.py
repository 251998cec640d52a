"""The data folder every process of one installation shares: runs, studies, uploaded data sets."""

from __future__ import annotations

import os
from pathlib import Path


def dlopt_home() -> Path:
    """``$DLOPT_HOME`` (default ``./.dlopt``), read now; the same rule as tracking.store.

    Read at each call, not at import: tests and launchers set it per process, and worker
    processes inherit it, so they find what the page stored.
    """
    return Path(os.environ.get("DLOPT_HOME", ".dlopt")).expanduser().resolve()
