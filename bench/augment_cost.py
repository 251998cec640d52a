"""What augmentation adds to a training step: each augmentation's batch transform against the step.

Digits MLP (64 hidden), batch 256, Adam, on the CPU with one torch thread (as the app runs
jobs). For each augmentation: the median time of a plain step (forward, backward, update) and
of the same step with the transform first, measured interleaved, and their ratio minus one:
the share added to a step. Target (issue 10): at most 30 % at batch 256.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dlopt_core.catalog.augmentations import AUGMENTATIONS, BatchInfo
from dlopt_core.catalog.models import build_model, loss_fn
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import ModelConfig
from dlopt_core.device import use_one_thread
from dlopt_core.catalog.datasets import load_dataset
from dlopt_core.engine.step import StepHooks, build_step

TARGET = 0.30


def _median_step_s(step, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    for _ in range(5):  # warm-up: first calls allocate
        step(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench augment_cost", description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    use_one_thread()
    data = load_dataset("digits", {}, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))
    x, y = data.x_train[: args.batch], data.y_train[: args.batch]
    info = BatchInfo(data.image_shape, data.n_classes)
    spec = get_optimizer("adam")

    def step_with(transform) -> object:
        model = build_model(ModelConfig.make(name="mlp"), data, 0)
        defaults = {p.name: p.default for p in spec.hyperparams}
        optimizer = spec.build(list(model.named_parameters()), 1e-3, defaults, torch.device("cpu"))
        return build_step(model, optimizer, loss_fn(data), hooks=StepHooks(batch_transform=transform))

    print(f"augmentation cost per step: digits MLP, batch {args.batch}, Adam, 1 thread; medians of "
          f"{args.repeats} interleaved repeats of {args.steps} steps")
    print(f"{'augmentation':<12} {'step ms':>8} {'with ms':>8} {'added':>7}  target <= {TARGET:.0%}")
    worst = 0.0
    for name, aug in AUGMENTATIONS.items():
        transform = aug.make({p.name: p.default for p in aug.hyperparams}, info)
        plain_step, aug_step = step_with(None), step_with(transform)
        ratios, plains, augs = [], [], []
        for _ in range(args.repeats):
            plain = _median_step_s(plain_step, x, y, args.steps)
            augmented = _median_step_s(aug_step, x, y, args.steps)
            plains.append(plain)
            augs.append(augmented)
            ratios.append(augmented / plain - 1)
        added = statistics.median(ratios)
        worst = max(worst, added)
        print(f"{name:<12} {statistics.median(plains) * 1e3:8.3f} {statistics.median(augs) * 1e3:8.3f} {added:7.1%}"
              f"  {'OK' if added <= TARGET else 'over'}")
    print(f"largest share added: {worst:.1%} ({'within' if worst <= TARGET else 'over'} the {TARGET:.0%} target)")


if __name__ == "__main__":
    main()
