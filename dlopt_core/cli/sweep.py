"""``python -m dlopt_core sweep``: learning-rate sensitivity, every optimizer at every lr of a log grid."""

from __future__ import annotations

import argparse
from typing import Any

from dlopt_core.cli.common import dumps, execute, optimizer_arg, setup_arguments, setup_values, table
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.compare import metric_name
from dlopt_core.experiments.sweep import SweepConfig, best_lrs, sweep_points


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "sweep",
        help="learning-rate sensitivity: every optimizer at every lr of a log grid, over seeds",
        description="Train optimizers x a log-spaced lr grid x seeds (batched where it applies); "
        "print each optimizer's final validation loss per lr and its best lr. Logged to MLflow "
        "as one parent run per sweep with a child run per (optimizer, lr, seed).",
    )
    setup_arguments(p)
    optimizer_arg(p)
    p.add_argument("--lr-range", default="1e-4:1", metavar="LOW:HIGH", help="log-spaced grid bounds")
    p.add_argument("--points", type=int, default=12, help="learning rates in the grid")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--json", action="store_true",
                   help="print every (optimizer, lr, seed) final metrics, best_lr per optimizer and elapsed_s")
    p.add_argument("--experiment", default=SweepConfig.EXPERIMENT, help="MLflow experiment name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the sweep, print each optimizer's loss per lr and its best lr (or JSON); the exit status."""
    low, sep, high = args.lr_range.partition(":")
    try:
        lr_min, lr_max = float(low), float(high)
    except ValueError:
        raise ConfigError(f"lr-range: write LOW:HIGH, e.g. 1e-4:1 (got {args.lr_range!r})") from None
    config = SweepConfig.make(**setup_values(args), lr_min=lr_min, lr_max=lr_max, points=args.points)
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
