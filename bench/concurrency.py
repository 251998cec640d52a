"""Two comparisons at once against one alone, with the job runner's threads and its processes.

For each launcher (``thread``, ``process``) one :class:`JobRegistry` with two slots is made and
warmed (its first jobs start the worker processes, import MLflow and build the optimizers once;
none of that is timed). Then, in every repeat and for each launcher in turn:

- *alone*: one comparison (digits MLP, SGD + momentum, batch 64) is submitted and waited for;
- *both*: two other comparisons (other seeds, so other keys and the same work) are submitted
  together and waited for until both have ended.

Each is timed from submit to the end of the job, as a page sees it: sending the work to the
slot, creating the MLflow runs, training, the MLflow writes at the end. Throughput ratio =
2 x T_alone / T_both: 1.0 means two at once gain nothing over one after the other, 2.0 is
perfect use of two cores. The launchers are measured side by side, interleaved, and the
medians of the per-repeat ratios are printed. By default the comparisons log to MLflow, as
the Compare page does (``--track off`` for untracked, ``--track both`` for each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence

from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.experiments.compare import ComparisonWork
from dlopt_core.runner.jobs import JobRegistry

LAUNCHERS = ("thread", "process")
PLURAL = {"thread": "threads", "process": "processes"}
EPOCHS = 80
REPEATS = 5
TARGET = 1.7  # processes, 2 cores
OPTIMIZER = "sgd:lr=0.1,momentum=0.9"


def _config(epochs: int, seed: int) -> ComparisonConfig:
    return ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse(OPTIMIZER),), data={"name": "digits"},
        epochs=epochs, batch_size=64, seeds=str(seed),
    )


class _Seeds:
    """A fresh seed for every comparison: no job attaches to another, no two share a key."""

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        self._next += 1
        return self._next


def _run(registry: JobRegistry, configs: Sequence[ComparisonConfig], track: bool) -> float:
    """Seconds from submitting ``configs`` together until every one of their jobs has ended."""
    start = time.perf_counter()
    jobs = [registry.submit(ComparisonWork(c, track=track)) for c in configs]
    for job in jobs:
        job.wait()
    seconds = time.perf_counter() - start
    for job in jobs:
        runs = job.payload.comparison.runs
        if job.status != "finished" or any(r.status != "finished" for r in runs):
            raise RuntimeError(f"{job.label} ended {job.status} ({job.error or [r.status_text for r in runs]})")
    return seconds


def _warm(registry: JobRegistry, seeds: _Seeds, track: bool) -> None:
    """Two rounds of two tiny jobs: both slots' workers started, torch and MLflow warm."""
    for _ in range(2):
        _run(registry, [_config(1, seeds.take()), _config(1, seeds.take())], track)


def measure(epochs: int, repeats: int, track: bool) -> dict[str, list[tuple[float, float]]]:
    """Per launcher, ``(T_alone, T_both)`` of each repeat, measured interleaved."""
    seeds = _Seeds()
    registries = {name: JobRegistry(2, launcher=name) for name in LAUNCHERS}
    try:
        for name in LAUNCHERS:
            # Until its workers are up a registry runs jobs in threads: wait, then warm them.
            registries[name].wait_ready(300)
            _warm(registries[name], seeds, track)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in LAUNCHERS}
        for r in range(repeats):
            # Alternate which launcher, and which of alone/both, goes first.
            order = LAUNCHERS if r % 2 == 0 else LAUNCHERS[::-1]
            for name in order:
                alone_first = (r // 2) % 2 == 0
                reg = registries[name]
                if alone_first:
                    alone = _run(reg, [_config(epochs, seeds.take())], track)
                both = _run(reg, [_config(epochs, seeds.take()), _config(epochs, seeds.take())], track)
                if not alone_first:
                    alone = _run(reg, [_config(epochs, seeds.take())], track)
                times[name].append((alone, both))
        return times
    finally:
        for reg in registries.values():
            reg.shutdown()


def report(times: dict[str, list[tuple[float, float]]], track: bool) -> dict[str, float]:
    """Print per-repeat and median ratios, threads and processes side by side; return the medians."""
    ratios = {name: [2 * a / b for a, b in ts] for name, ts in times.items()}
    medians = {name: statistics.median(rs) for name, rs in ratios.items()}
    print(f"  {'MLflow tracking on' if track else 'no tracking'}")
    print(("    " + " " * 9 + "".join(f"{PLURAL[name]:<30}" for name in LAUNCHERS)).rstrip())
    print(("    repeat  " + "alone    both     ratio        " * len(LAUNCHERS)).rstrip())
    rows = [(str(i + 1), [times[n][i] + (ratios[n][i],) for n in LAUNCHERS]) for i in range(len(ratios["thread"]))]
    rows.append(("median", [
        (statistics.median(a for a, _ in times[n]), statistics.median(b for _, b in times[n]), medians[n])
        for n in LAUNCHERS
    ]))
    for label, cells in rows:
        print(f"    {label:<8}" + "".join(f"{a:5.2f} s  {b:5.2f} s  {ratio:5.2f}        " for a, b, ratio in cells).rstrip())
    verdict = "ok" if medians["process"] >= TARGET else "BELOW TARGET"
    print(f"    throughput ratio 2 x alone / both (median): threads {medians['thread']:.2f}, "
          f"processes {medians['process']:.2f}   (1.0 = no gain, 2.0 = perfect; "
          f"target >= {TARGET} with processes: {verdict})")
    return medians


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench concurrency", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs per comparison (default {EPOCHS})")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"interleaved repeats (default {REPEATS})")
    parser.add_argument("--track", choices=("on", "off", "both"), default="on",
                        help="log to MLflow as the page does (on, the default), not (off), or measure each")
    args = parser.parse_args(argv)
    tracks = {"on": [True], "off": [False], "both": [True, False]}[args.track]
    with tempfile.TemporaryDirectory() as home:
        os.environ["DLOPT_HOME"] = home
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        print(f"concurrency: two comparisons at once vs one alone, digits MLP, {OPTIMIZER}, batch 64, "
              f"{args.epochs} epochs, 2 slots, {os.cpu_count()} cores, {args.repeats} interleaved repeats")
        for track in tracks:
            report(measure(args.epochs, args.repeats, track), track)


if __name__ == "__main__":
    main()
