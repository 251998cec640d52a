"""Background jobs: a process-wide registry that outlives any one page run.

Streamlit serves every browser session from one process and reruns page scripts freely, so
training must not live inside a script run. A job here is keyed (for a comparison: its
config hash); submitting a key that is already queued or running attaches to that job
instead of starting a second one, which is how a reload or a second tab finds its work.

Jobs wait in one first-come-first-served queue and run on a capped number of slots; a
launcher decides what a slot is (a warm worker process by default, or a thread).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from collections import OrderedDict

from dlopt_core.engine.records import Status
from dlopt_core.runner.launchers import Launcher, Slot, ThreadSlot, make_launcher
from dlopt_core.runner.work import Job, Work


class JobRegistry:
    """Runs jobs first come, first served on ``max_workers`` slots; remembers recent ones by key."""

    def __init__(self, max_workers: int | None = None, *, launcher: Launcher | str | None = None, keep: int = 50) -> None:
        self.max_workers = max_workers or int(os.environ.get("DLOPT_MAX_JOBS", os.cpu_count() or 1))
        self.launcher = make_launcher(launcher)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._keep = keep
        self._closing = False
        self._slots: list[Slot] = []
        # Each slot starts in its own thread: a worker process takes seconds the first time
        # (the fork server imports torch), and no page should wait for that.
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"dlopt-slot-{i}", daemon=True)
            for i in range(self.max_workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, work: Work, *, owner: str | None = None) -> Job:
        """Queue ``work`` unless a job with its key is still active; return the job.

        ``owner``: who may stop the new job (an active job found by its key keeps its owner).
        """
        with self._lock:
            if self._closing:
                raise RuntimeError("the server is shutting down; no new work is started")
            existing = self._jobs.get(work.key)
            if existing is not None and existing.active:
                return existing
            job = Job(key=work.key, label=work.label, work=work, owner=owner)
            self._jobs[work.key] = job
            self._jobs.move_to_end(work.key)
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].active:
                    break
                del self._jobs[oldest]
        self._queue.put(job)
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
        return sum(1 for j in self.jobs() if j.status is Status.RUNNING)

    @property
    def queued(self) -> int:
        return sum(1 for j in self.jobs() if j.status is Status.PENDING)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every slot has started (its worker process, say); ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self._slots) == self.max_workers:
                    return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def _start_slot(self, ready: list[Slot]) -> None:
        slot = self.launcher.slot()
        with self._lock:
            self._slots.append(slot)
        ready.append(slot)

    def _dispatch(self) -> None:
        # A fresh server's first worker takes seconds (its fork server imports torch, the core
        # and MLflow). A job that arrives before then runs in a thread of this process, which
        # has all of that loaded, so the first Run draws its first point at once.
        ready: list[Slot] = []
        threading.Thread(target=self._start_slot, args=(ready,), name="dlopt-slot-start", daemon=True).start()
        meanwhile = ThreadSlot()
        while (job := self._queue.get()) is not None:
            if job.stop_requested() or self._closing:
                job._end(Status.CANCELLED)
                continue
            job.status = Status.RUNNING
            slot = ready[0] if ready else meanwhile
            try:
                status, error = slot.execute(job)
            except Exception as exc:  # a broken slot must not stop the queue
                traceback.print_exc()
                status, error = Status.FAILED, f"{type(exc).__name__}: {exc}"
            job._end(status, error)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Start nothing new, cancel queued and running jobs, wait up to ``timeout``, end the slots."""
        with self._lock:
            self._closing = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.status is Status.RUNNING:
                job.wait(max(0.0, deadline - time.monotonic()))
        for job in jobs:
            if job.status is Status.PENDING:
                job._end(Status.CANCELLED)
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            slot.close()


_registry: JobRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> JobRegistry:
    """The process-wide registry every page and session shares (slots start warm at once).

    At interpreter exit (a server's SIGTERM or Ctrl-C) it cancels every job before Python
    waits for threads, so running runs end as cancelled and queued ones never start.
    """
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = JobRegistry()
            # Runs before the interpreter joins threads (atexit handlers would run after).
            threading._register_atexit(_registry.shutdown)  # type: ignore[attr-defined]
        return _registry
