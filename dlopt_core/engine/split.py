"""A batched group split over CPU cores: each part is a batched engine in a forked process.

One process trains one stacked model on one core (torch runs one thread per job here, see
``device.use_one_thread``); with K runs and P cores, P forked children each train about K/P
of them, and this process merges their records into one stream. Forked, not spawned: a
child starts in milliseconds with torch, the data and the registry already in memory.

A child talks only through its pipe: records (in batches) up, run stops down. It never
touches tracking or any lock another thread of this process may hold, ignores Ctrl-C and SIGTERM (this
process decides how runs end) and exits when the pipe closes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait

import torch

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.config import RunConfig
from dlopt_core.engine.batched import BatchedEngine
from dlopt_core.engine.records import Measures, Record
from dlopt_core.engine.sequential import failed_record

SEND_SECONDS = 0.02  # a child sends its records at least this often (and at every evaluation)
MIN_RUNS_PER_PART = 2
MIN_STEPS = 200  # digits, batch 64: about 9 epochs


def cpu_parts(runs: int, device_type: str, steps: int = MIN_STEPS) -> int:
    """How many processes a batched group of ``runs`` training ``steps`` steps gets.

    1 unless it is on a CPU with cores to spare, has two runs per part, and is long enough to
    repay starting the processes (tens of milliseconds each).
    """
    if device_type != "cpu" or not hasattr(os, "fork") or steps < MIN_STEPS:
        return 1
    return max(1, min(_processes(), runs // MIN_RUNS_PER_PART))


def _processes() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wanted = os.environ.get("DLOPT_ENGINE_PROCESSES", "")
    if not wanted:
        return cores
    try:
        return max(1, int(wanted))
    except ValueError:
        warnings.warn(f"DLOPT_ENGINE_PROCESSES={wanted!r} is not a number; using {cores}", stacklevel=2)
        return cores


def _child(conn: Connection, engine: BatchedEngine) -> None:
    # Ctrl-C and a SIGTERM to the whole group are for the parent, which ends the runs as
    # cancelled and then kills this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # An OpenMP thread team does not survive fork(): with more than one thread the first
    # matmul would wait forever for workers this process does not have.
    torch.set_num_threads(1)
    try:
        batch: list[tuple[int, Record]] = []
        last = time.monotonic()
        for item in engine:
            batch.append(item)
            now = time.monotonic()
            if item[1].is_eval or item[1].status.ended or now - last > SEND_SECONDS:
                conn.send(("records", batch))
                batch, last = [], now
                while conn.poll():
                    engine.stop(conn.recv())
        conn.send(("records", batch))
        conn.send(("done", None))
    except (BrokenPipeError, EOFError):
        pass  # the parent has gone: nothing left to tell
    except BaseException as exc:
        traceback.print_exc()
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass


class SplitEngine:
    """The batched engine over ``parts`` forked processes; the same stream as one batched engine."""

    def __init__(
        self, configs: Sequence[RunConfig], *, data: Dataset, parts: int, measures: Measures = Measures()
    ) -> None:
        from dlopt_core.catalog.optimizers import warm_up

        warm_up()  # torch.optim's first use costs ~1 s: pay it once here, not in every child
        # Contiguous, equal-sized parts: runs that differ only in seed sit side by side and
        # keep sharing one optimizer within a part.
        bounds = [round(p * len(configs) / parts) for p in range(parts + 1)]
        self.members = [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
        self._conns: list[Connection] = []
        self._pids: list[int] = []
        # Built here, before forking: a child never takes a lock (model initialisation's)
        # that another thread of this process might have held at the fork.
        engines = [
            BatchedEngine([configs[i] for i in members], data=data, measures=measures.part(members))
            for members in self.members
        ]
        for members, engine in zip(self.members, engines):
            mine, theirs = Pipe()
            # os.fork, not multiprocessing.Process: a job's worker is a daemon process, which
            # multiprocessing forbids to have children.
            pid = os.fork()
            if pid == 0:  # the child: train, report, and leave without running exit handlers
                status = 1
                try:
                    for conn in (*self._conns, mine):  # so a parent's end closing reads as EOF
                        conn.close()
                    _child(theirs, engine)
                    status = 0
                finally:
                    os._exit(status)
            theirs.close()
            self._conns.append(mine)
            self._pids.append(pid)
        self._active = set(range(len(configs)))

    @property
    def active(self) -> list[int]:
        return sorted(self._active)

    def stop(self, index: int) -> bool:
        if index not in self._active:
            return False
        self._active.discard(index)
        part = next(p for p, members in enumerate(self.members) if index in members)
        try:
            self._conns[part].send(self.members[part].index(index))
        except OSError:
            pass  # that child has ended already
        return True

    def close(self) -> None:
        """End every child now: nothing more is wanted from them (a finished one has exited)."""
        self._active.clear()
        for pid in self._pids:
            # Not a polite "close": a child blocked sending to a pipe nobody reads would
            # never see it, and a job's stop must not wait.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # reaped already (SIGCHLD ignored)
                os.waitpid(pid, 0)
        self._pids = []
        for conn in self._conns:
            conn.close()

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        open_parts = {conn: p for p, conn in enumerate(self._conns)}
        try:
            while open_parts:
                for conn in wait(list(open_parts)):
                    part = open_parts[conn]  # type: ignore[index]
                    members = self.members[part]
                    try:
                        kind, payload = conn.recv()  # type: ignore[union-attr]
                    except (EOFError, OSError):
                        kind, payload = "error", "the training process ended unexpectedly"
                    if kind == "records":
                        for local, rec in payload:
                            index = members[local]
                            if index in self._active:
                                if rec.status.ended:
                                    self._active.discard(index)
                                yield index, rec
                        continue
                    del open_parts[conn]  # type: ignore[arg-type]
                    if kind == "error":
                        for index in members:
                            if index in self._active:
                                self._active.discard(index)
                                yield index, failed_record(payload)
        finally:
            self.close()
