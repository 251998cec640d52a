"""Time to compute and draw 6 optimizers x 500 steps on a landscape (target: < 0.3 s compute).

Compute is the trajectories (one batched forward/backward per step plus each optimizer's
step); draw is building the contour/animation and per-step figures and serialising them as
Streamlit does. Medians over repeats, per function; the figures' JSON size is printed too.
"""

from __future__ import annotations

import statistics
import time

from dlopt_core.config import OptimizerConfig
from dlopt_core.device import use_one_thread
from dlopt_core.experiments.landscape import FUNCTIONS, LandscapeConfig, run_landscape, trajectories
from dlopt_core.catalog.optimizers import warm_up
from dlopt_core.plots import landscape_curves_figure, landscape_figure

OPTIMIZERS = ("sgd:lr=0.001", "momentum:lr=0.001", "nesterov:lr=0.001", "adam:lr=0.05", "rmsprop:lr=0.01", "adagrad:lr=0.5")
REPEATS = 7
STEPS = 500


def main() -> None:
    use_one_thread()
    warm_up()
    opts = [OptimizerConfig.parse(s) for s in OPTIMIZERS]
    print(f"landscape: {len(opts)} optimizers x {STEPS} steps, medians of {REPEATS} repeats")
    computes = []
    for name, fn in FUNCTIONS.items():
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            trajectories(fn, opts, start=fn.start, steps=STEPS)
            times.append(time.perf_counter() - start)
        computes.append(statistics.median(times))
        config = LandscapeConfig.make(function=name, steps=STEPS, optimizers=tuple(opts))
        result = run_landscape(config)
        draws, size = [], 0
        for _ in range(REPEATS):
            start = time.perf_counter()
            size = len(landscape_figure(result).to_json()) + len(landscape_curves_figure(result).to_json())
            draws.append(time.perf_counter() - start)
        print(
            f"  {name:11s} compute {statistics.median(times):.3f} s   draw {statistics.median(draws):.3f} s"
            f"   figures {size / 1e6:.2f} MB"
        )
    worst = max(computes)
    print(f"  slowest compute {worst:.3f} s = {worst / 0.3:.2f} x the 0.3 s target")


if __name__ == "__main__":
    main()
