"""Background jobs: a process-wide registry that outlives any one page run.

Streamlit serves every browser session from one process and reruns page scripts freely, so
training must not live inside a script run. A job here is keyed (for a comparison: its
config hash); submitting a key that is already queued or running attaches to that job
instead of starting a second one, which is how a reload or a second tab finds its work.
"""

from __future__ import annotations

import itertools
import os
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from dlopt_core.device import use_one_thread

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
_ids = itertools.count(1)


@dataclass
class Job:
    """One piece of background work and what pages need to watch it."""

    key: str
    label: str
    payload: Any = None
    status: JobStatus = "queued"
    error: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def cancel(self) -> None:
        """Ask the work to stop; it checks :meth:`stop_requested` between steps."""
        self._stop.set()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; ``False`` if ``timeout`` passed first."""
        return self._done.wait(timeout)


class JobRegistry:
    """Runs jobs on a capped pool of threads and remembers recent ones by key."""

    def __init__(self, max_workers: int | None = None, keep: int = 50) -> None:
        self.max_workers = max_workers or int(os.environ.get("DLOPT_MAX_JOBS", os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="dlopt-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def submit(
        self, key: str, work: Callable[[Job], None], *, label: str = "", payload: Any = None
    ) -> Job:
        """Start ``work(job)`` unless a job with ``key`` is still active; return the job."""
        with self._lock:
            existing = self._jobs.get(key)
            if existing is not None and existing.active:
                return existing
            job = Job(key=key, label=label, payload=payload)
            self._jobs[key] = job
            self._jobs.move_to_end(key)
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].active:
                    break
                del self._jobs[oldest]
        self._pool.submit(self._execute, job, work)
        return job

    def get(self, key: str) -> Job | None:
        """The latest job submitted with ``key``, finished or not."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[Job]:
        """All remembered jobs, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    @property
    def running(self) -> int:
        return sum(1 for j in self.jobs() if j.status == "running")

    @staticmethod
    def _execute(job: Job, work: Callable[[Job], None]) -> None:
        use_one_thread()
        if job.stop_requested():
            job.status = "cancelled"
            job._done.set()
            return
        job.status = "running"
        try:
            work(job)
            job.status = "cancelled" if job.stop_requested() else "done"
        except Exception as exc:
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            job._done.set()


_registry: JobRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> JobRegistry:
    """The process-wide registry every page and session shares."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = JobRegistry()
        return _registry
