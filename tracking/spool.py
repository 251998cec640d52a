"""Writes the tracking store could not take, kept on disk until it answers again.

A run's writes are plain operations, applied by :func:`apply` both when the store answers and
when a spool is replayed, so the two paths cannot drift apart:

- ``create``: the run (experiment name, run name, tags, start time); ``parent_of``: the
  comparison id of a parent run that was not created yet when this was spooled (its own create
  waits in the spool too): the run is nested under that comparison's parent when written
- ``params``, ``metrics`` (``[key, value, timestamp_ms, step]`` rows), ``tags``
- ``text``: a text artifact (``curve.csv``, ``comparison.html``)
- ``file``: a binary artifact, base64 in the op (a run's final ``state_dict.pt``)
- ``end``: the final MLflow status and end time

``$DLOPT_HOME/spool/<key>.jsonl`` holds one run: a header line ``{"uri": ..., "run_id": ...}``
(``run_id`` is null until the run exists in the store), then one operation per line. Each line
is one ``write`` on an append-only descriptor, so a crash can at worst leave a torn last line,
which the reader skips; the lines before it stay intact. The process writing a spool holds an
``flock`` on it until it is done, so :func:`replay_spool` in another process (the app starting
while a CLI comparison is offline) leaves it alone, and a crashed writer's lock is freed by the
kernel.

A parent's spool file (key ``<comparison id>--1``) sorts before its children's
(``<comparison id>-<index>``), so :func:`replay_spool` creates it first; a child whose parent
is not in the store even then is written as a run of its own (the runs browser still groups it
by its ``comparison_id`` tag).

Replaying is safe to repeat: MLflow ignores a metric it already has (same key, step, timestamp
and value), tags and text artifacts are overwritten, params with the same value are accepted.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from tracking.store import StoreSettings, client, experiment_id, settings

Op = dict[str, Any]

PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "dlopt.role"
PARENT_ROLE = "parent"  # a comparison's, sweep's or Data-page experiment's parent run

# MLflow's limits for one log_batch call.
_METRICS_PER_BATCH = 1000
_PARAMS_PER_BATCH = 100
_TAGS_PER_BATCH = 100


def apply(c: Any, op: Op, run_id: str | None, *, store: StoreSettings, experiments: dict[str, str]) -> str | None:
    """Write one operation with MlflowClient ``c``; returns the run id (``create`` makes it).

    ``experiments`` caches experiment ids by name across calls (and parent run ids found for
    ``parent_of``, under ``"parent of <comparison id>"``).
    """
    kind = op.get("op")
    if kind == "create":
        name = op["experiment"]
        if name not in experiments:
            experiments[name] = experiment_id(name, store)
        tags = dict(op["tags"])
        comparison_id = op.get("parent_of")
        if comparison_id and PARENT_TAG not in tags and (
            parent := _parent_run(c, experiments, experiments[name], comparison_id)
        ) is not None:
            tags[PARENT_TAG] = parent
        created = c.create_run(experiments[name], start_time=op["start_time"], tags=tags, run_name=op["run_name"])
        return created.info.run_id
    if run_id is None:
        raise SpoolError(f"operation {kind!r} before the run was created")
    if kind == "params":
        params = [Param(k, v) for k, v in op["params"].items()]
        for chunk in _chunks(params, _PARAMS_PER_BATCH):
            c.log_batch(run_id, params=chunk)
    elif kind == "metrics":
        metrics = [Metric(k, v, ts, step) for k, v, ts, step in op["metrics"]]
        for chunk in _chunks(metrics, _METRICS_PER_BATCH):
            c.log_batch(run_id, metrics=chunk)
    elif kind == "tags":
        tags = [RunTag(k, v) for k, v in op["tags"].items()]
        for chunk in _chunks(tags, _TAGS_PER_BATCH):
            c.log_batch(run_id, tags=chunk)
    elif kind == "text":
        c.log_text(run_id, op["text"], op["path"])
    elif kind == "file":
        _log_bytes(c, run_id, base64.b64decode(op["base64"]), op["path"])
    elif kind == "end":
        c.set_terminated(run_id, op["status"], end_time=op["end_time"])
    else:
        raise SpoolError(f"unknown spool operation {kind!r}")
    return run_id


def _parent_run(c: Any, cache: dict[str, str], experiment: str, comparison_id: str) -> str | None:
    """The id of comparison ``comparison_id``'s parent run in the store, if it is there."""
    key = f"parent of {comparison_id}"
    if key not in cache:
        found = c.search_runs(
            [experiment], f"tags.comparison_id = '{comparison_id}' and tags.`{ROLE_TAG}` = '{PARENT_ROLE}'",
            run_view_type=ViewType.ACTIVE_ONLY, max_results=1, order_by=["attributes.start_time ASC"],
        )
        if not found:
            return None
        cache[key] = found[0].info.run_id
    return cache[key]


