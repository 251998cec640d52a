"""``python -m bench work_setup [--before PATH]``: what a background comparison costs before it trains.

A page builds a :class:`~dlopt_core.experiments.compare.ComparisonWork` (the server's live
mirror), the process launcher pickles it into a worker, and the worker builds the comparison it
trains. Timed here for a 16-run comparison and the LR sensitivity page's default 108-run sweep:
the server's construction, the pickle round trip (the worker's unpickling included), and the
worker's side (unpickling plus the build of the comparison :meth:`run` trains).

``--before PATH``: also time the core found at ``PATH`` (a copy of ``dlopt_core`` and
``tracking`` from an older commit, e.g. ``git archive <commit> dlopt_core tracking | tar -x -C
PATH``) in a child process, and print both side by side with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPEATS = 15


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm: imports and caches a page would have by then
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure(repeats: int) -> dict[str, float]:
    """Median milliseconds of each stage, by name, for the core on ``sys.path``."""
    from dlopt_core.config import ComparisonConfig
    from dlopt_core.experiments.compare import Comparison, ComparisonWork
    from dlopt_core.experiments.sweep import SweepConfig

    plans = {
        "comparison 16 runs": ComparisonConfig.make(
            data={"name": "digits"}, optimizers=[{"name": n} for n in ("sgd", "adam", "rmsprop", "adamw")],
            seeds=(0, 1, 2, 3),
        ),
        "sweep 108 runs": SweepConfig.make(
            data={"name": "digits"}, optimizers=[{"name": n} for n in ("sgd", "adam", "rmsprop")],
        ),
    }
    out = {}
    for name, config in plans.items():
        work = ComparisonWork(config, track=False)
        blob = pickle.dumps(work)

        def worker_side() -> None:
            recipe = pickle.loads(blob)
            Comparison(recipe.config, comparison_id=work.comparison.id)  # what run() trains

        out[f"{name}: server builds the work"] = _median_ms(lambda: ComparisonWork(config, track=False), repeats)
        out[f"{name}: pickle round trip"] = _median_ms(lambda: pickle.loads(pickle.dumps(work)), repeats)
        out[f"{name}: worker side"] = _median_ms(worker_side, repeats)
    return out


def _measure_at(path: Path, repeats: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(Path(__file__).resolve().parents[1])])}
    code = f"import json; from bench.work_setup import measure; print(json.dumps(measure({repeats})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=path)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench work_setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="a copy of an older dlopt_core and tracking to compare with")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    now = _measure_at(Path(__file__).resolve().parents[1], args.repeats)
    before = _measure_at(args.before.resolve(), args.repeats) if args.before else None
    print(f"work_setup: median ms over {args.repeats} repeats")
    width = max(map(len, now))
    if before is None:
        for name, ms in now.items():
            print(f"  {name:<{width}}  {ms:8.2f}")
        return
    print(f"  {'':<{width}}  {'before':>8}  {'now':>8}  {'now/before':>10}")
    for name, ms in now.items():
        print(f"  {name:<{width}}  {before[name]:8.2f}  {ms:8.2f}  {ms / before[name]:10.2f}")


if __name__ == "__main__":
    main()
