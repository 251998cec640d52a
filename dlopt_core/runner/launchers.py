"""Where a job runs: in a warm worker process (the default) or in a thread of this process.

Measured on the 2-core machines: two comparisons in threads of one process reach 0.79x the
throughput of running them one after the other (the interpreter lock); in two processes,
1.82x. A process slot keeps one worker process alive between jobs, with torch imported and
the optimizers built once, so a job starts in milliseconds rather than the seconds a fresh
process needs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from dlopt_core.device import use_one_thread
from dlopt_core.engine.records import Status
from dlopt_core.runner.plugins import worker_stopped
from dlopt_core.runner.process_identity import process_start
from dlopt_core.runner.work import Job

# Where stored results go travels with each job: a worker started earlier (or a test that
# changed the environment since) must write where the submitting process would.
ENV_KEYS = ("DLOPT_HOME", "MLFLOW_TRACKING_URI", "DLOPT_OPTUNA_STORAGE")
# After Stop, a job that has not ended by then is ended hard (its process is replaced). Work
# checks for Stop at every step; its wind-down (a study's last storage writes, which wait on
# another worker's SQLite lock) took over 1 s on a loaded 2-core machine, so the grace is wider.
HARD_STOP_SECONDS = 5.0
# Records travel to the server in small batches: one message per step costs more than the step.
EMIT_SECONDS = 0.05

class Slot(Protocol):
    def execute(self, job: Job) -> tuple[Status, str | None]: ...

    def close(self) -> None: ...


class Launcher(Protocol):
    name: str

    def slot(self) -> Slot: ...


def _env_snapshot() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in ENV_KEYS}


def _apply_env(env: dict[str, str | None]) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# -- threads -----------------------------------------------------------------------------


class _JobControl:
    def __init__(self, job: Job) -> None:
        self._job = job

    def should_stop(self) -> bool:
        return self._job.stop_requested()

    def take_run_stops(self) -> list[int]:
        return self._job.take_run_stops()


class ThreadSlot:
    """Runs the work in the calling (dispatcher) thread; events are applied at once."""

    def execute(self, job: Job) -> tuple[Status, str | None]:
        use_one_thread()
        try:
            job.work.run(lambda event, urgent=False: job.work.apply(event), _JobControl(job))
        except Exception as exc:
            traceback.print_exc()
            return Status.FAILED, f"{type(exc).__name__}: {exc}"
        return (Status.CANCELLED if job.stop_requested() else Status.FINISHED), None

    def close(self) -> None:
        """Nothing to release: the thread ends with the registry."""


class ThreadLauncher:
    """Jobs share this process's interpreter lock; for where processes cannot be started."""

    name = "thread"

    def slot(self) -> Slot:
        return ThreadSlot()


# -- processes ---------------------------------------------------------------------------


