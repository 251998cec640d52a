"""Where Optuna studies live, and how a trial whose worker died is ended.

``study_storage(url)`` reads ``url``, else ``$DLOPT_OPTUNA_STORAGE``, else the embedded
default, ``journal:$DLOPT_HOME/optuna.journal``:

- ``postgresql+psycopg://user@host/db`` (or any SQLAlchemy URL): :class:`optuna.storages.RDBStorage`
  with heartbeats, so a worker on another machine that dies is noticed: its trial ends FAIL
  after the grace period and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues
  its parameters again. Many workers on many machines fill one study this way.
- ``sqlite:///path.db``: the same RDBStorage with heartbeats and a 30 s busy timeout.
- ``journal:/path/file.journal``: Optuna's journal file storage (an append-only log of
  operations), written under an ``flock`` that the kernel releases when a writer dies.
- ``memory``: a new in-memory storage for each call (keep the :class:`StudyStorage`; tests, benchmarks).

Why the embedded default is the journal file and not SQLite: ``python -m bench study_storage
--trials 30 --repeats 3`` on the 2-core machines (shared, load 2-7; digits MLP, Adam, 3 epochs
per trial, ~20 ms of training; medians of 3, two runs):

=================  ================  ==========================================
storage            overhead / trial  trials per minute, 1 / 2 / 4 local workers
=================  ================  ==========================================
in-memory          1.4 ms            (one process only)
journal (flock)    9.5 - 11 ms       2420 / 1360 / 2590  and  2560 / 1640 / 3010
SQLite (RDB)       42 - 176 ms       800 / 450 / 720     and  940 / 1070 / 1110
PostgreSQL (RDB)   48 - 85 ms        770 / 520 / 490     and  800 / 970 / 980
=================  ================  ==========================================

The journal costs a fifth or less of SQLite's storage time per trial (one appended line and
an fsync per write, where RDBStorage makes each report, attribute and state change a
transaction) and fills a study 2-3x faster at every worker count; more workers gain little
here because the 2 cores are shared with the training itself. It also needs no schema set-up
(RDBStorage creates its tables on first use; this module serialises that for SQLite with a
file lock), and with :class:`FlockLock` a SIGKILLed writer cannot leave it locked.
What it lacks is heartbeats: the embedded store is local by construction, so a dead worker's
trial is found by the worker's host and pid instead (:func:`end_stale_trials`), at once, where
heartbeats wait out a grace period.

``DLOPT_OPTUNA_HEARTBEAT`` sets the heartbeat interval in seconds (default 30; the grace
period is 5 intervals). Tests set it to 1 so a killed worker's trial is retried in seconds.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import os
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from dlopt_core.home import dlopt_home
from dlopt_core.runner.process_identity import process_alive, process_start

ENV_STORAGE = "DLOPT_OPTUNA_STORAGE"
ENV_HEARTBEAT = "DLOPT_OPTUNA_HEARTBEAT"
JOURNAL_PREFIX = "journal:"
StorageKind = Literal["memory", "journal", "sqlite", "postgresql", "rdb"]

DEFAULT_HEARTBEAT_S = 30
GRACE_INTERVALS = 5  # a busy machine may delay a heartbeat; a live trial must never read as stale
# A stale trial is queued again with its parameters this many times: a configuration that
# kills its worker every time (out of memory) must not be retried forever.
MAX_RETRY = 2
SQLITE_BUSY_TIMEOUT_S = 30
# The worker key in a trial's user attrs; its "trial" field is the trial's number, so a retried
# trial's copy of the dead worker's identity is never mistaken for its new worker's.
WORKER_ATTR = "worker"
# A RUNNING trial whose worker never wrote its identity (killed between taking the trial and
# the first write, milliseconds) is stale after this long.
UNCLAIMED_STALE_S = 60.0


@dataclass(frozen=True)
class StudyStorage:
    """An Optuna storage with what a worker and a page need to know about it."""

    storage: optuna.storages.BaseStorage
    kind: StorageKind
    url: str  # printable: any password is masked

    @property
    def heartbeat(self) -> bool:
        """Whether dead workers are found by heartbeats (RDB) rather than by host and pid."""
        return self.kind in ("sqlite", "postgresql", "rdb")


def default_storage_url() -> str:
    """The embedded default: a journal file under ``$DLOPT_HOME``."""
    return f"{JOURNAL_PREFIX}{dlopt_home() / 'optuna.journal'}"


def storage_url(url: str | None = None) -> str:
    """``url``, else ``$DLOPT_OPTUNA_STORAGE``, else :func:`default_storage_url`."""
    return url or os.environ.get(ENV_STORAGE) or default_storage_url()


def heartbeat_settings() -> tuple[int, int]:
    """``(interval, grace)`` in seconds, from ``$DLOPT_OPTUNA_HEARTBEAT``."""
    text = os.environ.get(ENV_HEARTBEAT, "")
    try:
        interval = int(text) if text else DEFAULT_HEARTBEAT_S
    except ValueError:
        raise ValueError(f"{ENV_HEARTBEAT}: expected whole seconds > 0, got {text!r}") from None
    if interval <= 0:
        raise ValueError(f"{ENV_HEARTBEAT}: expected whole seconds > 0, got {text!r}")
    return interval, GRACE_INTERVALS * interval


def study_storage(url: str | None = None) -> StudyStorage:
    """The storage for ``url`` (see the module docstring); one per URL and process."""
    url = storage_url(url)
    if url == "memory":
        return StudyStorage(optuna.storages.InMemoryStorage(), "memory", url)
    return _cached(url, heartbeat_settings())


@functools.lru_cache(maxsize=16)
def _cached(url: str, heartbeat: tuple[int, int]) -> StudyStorage:
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):].removeprefix("//")).expanduser().resolve()
        if path.is_dir():
            raise StorageUnavailable(f"storage: {url} is a folder; name a file in it (e.g. {path / 'optuna.journal'})")
        with _usable(url):
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(str(path), lock_obj=FlockLock(str(path)))
        return StudyStorage(JournalStorage(backend), "journal", f"{JOURNAL_PREFIX}{path}")
    if "://" not in url:
        raise ValueError(
            f"storage: expected postgresql+psycopg://..., sqlite:///path, {JOURNAL_PREFIX}/path or memory, got {url!r}"
        )
    interval, grace = heartbeat
    kind: StorageKind = "sqlite" if url.startswith("sqlite") else "postgresql" if url.startswith("postgres") else "rdb"
    engine: dict[str, Any] = {}
    if kind == "sqlite":
        # Several local processes write one file: wait for the lock rather than fail at once.
        engine["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        engine["pool_pre_ping"] = True  # a server restarted since the last trial: reconnect
        if kind == "postgresql":  # an unreachable server: a clear error in seconds, not a hang
            engine["connect_args"] = {"connect_timeout": 10}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeat_interval, the retry callback
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        with _setup_lock(url):
            storage = _create_rdb(url, engine, interval, grace, retry)
    return StudyStorage(storage, kind, _masked(url))


class StorageUnavailable(RuntimeError):
    """The study storage could not be opened (a server that does not answer, a refused login)."""


def _create_rdb(url: str, engine: dict[str, Any], interval: int, grace: int, retry: Any) -> RDBStorage:
    # RDBStorage creates its tables on first use; two workers starting on a new database at
    # once can both try (a duplicate-table or unique-violation error for the loser). The
    # second attempt finds the tables.
    for attempt in range(3):
        try:
            return RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=interval, grace_period=grace,
                heartbeat_stale_trial_callback=retry,
            )
        except Exception as exc:
            if attempt == 2:
                raise StorageUnavailable(f"storage: cannot open {_masked(url)}: {type(exc).__name__}: {exc}") from exc
            time.sleep(0.3 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _setup_lock(url: str) -> Iterator[None]:
    """For a SQLite file: one process at a time sets up the schema (others wait, then find it)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        yield
        return
    path = Path(url[len(prefix):].split("?", 1)[0])
    with _usable(url):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".setup-lock"), "a")  # noqa: SIM115  (closed below)
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


