"""Batched engine against the sequential engine: the same comparison, side by side.

K=8: the eight element-wise optimizers of issue 7 (sgd, momentum, nesterov, adam, adamw,
rmsprop, adagrad, adamax); K=32 and K=128: the same eight at 4 and 16 learning rates each
(an lr grid). Digits, MLP (64 hidden), batch 64, no tracking: the engines alone. Each
repeat times both engines back to back (alternating which goes first); the median of the
per-repeat ratios batched / sequential is printed, with the achieved GFLOP/s of the batched
pass against this machine's one-thread matmul peak measured in the same run.

With a CUDA GPU, ``--cuda-configs N`` also trains N digits-MLP configs in one batched pass on
it (set-up included) and prints a single run's steps/s on CUDA and on the CPU beside it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dlopt_core.config import ComparisonConfig, RunConfig
from dlopt_core.device import use_one_thread
from dlopt_core.engine.batched import BatchedEngine
from dlopt_core.engine.loop import load_run_data, run, run_budget
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.sweep import SweepConfig

EIGHT = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adamax")
TARGET_K8 = 0.33  # batched / sequential at K=8, 20 epochs


def _config(k: int, epochs: int, engine: str, device: str = "cpu") -> ComparisonConfig | SweepConfig:
    """K=8: the eight at their default lrs; more: the eight on a shared log lr grid."""
    setup = {"epochs": epochs, "device": device, "engine": engine, "seeds": (0,)}
    if k == len(EIGHT):
        return ComparisonConfig.make(optimizers=tuple({"name": n} for n in EIGHT), **setup)
    return SweepConfig.make(
        optimizers=tuple({"name": n} for n in EIGHT), lr_min=1e-3, lr_max=0.1, points=k // len(EIGHT), **setup
    )


def _elapsed(config: ComparisonConfig | SweepConfig) -> float:
    return Comparison(config).execute().elapsed_s


def _flops(config: ComparisonConfig | SweepConfig) -> float:
    """Multiply-adds x2 of the linear layers: forward + backward (3x forward) per train sample,
    forward per evaluated sample."""
    run_cfg = config.runs()[0]
    data = load_run_data(run_cfg)
    widths = [data.n_features, *run_cfg.model.params["hidden"], data.n_outputs]
    per_sample = sum(2 * a * b for a, b in zip(widths, widths[1:]))
    train = len(data.x_train) * config.epochs
    evals = len(data.x_val) * config.epochs + len(data.x_train)
    return len(config.runs()) * per_sample * (3 * train + evals)


def matmul_peak(size: int = 512, repeats: int = 20) -> float:
    """One-thread float32 GFLOP/s of a square matmul, the best of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def compare_engines(k: int, epochs: int, repeats: int) -> dict[str, float]:
    seq, bat = _config(k, epochs, "sequential"), _config(k, epochs, "batched")
    ratios, t_seq, t_bat = [], [], []
    _elapsed(_config(8, 1, "batched"))  # first-use costs (optimizer imports) outside the timing
    for i in range(repeats):
        if i % 2:
            b, s = _elapsed(bat), _elapsed(seq)
        else:
            s, b = _elapsed(seq), _elapsed(bat)
        t_seq.append(s)
        t_bat.append(b)
        ratios.append(b / s)
    batched = statistics.median(t_bat)
    return {
        "ratio": statistics.median(ratios), "sequential_s": statistics.median(t_seq),
        "batched_s": batched, "gflops": _flops(bat) / batched / 1e9,
    }


def _batched_pass(configs: list[RunConfig], *, compiled: bool = False) -> tuple[float, list[float]]:
    """Seconds of one in-process batched pass, and each run's final validation loss."""
    engine = BatchedEngine(configs, data=load_run_data(configs[0]))
    if compiled:
        engine._loss = torch.compile(engine._loss)  # type: ignore[method-assign]
    start = time.perf_counter()
    final: dict[int, float] = {}
    for k, rec in engine:
        if rec.val_loss is not None:
            final[k] = rec.val_loss
    return time.perf_counter() - start, [final[k] for k in range(len(configs))]


