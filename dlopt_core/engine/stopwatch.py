"""A run's own time: running while the run computes, paused while it waits at a ``yield``."""

from __future__ import annotations

import time
from collections.abc import Callable
from time import perf_counter

import torch


def training_clock(device: torch.device) -> Callable[[], float]:
    """The clock a run's time is read from.

    On a CPU with one torch thread, the training thread's CPU time: what a step costs,
    without the time the thread waited for a core or the GIL while a page was drawn or
    another job trained (in the app that waiting made the same run read 2-5x slower than
    on the CLI, and differently each time). With several intra-op threads, or on a GPU
    (work outside this thread), wall-clock time.
    """
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.thread_time
    return perf_counter


class Stopwatch:
    """Accumulates seconds between :meth:`start` and :meth:`stop`.

    Runs interleaved in one comparison each report what they would take alone, because
    the time a run spends suspended (while the others step) is never counted.
    """

    __slots__ = ("_clock", "_elapsed", "_since")

    def __init__(self, clock: Callable[[], float] = perf_counter) -> None:
        self._clock = clock
        self._elapsed = 0.0
        self._since: float | None = None

    def start(self) -> None:
        self._since = self._clock()

    def stop(self) -> float:
        """Pause, and return the seconds counted so far."""
        if self._since is not None:
            self._elapsed += self._clock() - self._since
            self._since = None
        return self._elapsed
