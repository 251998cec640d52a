"""``python -m dlopt_core sweep``: learning-rate sensitivity, every optimizer at every lr of a log grid."""

from __future__ import annotations

import argparse
from typing import Any

from dlopt_core.cli.common import (
    config_argv,
    config_arguments,
    config_values,
    default_text,
    dumps,
    execute,
    lr_bounds,
    table,
    tracking_arguments,
)
from dlopt_core.experiments.compare import metric_name
from dlopt_core.experiments.sweep import SweepConfig, best_lrs, sweep_points

# The grid's bounds are one flag, --lr-range LOW:HIGH.
_BOUNDS = ("lr_min", "lr_max")


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "sweep",
        help="learning-rate sensitivity: every optimizer at every lr of a log grid, over seeds",
        description="Train optimizers x a log-spaced lr grid x seeds (batched where it applies); "
        "print each optimizer's final validation loss per lr and its best lr. Logged to MLflow "
        "as one parent run per sweep with a child run per (optimizer, lr, seed).",
    )
    config_arguments(p, SweepConfig, skip=_BOUNDS, helps={"points": "learning rates in the grid"})
    low, high = (default_text(SweepConfig, f) for f in _BOUNDS)
    p.add_argument("--lr-range", default=None, metavar="LOW:HIGH", help=f"log-spaced grid bounds (default: {low}:{high})")
    p.add_argument("--json", action="store_true",
                   help="print every (optimizer, lr, seed) final metrics, best_lr per optimizer and elapsed_s")
    tracking_arguments(p, SweepConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> SweepConfig:
    """The sweep the command line describes."""
    return SweepConfig.make(**config_values(args, SweepConfig, skip=_BOUNDS), **lr_bounds(args.lr_range))


def argv(config: SweepConfig) -> list[str]:
    """The flags after ``sweep`` that describe ``config`` (:func:`build_config` gives it back)."""
    return [*config_argv(config, skip=_BOUNDS), "--lr-range", f"{config.lr_min!r}:{config.lr_max!r}"]


def run(args: argparse.Namespace) -> int:
    """Train the sweep, print each optimizer's loss per lr and its best lr (or JSON); the exit status."""
    config = build_config(args)
    done = execute(config, args, parent=config.parent_name())
    comparison = done.comparison
    points = sweep_points(comparison)
    best = best_lrs(points, config.lrs())
    if args.json:
        out = {
            "comparison_id": comparison.id,
            "config": config.to_dict(),
            "lrs": config.lrs(),
            "elapsed_s": comparison.elapsed_s,
            "runs": [
                {
                    "optimizer": r.config.optimizer.name, "lr": r.config.optimizer.lr, "seed": r.config.seed,
                    "status": str(r.status), "engine": r.engine, "mlflow_run_id": done.run_ids.get(r.index),
                    **{k: getattr(last, k) if last else None for k in ("epoch", "running_loss", "val_loss", "val_metric")},
                }
                for r in comparison.runs
                for last in [next((rec for rec in reversed(r.records) if rec.is_eval), None)]
            ],
            "best_lr": {name: b.lr for name, b in best.items()},
            "best_on_edge": {name: b.on_edge for name, b in best.items()},
            "mlflow_parent_run_id": done.run_ids.get(-1),
            "tracking_errors": done.errors,
            "tracking_unwritten": done.unwritten,
        }
        print(dumps(out))
    else:
        metric = metric_name(config)
        rows = [
            {"optimizer": p.label, "lr": p.lr, "val loss": p.mean_loss, "± sd": p.sd_loss if p.mean_loss is not None else None,
             metric: p.mean_metric, "diverged seeds": p.diverged}
            for p in points
        ]
        print(table(rows))
        for b in best.values():
            edge = " (on the edge of the range: widen it)" if b.on_edge else ""
            print(f"best lr for {b.label}: {b.lr:.3g}, val loss {b.loss:.4g}{edge}")
    return done.report(printed_table=not args.json)