@contextlib.contextmanager
def _usable(url: str) -> Iterator[None]:
    """A folder or file of the storage that cannot be made or opened is :class:`StorageUnavailable`."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StorageUnavailable(f"storage: cannot use {_masked(url)}: {exc.strerror or exc}{where}") from None


def _masked(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{tail}"


class FlockLock:
    """The journal's writer lock as an ``flock``: a writer killed while holding it frees it.

    Optuna's own file locks (a symlink or an O_EXCL file) stay behind when their holder is
    SIGKILLed, and every other worker then waits out a 30 s grace period; they also poll with a
    back-off up to 1 s, where a blocked ``flock`` wakes as soon as the lock is free.
    """

    def __init__(self, path: str) -> None:
        self._path = path + ".flock"
        self._fd = -1

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases the lock


# -- the worker that runs a trial, and stale trials --


def worker_identity(trial_number: int) -> dict[str, Any]:
    """What a worker writes on the trial it runs, so another worker can tell when it died."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid) or "", "trial": trial_number}


def _stale_by_pid(trial: FrozenTrial, host: str) -> bool:
    worker = trial.user_attrs.get(WORKER_ATTR)
    if isinstance(worker, dict) and worker.get("trial") == trial.number:
        return worker.get("host") == host and not process_alive(int(worker["pid"]), str(worker.get("pid_start", "")))
    started = trial.datetime_start
    return started is not None and (datetime.datetime.now() - started).total_seconds() > UNCLAIMED_STALE_S


def end_stale_trials(study: optuna.Study, storage: StudyStorage) -> list[int]:
    """End as FAIL the RUNNING trials whose worker died; queue each one's parameters again.

    RDB storages: Optuna's heartbeats (trials silent for the grace period). Others: trials
    whose worker ran on this host and whose process is gone. Returns the ended trial numbers.
    """
    if storage.heartbeat:
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        now = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        return sorted(n for n in before if now.get(n) is TrialState.FAIL)
    host = socket.gethostname()
    ended = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _stale_by_pid(trial, host):
            continue
        try:
            failed = study.tell(trial.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError):  # another worker ended it first: it retries it
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, failed)
        ended.append(trial.number)
    return ended