def _log_bytes(c: Any, run_id: str, data: bytes, path: str) -> None:
    # MLflow logs binary artifacts from files only (log_text and log_dict take text).
    folder, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / name
        local.write_bytes(data)
        c.log_artifact(run_id, str(local), folder or None)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


class SpoolError(ValueError):
    """A spooled operation that cannot be written anywhere (malformed, or out of order)."""


def is_permanent(exc: Exception) -> bool:
    """Retrying later cannot help: the store refused the write (a 4xx), or the op is malformed."""
    if isinstance(exc, SpoolError):
        return True
    return isinstance(exc, MlflowException) and 400 <= exc.get_http_status_code() < 500


class RunSpool:
    """The spool file of one run, owned (locked) by the process writing it until :meth:`close`."""

    def __init__(self, store: StoreSettings, key: str, run_id: str | None) -> None:
        folder = store.spool_dir
        folder.mkdir(parents=True, exist_ok=True)
        # Locked under a hidden name, then renamed: a replay never sees it unlocked and empty
        # (it would delete it as fully written).
        hidden = folder / f".{key}.{uuid.uuid4().hex[:8]}.new"
        self._fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.write(self._fd, _line({"uri": store.mlflow_uri, "run_id": run_id}))
        self.path = folder / f"{key}-{uuid.uuid4().hex[:8]}.jsonl"  # never replaces another
        os.rename(hidden, self.path)
        self.count = 0

    def append(self, op: Op) -> None:
        # One write per line on an O_APPEND descriptor: a crash cannot tear an earlier line.
        os.write(self._fd, _line(op))
        self.count += 1

    def close(self) -> None:
        """Flush to disk and release the lock (a replay may take the file from now on)."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def _line(value: Any) -> bytes:
    # NaN and inf stay as JSON extensions: a diverged run's loss is a real value to replay.
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


def _read(fd: int) -> tuple[dict[str, Any] | None, list[Op]]:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    values = []
    for raw in b"".join(chunks).splitlines():
        try:
            values.append(json.loads(raw))
        except ValueError:  # a torn last line from a crash mid-write: never fully spooled
            continue
    if not values or "uri" not in values[0]:
        return None, []
    return values[0], values[1:]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay wrote, what it had to leave for later, and why."""

    written: int = 0
    pending: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)
    store_failed: bool = False


def replay_spool(store: StoreSettings | None = None) -> ReplayResult:
    """Write every spooled operation for this store, in order; never raises for a store error.

    A run's file is deleted once all of it is written. The first failure that says the store
    is unreachable stops the replay (the rest stays spooled, for the next start); an operation
    the store refuses outright (a 4xx answer) is dropped and reported, so one bad write cannot
    hold back the rest forever. Files another process is still writing are left alone and
    counted as pending.
    """
    store = store or settings()
    return replay_files(store, sorted(store.spool_dir.glob("*.jsonl")))


def replay_files(store: StoreSettings, paths: Iterable[Path]) -> ReplayResult:
    """:func:`replay_spool` for these files only (an observer replays its own runs)."""
    written = pending = dropped = 0
    errors: list[str] = []
    reachable = True
    experiments: dict[str, str] = {}
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # another process replayed it meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its owner is still writing it, or another replay is
                pending += len(_read(fd)[1])
                continue
            if not _still_at(fd, path):  # replaced or deleted while we waited for the lock
                continue
            header, ops = _read(fd)
            if header is None or header["uri"] != store.mlflow_uri:
                continue
            if not reachable:
                pending += len(ops)
                continue
            run_id, done, left = header["run_id"], 0, []
            for i, op in enumerate(ops):
                try:
                    run_id = apply(client(store), op, run_id, store=store, experiments=experiments)
                    done += 1
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    if not is_permanent(exc):
                        reachable, left = False, ops[i:]
                        break
                    if op["op"] == "create":  # no run to write the rest to
                        dropped += len(ops) - i
                        break
                    dropped += 1
            written += done
            pending += len(left)
            if not left:
                path.unlink()
            elif len(left) < len(ops) or run_id != header["run_id"]:
                _rewrite(path, {"uri": store.mlflow_uri, "run_id": run_id}, left)
        finally:
            os.close(fd)
    return ReplayResult(written, pending, dropped, errors, store_failed=not reachable)


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _rewrite(path: Path, header: dict[str, Any], ops: list[Op]) -> None:
    """Keep only what is left, atomically: a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.new")
    with open(tmp, "wb") as f:
        f.write(_line(header))
        f.writelines(_line(op) for op in ops)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def spooled_run_ids(store: StoreSettings | None = None) -> set[str]:
    """Ids of runs that still have writes waiting in the spool (their end may be among them)."""
    store = store or settings()
    ids = set()
    for path in store.spool_dir.glob("*.jsonl"):
        try:
            with open(path, "rb") as f:
                header = json.loads(f.readline())
        except (OSError, ValueError):
            continue
        if header.get("uri") == store.mlflow_uri and header.get("run_id"):
            ids.add(header["run_id"])
    return ids
