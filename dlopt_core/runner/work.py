"""A job and its work contract: what the registry queues, a launcher runs and a page watches.

The work runs where its slot is and *emits* events; the server applies each event to the
work's live state (:meth:`Work.apply`), so a page draws the same thing either way. Both the
registry (:mod:`dlopt_core.runner.jobs`) and the launchers point down to this module.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlopt_core.engine.records import Status

Emit = Callable[..., None]


class Control(Protocol):
    """What a running work asks its slot: stop everything? stop which runs?"""

    def should_stop(self) -> bool: ...

    def take_run_stops(self) -> list[int]: ...


class Work(Protocol):
    """A picklable piece of work and the live state the server keeps of it."""

    key: str
    label: str
    tracking_errors: list[str]  # what the tracking store refused (a page shows them as warnings)
    unwritten: int  # tracking writes not made yet (kept to be written when the store answers)

    def run(self, emit: Emit, control: Control) -> None:
        """Do the work (in the slot), calling ``emit(event, urgent=False)`` as it goes."""

    def apply(self, event: Any) -> None:
        """Take one emitted event (in the server)."""

    def finish(self, status: Status) -> None:
        """The job ended with ``status`` (in the server); settle whatever did not report."""


class ConfigWork:
    """A work made from its config alone, that logs nothing to a tracking store: it travels to
    the worker as the config (the worker rebuilds it), and nothing is left to settle at the end.
    A subclass sets ``key`` and ``label`` and its live state in ``__init__(config)``."""

    key: str
    label: str

    def __init__(self, config: Any) -> None:
        self.config = config
        self.tracking_errors: list[str] = []
        self.unwritten = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def finish(self, status: Status) -> None:
        """Nothing to settle: what arrived is the result."""


_ids = itertools.count(1)


@dataclass
class Job:
    """One piece of background work and what pages need to watch and steer it."""

    key: str
    label: str
    work: Work
    status: Status = Status.PENDING
    error: str | None = None
    owner: str | None = None  # who may stop it (a browser's id); None: anyone
    id: int = field(default_factory=lambda: next(_ids))
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _run_stops: list[int] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> bool:
        return not self.status.ended

    @property
    def payload(self) -> Any:
        """What the pages draw: the work's live state (kept here, fed by the worker's events)."""
        return self.work

    def steerable_by(self, who: str | None) -> bool:
        """Whether ``who`` may stop this job (or its runs): its owner, or anyone when it has none."""
        return self.owner is None or self.owner == who

    def cancel(self) -> None:
        """Ask the work to stop; it checks between steps (a slot may end it hard after a grace)."""
        self._stop.set()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def stop_run(self, index: int) -> None:
        """Ask one run of the job to stop; the others go on."""
        with self._lock:
            self._run_stops.append(index)

    def take_run_stops(self) -> list[int]:
        if not self._run_stops:  # asked once per record by a thread-launched job
            return []
        with self._lock:
            stops, self._run_stops = self._run_stops, []
        return stops

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; ``False`` if ``timeout`` passed first."""
        return self._done.wait(timeout)

    def _end(self, status: Status, error: str | None = None) -> None:
        self.status, self.error = status, error
        try:
            self.work.finish(status)
        finally:
            self._done.set()
