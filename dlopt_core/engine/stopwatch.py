"""A run's own time: running while the run computes, paused while it waits at a ``yield``."""

from __future__ import annotations

from time import perf_counter


class Stopwatch:
    """Accumulates seconds between :meth:`start` and :meth:`stop`.

    Runs interleaved in one comparison each report what they would take alone, because
    the time a run spends suspended (while the others step) is never counted.
    """

    __slots__ = ("_elapsed", "_since")

    def __init__(self) -> None:
        self._elapsed = 0.0
        self._since: float | None = None

    def start(self) -> None:
        self._since = perf_counter()

    def stop(self) -> float:
        """Pause, and return the seconds counted so far."""
        if self._since is not None:
            self._elapsed += perf_counter() - self._since
            self._since = None
        return self._elapsed
