"""Trainer steps/s (MLflow logging and live recording on) against bare PyTorch loops.

Same model (digits MLP, 64 hidden, same initial weights), same tensors, batch 64, SGD with
momentum. Two bare loops: train steps only, and train steps plus one validation pass per
epoch (the trainer evaluates once per epoch, so that one is the like-for-like baseline).
The three are interleaved, repeated, and the medians of the per-repeat ratios are printed.

Steps/s is the rate while training, for all three loops alike: the bare loops are timed
from their first step (model, optimizer and data already built), the trainer from its first
record (the step-0 evaluation) to its last. What the trainer does once per run is printed
beside: the set-up before that first record (model, optimizer, creating the MLflow run and
logging its params) and the MLflow writes after the last one (final metrics, curve.csv, the
figure, the status).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import torch

from dlopt_core.catalog.models import build_model, loss_fn
from dlopt_core.catalog.optimizers import warm_up
from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.device import use_one_thread
from dlopt_core.engine.loop import evaluate, load_run_data, run_budget
from dlopt_core.experiments.compare import Comparison

BUDGETS = (20, 100)  # epochs: ~0.15 s and ~0.8 s runs, to show what is fixed cost
REPEATS = 9
TARGET = 0.92  # trainer / bare+val at either budget: the floor the issue sets


def _config(epochs: int) -> ComparisonConfig:
    return ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.05,momentum=0.9"),),
        epochs=epochs, batch_size=64, seeds=(0,),
    )


def bare_loop(epochs: int, *, validate: bool) -> float:
    """Steps per second of a hand-written loop."""
    run_cfg = _config(epochs).runs()[0]
    data = load_run_data(run_cfg)
    model = build_model(run_cfg.model, data, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = loss_fn(data)
    gen = torch.Generator().manual_seed(0)
    n = len(data.x_train)
    steps = 0
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss = criterion(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
            steps += 1
        if validate:
            model.eval()
            evaluate(model, data, data.x_val, data.y_val)
            model.train()
    return steps / (time.perf_counter() - start)


class _RecordClock:
    """Notes when the first and the last record were produced."""

    first = last = 0.0

    def run_started(self, run: object) -> None: ...

    def record(self, run: object, rec: object) -> None:
        self.last = time.perf_counter()
        self.first = self.first or self.last

    def run_ended(self, run: object) -> None: ...

    def comparison_ended(self, comparison: object) -> None: ...


def trainer(epochs: int) -> tuple[float, float, float]:
    """(steps/s while training, set-up seconds before it, MLflow seconds after it) for one run."""
    from tracking import MlflowObserver

    comparison = Comparison(_config(epochs))
    clock = _RecordClock()
    start = time.perf_counter()
    comparison.execute(observers=[MlflowObserver(), clock])
    end = time.perf_counter()
    assert comparison.runs[0].status == "finished"
    return comparison.runs[0].steps / (clock.last - clock.first), clock.first - start, end - clock.last


def main() -> None:
    use_one_thread()
    with tempfile.TemporaryDirectory() as home:
        os.environ["DLOPT_HOME"] = home
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        warm_up()
        trainer(2)  # creates the MLflow tables once, outside the timed repeats
        print(f"throughput: digits MLP, batch 64, SGD+momentum, {REPEATS} interleaved repeats (medians)")
        for epochs in BUDGETS:
            _budget(epochs)


def _budget(epochs: int) -> None:
    vs_eval, vs_bare, rates, setups, tails = [], [], [], [], []
    for _ in range(REPEATS):
        bare = bare_loop(epochs, validate=False)
        bare_eval = bare_loop(epochs, validate=True)
        ours, setup, tail = trainer(epochs)
        vs_eval.append(ours / bare_eval)
        vs_bare.append(ours / bare)
        rates.append((bare, bare_eval, ours))
        setups.append(setup)
        tails.append(tail)
    med = [statistics.median(r[i] for r in rates) for i in range(3)]
    run_cfg = _config(epochs).runs()[0]
    steps = epochs * run_budget(run_cfg).steps_per_epoch
    print(f"  {epochs} epochs ({steps} steps)")
    print(f"    bare loop (train only)          {med[0]:8.0f} steps/s")
    print(f"    bare loop + per-epoch val pass  {med[1]:8.0f} steps/s")
    print(f"    dlopt trainer + MLflow + live   {med[2]:8.0f} steps/s")
    ratio = statistics.median(vs_eval)
    print(f"    ratio trainer / bare+val        {ratio:.3f}   (target >= {TARGET}: {'ok' if ratio >= TARGET else 'BELOW'})")
    print(f"    ratio trainer / bare train-only {statistics.median(vs_bare):.3f}")
    print(f"    once per run: set-up before the first record {statistics.median(setups) * 1000:.0f} ms, "
          f"MLflow writes after the last {statistics.median(tails) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
