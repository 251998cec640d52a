"""A TPE study with the median pruner against a log-lr grid: best validation loss and training steps.

``python -m bench study_vs_grid [--trials 20] [--repeats 3] [--epochs 3] [--pruner median]``

Digits, MLP, Adam, ``--epochs`` epochs per trial, over Adam's default search range (the
registry's lr range widened by 3 at each end). Both sides are studies through the project's
own API (:func:`dlopt_core.experiments.study.run_worker`, in-memory storage) with the same
objective, the final validation loss:

- *TPE*: the TPE sampler with the median pruner (``--pruner``: any of the study's pruners),
  ``--trials`` trials; each repeat uses another sampler seed (``worker=r``), the runs themselves
  keep seed 0.
- *grid*: the grid sampler with no pruner, ``--trials`` log-spaced lrs over the same range,
  every one a full run. It samples nothing at random, so it is trained once and each repeat
  is compared with it.

Training steps count what was trained: a complete trial ``epochs x steps per epoch``, a pruned
one the epochs it reported, a diverged one the step it diverged at. Trials report once per
epoch, so every trial trains at least one epoch: the steps ratio cannot go below ``1 / epochs``,
and the line before the medians says how many trials can run all their epochs within the
target (with 3 epochs and 20 trials: 5 of 20). Printed per repeat and as medians: best-loss
ratio TPE / grid (target <= 1.05) and steps ratio TPE / grid (target <= 0.5). Steps and losses
do not depend on the machine's load, so there is no timing here.
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

TARGET_LOSS = 1.05  # TPE's best validation loss / the grid's
TARGET_STEPS = 0.5  # TPE's training steps / the grid's


def _config(sampler: str, pruner: str, trials: int, epochs: int, name: str) -> Any:
    from dlopt_core.experiments.study.config import StudyConfig

    return StudyConfig.make(
        data={"name": "digits"}, model={"name": "mlp"}, epochs=epochs, optimizer={"name": "adam"},
        sampler=sampler, pruner=pruner, n_trials=trials, study_name=name,
    )


def _steps_per_epoch(config: Any) -> int:
    from dlopt_core.engine.loop import run_budget

    run_config = config.trial_config({"lr": config.lr_min})
    return run_budget(run_config).steps_per_epoch


def search(sampler: str, pruner: str, trials: int, epochs: int, worker: int) -> dict[str, Any]:
    """One study of ``trials`` trials on a fresh in-memory storage: best loss, its lr, steps trained."""
    import optuna

    from dlopt_core.experiments.study.worker import run_worker
    from dlopt_core.experiments.study_storage import study_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = _config(sampler, pruner, trials, epochs, f"{sampler}-{pruner}-{worker}")
    summary = run_worker(config, study_storage("memory"), worker=worker)
    assert summary.finished == trials, summary.counts
    per_epoch = _steps_per_epoch(config)
    steps = 0
    for t in summary.trials:
        if t.state not in ("complete", "pruned"):
            continue  # surplus / cancelled: nothing trained (one worker: none)
        if t.diverged_step is not None:
            steps += t.diverged_step
        elif t.state == "pruned":
            steps += max(t.intermediate) * per_epoch
        else:
            steps += epochs * per_epoch
    assert summary.best is not None and summary.best.value is not None
    return {"best_loss": summary.best.value, "best_lr": summary.best.lr, "steps": steps,
            "pruned": summary.counts.get("pruned", 0), "lr_range": summary.lr_range}


def main(argv: list[str] | None = None) -> None:
    from dlopt_core.experiments.study.config import PRUNERS

    parser = argparse.ArgumentParser(prog="python -m bench study_vs_grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials of the TPE study and points of the grid")
    parser.add_argument("--repeats", type=int, default=3, help="TPE studies with different sampler seeds")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--pruner", choices=PRUNERS, default="median", help="the TPE study's pruner")
    args = parser.parse_args(argv)
    grid = search("grid", "none", args.trials, args.epochs, worker=0)
    low, high = grid["lr_range"]
    print(
        f"digits MLP, Adam, {args.epochs} epochs per trial, lr in [{low:g}, {high:g}] (log), {args.trials} trials, "
        f"TPE with pruner {args.pruner!r}"
    )
    print(f"{'':>8} {'best val loss':>14} {'best lr':>10} {'steps':>7} {'pruned':>7} {'loss TPE/grid':>14} {'steps TPE/grid':>15}")
    print(f"{'grid':>8} {grid['best_loss']:>14.4f} {grid['best_lr']:>10.3g} {grid['steps']:>7} {grid['pruned']:>7}")
    loss_ratios, step_ratios = [], []
    for r in range(args.repeats):
        tpe = search("tpe", args.pruner, args.trials, args.epochs, worker=r)
        loss_ratios.append(tpe["best_loss"] / grid["best_loss"])
        step_ratios.append(tpe["steps"] / grid["steps"])
        print(
            f"{f'TPE w={r}':>8} {tpe['best_loss']:>14.4f} {tpe['best_lr']:>10.3g} {tpe['steps']:>7} {tpe['pruned']:>7} "
            f"{loss_ratios[-1]:>14.3f} {step_ratios[-1]:>15.3f}"
        )
    if args.epochs > 1:
        # In epochs: every trial trains its first; the target leaves `extra` more for all of them.
        extra = max(math.floor(TARGET_STEPS * args.trials * args.epochs - args.trials + 1e-9), 0)
        print(
            f"steps ratio floor {1 / args.epochs:.3f} (every trial stopped after its first epoch); the target "
            f"leaves {extra} epochs beyond those: at most {extra // (args.epochs - 1)} of {args.trials} trials "
            f"can run all {args.epochs} epochs"
        )
    print(
        f"median over {args.repeats}: best-loss ratio TPE/grid {statistics.median(loss_ratios):.3f} "
        f"(target <= {TARGET_LOSS}), steps ratio TPE/grid {statistics.median(step_ratios):.3f} "
        f"(target <= {TARGET_STEPS})"
    )


if __name__ == "__main__":
    main()
