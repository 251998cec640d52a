"""Optuna storages for study workers: per-trial overhead, and trials per minute with local workers.

``python -m bench study_storage [--trials 30] [--workers 1,2,4] [--postgres auto|off|URL]``

Every trial is the same small setup (digits MLP, Adam, 3 epochs, median pruner) and the
sampler is the random one with a fixed seed, so every storage runs the same trials and the
same prunes.

- *overhead*: one worker fills a study of ``--trials`` trials on each storage. The time spent
  inside the training loop (the record stream) is measured; the rest of the worker's time is
  the per-trial overhead: storage reads and writes, sampling, pruning. Shown in ms per trial
  and relative to a trial's training time.
- *throughput*: 1, 2, 4 worker processes fill one study of ``--trials`` trials together. Each
  process is started, imports everything, opens the study and trains one warm-up run before
  the clock starts; the clock stops when the last worker returns. Trials per minute.

Storages: ``memory`` (overhead only: it lives in one process), ``journal`` (the journal file
with dlopt's flock lock, the embedded default), ``journal-optuna-lock`` (the same with
Optuna's default symlink lock), ``sqlite`` (RDBStorage with heartbeats and a busy timeout),
``postgresql`` (``--postgres auto`` starts a throw-away local cluster with tests/postgres.py
when Debian's server is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OVERHEAD_STORAGES = ("memory", "journal", "journal-optuna-lock", "sqlite", "postgresql")
SHARED_STORAGES = ("journal", "journal-optuna-lock", "sqlite", "postgresql")


def _config(trials: int, name: str) -> Any:
    from dlopt_core.experiments.study.config import StudyConfig

    return StudyConfig.make(
        data={"name": "digits"}, model={"name": "mlp"}, epochs=3, optimizer={"name": "adam"},
        sampler="random", pruner="median", n_trials=trials, study_name=name,
    )


def _handle(kind: str, where: str) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from dlopt_core.experiments.study_storage import StudyStorage, study_storage

    if kind == "memory":
        return study_storage("memory")
    if kind == "journal":
        return study_storage(f"journal:{where}/optuna.journal")
    if kind == "journal-optuna-lock":
        path = f"{where}/optuna-symlink.journal"
        return StudyStorage(JournalStorage(JournalFileBackend(path)), "journal", f"journal:{path}")
    if kind == "sqlite":
        return study_storage(f"sqlite:///{where}/optuna.db")
    return study_storage(where)  # postgresql: the URL


class _TrainingClock:
    """Wraps the training loop the study module calls, adding up the time spent inside it."""

    def __init__(self) -> None:
        import dlopt_core.experiments.study.objective as study_module

        self.seconds = 0.0
        self._run = study_module.run
        study_module.run = self._timed

    def _timed(self, config: Any, **options: Any) -> Iterator[Any]:
        records = self._run(config, **options)
        try:
            while True:
                start = time.perf_counter()
                try:
                    rec = next(records)
                finally:
                    self.seconds += time.perf_counter() - start
                yield rec
        except StopIteration:
            return
        finally:
            records.close()


def _warm_up() -> None:
    import optuna

    from dlopt_core.config import RunConfig
    from dlopt_core.device import use_one_thread
    from dlopt_core.engine.loop import run

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    use_one_thread()
    for _ in run(RunConfig.make(data={"name": "digits"}, epochs=1)):
        pass


def overhead(kind: str, where: str, trials: int, repeat: int) -> dict[str, Any]:
    """One worker, ``trials`` trials on storage ``kind``: total, training and overhead seconds."""
    from dlopt_core.experiments.study.store import open_study
    from dlopt_core.experiments.study.worker import run_worker

    _warm_up()
    clock = _TrainingClock()
    handle = _handle(kind, where)
    config = _config(trials, f"overhead-{kind}-{repeat}")
    open_study(config, handle, worker=0)  # once per study (SQLite: the schema), not per trial
    start = time.perf_counter()
    summary = run_worker(config, handle, worker=0)
    total = time.perf_counter() - start
    assert summary.finished == trials, summary.counts
    return {"storage": kind, "trials": trials, "total_s": total, "training_s": clock.seconds,
            "overhead_ms": 1000 * (total - clock.seconds) / trials,
            "overhead_share": (total - clock.seconds) / clock.seconds}


def _worker(kind: str, where: str, name: str, trials: int, index: int, barrier: Any, out: Any) -> None:
    from dlopt_core.experiments.study.store import open_study
    from dlopt_core.experiments.study.worker import run_worker

    _warm_up()
    handle = _handle(kind, where)
    config = _config(trials, name)
    open_study(config, handle, worker=index)
    barrier.wait()
    run_worker(config, handle, worker=index, poll_s=0.05)
    out.put(time.perf_counter())


def throughput(kind: str, where: str, trials: int, workers: int, *, name: str) -> dict[str, Any]:
    """``workers`` processes fill one study of ``trials`` trials: trials per minute."""
    from dlopt_core.experiments.study.store import load_study
    from dlopt_core.experiments.study.summary import study_summary

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, where, name, trials, i, barrier, out)) for i in range(workers)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    ends = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    seconds = max(ends) - start
    summary = study_summary(load_study(name, _handle(kind, where)), _handle(kind, where))
    return {"storage": kind, "workers": workers, "trials": trials, "seconds": seconds,
            "trials_per_min": 60 * summary.finished / seconds, "finished": summary.finished,
            "surplus": sum(t.note == "surplus" for t in summary.trials)}


@contextlib.contextmanager
def _postgres(choice: str) -> Iterator[str | None]:
    if choice == "off":
        yield None
    elif choice != "auto":
        yield choice
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres import pg_bin, postgres_server

        try:
            pg_bin()
        except RuntimeError as err:
            print(f"postgresql: skipped ({err})")
            yield None
            return
        with postgres_server() as url:
            yield url


def _table(rows: list[dict[str, Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    headers = list(rows[0])
    cells = [[cell(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    return "\n".join("  ".join(s.ljust(w) for s, w in zip(line, widths)) for line in [headers, *cells])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench study_storage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (the median is shown)")
    parser.add_argument("--storages", default=",".join(OVERHEAD_STORAGES), help="which storages, comma-separated")
    parser.add_argument("--postgres", default="auto", help="auto (a throw-away local cluster), off, or a URL")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, _postgres(args.postgres) as pg_url:
        chosen = [k for k in args.storages.split(",") if k != "postgresql" or pg_url is not None]
        # Repeats interleave the storages, so a change in the machine's load touches each alike.
        runs: dict[str, list[dict[str, Any]]] = {}
        for r in range(args.repeats):
            for kind in (k for k in OVERHEAD_STORAGES if k in chosen):
                where = pg_url if kind == "postgresql" else tempfile.mkdtemp(dir=folder)
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(1) as pool:  # a fresh process each: no storage cache, no warm study
                    runs.setdefault(kind, []).append(pool.apply(overhead, (kind, where, args.trials, r)))
        print(f"per-trial overhead, one worker (digits MLP, Adam, 3 epochs, median pruner; median of {args.repeats})")
        print(_table([_median(rows, "overhead_ms") for rows in runs.values()]))
        runs = {}
        counts = [int(w) for w in args.workers.split(",")]
        for r in range(args.repeats):
            for kind in (k for k in SHARED_STORAGES if k in chosen):
                for n in counts:
                    where = pg_url if kind == "postgresql" else tempfile.mkdtemp(dir=folder)
                    row = throughput(kind, where, args.trials, n, name=f"throughput-{kind}-{n}-{r}")
                    runs.setdefault(f"{kind}-{n}", []).append(row)
        rows = [_median(rows, "trials_per_min") for rows in runs.values()]
        print(f"\nlocal workers filling one study of {args.trials} trials")
        print(_table(rows))


def _median(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return sorted(rows, key=lambda row: row[key])[len(rows) // 2]


if __name__ == "__main__":
    main()
