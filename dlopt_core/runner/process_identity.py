"""Which process trained something: its pid and start time, so a reused pid is not mistaken for it.

A run (MLflow) or a trial (Optuna) records the pid of the process that trains it and that
process's start time (``/proc/<pid>/stat``, field 22: clock ticks after boot). Reconciliation
asks :func:`process_alive` before it ends what a dead process left open.
"""

from __future__ import annotations

import os


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
    return None if fields[0] in ("Z", "X") else fields[19]  # fields 3 and 22 of proc_pid_stat(5)


def process_alive(pid: int, start: str) -> bool:
    """Is the process that was ``pid`` started at ``start`` still running?

    Without ``/proc`` (macOS), or for a record without a start time, only the pid can be
    checked: a reused pid then keeps its record open rather than ending a live one.
    """
    if os.path.exists("/proc/self/stat"):
        now = process_start(pid)
        return now is not None and (not start or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