def step_options_probe(epochs: int, repeats: int, compiled: bool) -> None:
    """bf16 autocast and (optionally) torch.compile of the batched forward + loss, against fp32 eager."""
    base = [c for c in _config(8, epochs, "batched").runs()]
    bf16 = [c.model_copy(update={"precision": "bf16"}) for c in base]
    ratios, drift = [], 0.0
    for _ in range(repeats):
        t32, l32 = _batched_pass(base)
        t16, l16 = _batched_pass(bf16)
        ratios.append(t16 / t32)
        drift = max(drift, *(abs(a - b) / a for a, b in zip(l32, l16)))
    print(f"bf16 / fp32 batched time (K=8): {statistics.median(ratios):.2f}; largest final val-loss change {drift:.1%}")
    if compiled:
        t_eager, l_eager = _batched_pass(base)
        first, _ = _batched_pass(base, compiled=True)
        again, l_comp = _batched_pass(base, compiled=True)
        change = max(abs(a - b) / a for a, b in zip(l_eager, l_comp))
        print(
            f"torch.compile'd forward+loss (K=8): first pass {first:.1f} s (compiling), warm {again / t_eager:.2f}x "
            f"eager time; largest final val-loss change {change:.1e}"
        )


def cuda_probe(configs: int, epochs: int) -> None:
    if not torch.cuda.is_available():
        print("cuda: no CUDA GPU here; skipped")
        return
    cfg = _config(8, epochs, "batched", device="cuda").runs()[0]
    single_steps = epochs * run_budget(cfg).steps_per_epoch
    for device in ("cuda", "cpu"):
        c = cfg.model_copy(update={"device": device})
        data = load_run_data(c)
        list(run(c, data=data))  # warm-up
        start = time.perf_counter()
        list(run(c, data=data))
        print(f"single run on {device}: {single_steps / (time.perf_counter() - start):,.0f} steps/s")
    names = [EIGHT[i % len(EIGHT)] for i in range(configs)]
    grid = [
        RunConfig.make(**{**cfg.model_dump(), "optimizer": {"name": n, "lr": 10 ** (-4 + 4 * i / configs)}, "seed": i % 3})
        for i, n in enumerate(names)
    ]
    for attempt in ("warm-up", "timed"):
        torch.cuda.synchronize()
        start = time.perf_counter()
        data = load_run_data(grid[0])
        for _ in BatchedEngine(grid, data=data):
            pass
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if attempt == "timed":
            print(
                f"cuda: {configs} digits-MLP configs x {epochs} epochs in one batched pass: {elapsed:.2f} s "
                f"including set-up ({configs * single_steps / elapsed:,.0f} model-steps/s)"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench batched", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="8,32,128", help="comma-separated numbers of runs (multiples of 8)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cuda-configs", type=int, default=1024)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (30+ s to compile on CPU)")
    args = parser.parse_args(argv)
    use_one_thread()
    peak = matmul_peak()
    print(f"one-thread float32 matmul peak (512x512): {peak:.1f} GFLOP/s")
    print(f"{'K':>5} {'sequential s':>13} {'batched s':>10} {'batched/seq':>12} {'GFLOP/s':>8} {'% of peak':>9}")
    for k in (int(v) for v in args.ks.split(",")):
        r = compare_engines(k, args.epochs, args.repeats)
        print(
            f"{k:>5} {r['sequential_s']:>13.2f} {r['batched_s']:>10.2f} {r['ratio']:>12.3f} "
            f"{r['gflops']:>8.2f} {100 * r['gflops'] / peak:>8.0f}%"
            + (f"   (target <= {TARGET_K8})" if k == 8 else "")
        )
    step_options_probe(args.epochs, args.repeats, args.compile)
    cuda_probe(args.cuda_configs, args.epochs)


if __name__ == "__main__":
    main()