class ProcessSlot:
    """One warm worker process; replaced when it dies or must be ended hard."""

    def __init__(self, context: Any) -> None:
        self._ctx = context
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self.stop_event = self._ctx.Event()
        self.conn, child = self._ctx.Pipe()
        self.process = self._ctx.Process(
            target=_worker_main, args=(child, self.stop_event), name="dlopt-worker", daemon=True
        )
        with _plain_main():
            self.process.start()
        child.close()

    def execute(self, job: Job) -> tuple[Status, str | None]:
        with self._lock:
            if not self.process.is_alive():
                self._start()
            self.stop_event.clear()
            self.conn.send(("work", job.work, _env_snapshot()))
            stop_sent: float | None = None
            while True:
                if job.stop_requested() and stop_sent is None:
                    self.stop_event.set()
                    stop_sent = time.monotonic()
                for index in job.take_run_stops():
                    self.conn.send(("stop_run", index))
                if stop_sent is not None and time.monotonic() - stop_sent > HARD_STOP_SECONDS:
                    self._end_hard(stopped=True)
                    return Status.CANCELLED, None
                try:
                    if not self.conn.poll(0.05):
                        if not self.process.is_alive():
                            raise EOFError
                        continue
                    message = self.conn.recv()
                except (EOFError, OSError):
                    self._end_hard(stopped=job.stop_requested())
                    if job.stop_requested():
                        return Status.CANCELLED, None
                    return Status.FAILED, "the worker process ended unexpectedly"
                kind = message[0]
                if kind == "events":
                    for event in message[1]:
                        job.work.apply(event)
                elif kind == "done":
                    return Status(message[1]), message[2]

    def _end_hard(self, *, stopped: bool = False) -> None:
        """SIGTERM (the work ends its runs as cancelled), SIGKILL if that hangs, then a fresh worker.

        ``stopped``: the job was stopped, so the runs the worker left open end as stopped (the
        tracking backends' ``dlopt.stopped``), before the fresh worker's start-up would take
        them for interrupted.
        """
        pid = self.process.pid
        start = (process_start(pid) or "") if pid is not None else ""
        self.process.terminate()
        self.process.join(3.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        if stopped and pid is not None:
            worker_stopped(pid, start)
        self._start()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(3.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(3.0)


# Imported once by the fork server; each worker is forked from it with these loaded, so a
# worker is ready in milliseconds instead of ~7 s (torch 1.9 s, the core 2.3 s, MLflow 1.4 s,
# and torch's compiler stack, which the first optimizer construction pulls in, 1.5 s). Named,
# not imported: the works live on a higher floor (dlopt_core.experiments) than the runner.
PRELOAD = ["torch", "torch._dynamo", "dlopt_core.experiments.compare", "dlopt_core.runner.warm", "tracking"]


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _plain_main() -> Iterator[None]:
    """Start a process without it re-running ``__main__``.

    Streamlit (and its AppTest) runs each page script as ``__main__``, and multiprocessing
    re-runs the parent's ``__main__`` file in every new process: a worker would draw a page.
    """
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class ProcessLauncher:
    """Each slot a worker process forked from a fork server (never from the threaded server)."""

    name = "process"

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)

    def slot(self) -> Slot:
        return ProcessSlot(self._ctx)


def make_launcher(choice: Launcher | str | None) -> Launcher:
    """A launcher by name (``DLOPT_LAUNCHER``: ``process``, the default, or ``thread``)."""
    if choice is not None and not isinstance(choice, str):
        return choice
    name = choice or os.environ.get("DLOPT_LAUNCHER", "process")
    launchers: dict[str, Callable[[], Launcher]] = {"process": ProcessLauncher, "thread": ThreadLauncher}
    if name not in launchers:
        raise ValueError(f"DLOPT_LAUNCHER: unknown {name!r} (allowed: {', '.join(launchers)})")
    return launchers[name]()


# -- inside a worker process -------------------------------------------------------------


class _Interrupted(BaseException):
    """Raised in a worker by SIGTERM: unwinds the work so its runs end as cancelled."""


class _PipeControl:
    def __init__(self, conn: Any, stop_event: Any) -> None:
        self._conn, self._stop_event = conn, stop_event
        self._run_stops: list[int] = []
        self._polled = 0.0

    def should_stop(self) -> bool:
        return self._stop_event.is_set()

    def take_run_stops(self) -> list[int]:
        now = time.monotonic()
        if now - self._polled > 0.02:  # a poll is a system call; records come every ~0.1 ms
            self._polled = now
            while self._conn.poll():
                message = self._conn.recv()
                if message and message[0] == "stop_run":
                    self._run_stops.append(message[1])
        stops, self._run_stops = self._run_stops, []
        return stops


class _Emitter:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._buffer: list[Any] = []
        self._sent = 0.0

    def emit(self, event: Any, urgent: bool = False) -> None:
        self._buffer.append(event)
        if urgent or time.monotonic() - self._sent > EMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._conn.send(("events", self._buffer))
            self._buffer = []
        self._sent = time.monotonic()


def _worker_main(conn: Any, stop_event: Any) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the server decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def interrupted(signum: int, frame: object) -> None:
        raise _Interrupted()

    signal.signal(signal.SIGTERM, interrupted)
    use_one_thread()
    from dlopt_core.runner.warm import warm_up_worker

    try:
        warm_up_worker()
    except _Interrupted:
        return  # replaced before its first job (a Stop or a shutdown): nothing to unwind
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, _Interrupted):
            return
        if message is None:
            return
        if message[0] != "work":
            continue  # a late per-run stop for a job that already ended
        _, work, env = message
        _apply_env(env)
        emitter = _Emitter(conn)
        status, error, interrupted = Status.FINISHED, None, False
        try:
            work.run(emitter.emit, _PipeControl(conn, stop_event))
            if stop_event.is_set():
                status = Status.CANCELLED
        except _Interrupted:
            status, interrupted = Status.CANCELLED, True
        except Exception as exc:
            traceback.print_exc()
            status, error = Status.FAILED, f"{type(exc).__name__}: {exc}"
        try:
            emitter.flush()
            conn.send(("done", str(status), error))
        except (OSError, _Interrupted):
            return
        if interrupted:
            return  # SIGTERM: this process is being replaced
