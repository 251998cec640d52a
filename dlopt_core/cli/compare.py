"""``python -m dlopt_core compare``: every optimizer for every seed on one setup, as a results table."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

from dlopt_core.cli.common import config_argv, config_arguments, config_values, dumps, execute, table, tracking_arguments
from dlopt_core.config import ComparisonConfig
from dlopt_core.experiments.compare import RunResult, summary_rows


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "compare",
        help="run a comparison of optimizers and print a results table",
        description="Run every optimizer for every seed on one setup; log each run to MLflow.",
    )
    config_arguments(p, ComparisonConfig, helps={
        "target_loss": "report the steps each optimizer takes to reach this train loss (default: 90% of the way "
        "from the start to the optimum for linear models, else to the lowest loss any run reached)",
    })
    p.add_argument("--json", action="store_true", help="print machine-readable results (elapsed_s: total training time)")
    tracking_arguments(p, ComparisonConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> ComparisonConfig:
    """The comparison the command line describes."""
    return ComparisonConfig.make(**config_values(args, ComparisonConfig))


def argv(config: ComparisonConfig, *, always: Collection[str] = ()) -> list[str]:
    """The flags after ``compare`` that describe ``config`` (:func:`build_config` gives it back);
    ``always``: fields written even at their defaults."""
    return config_argv(config, always=always)


def run(args: argparse.Namespace) -> int:
    """Train the comparison, print its table (or JSON); the exit status."""
    config = build_config(args)
    done = execute(config, args)
    comparison = done.comparison
    rows = summary_rows(comparison)
    if args.json:
        out = {
            "comparison_id": comparison.id,
            "config": config.to_dict(),
            "elapsed_s": comparison.elapsed_s,
            "optimum": comparison.optimum,
            "summary": rows,
            "runs": [_run_json(r, done.run_ids) for r in comparison.runs],
            "tracking_errors": done.errors,
            "tracking_unwritten": done.unwritten,
        }
        print(dumps(out))
    else:
        print(table(rows))
    return done.report(printed_table=not args.json)


def _run_json(run: RunResult, run_ids: dict[int, str]) -> dict[str, Any]:
    return {
        "optimizer": run.config.optimizer.to_spec(),
        "seed": run.config.seed,
        "status": str(run.status),
        "diverged_step": run.diverged_step,
        "steps": run.steps,
        "wall_time": run.wall_time,
        "engine": run.engine,
        "mlflow_run_id": run_ids.get(run.index),
        "evaluations": [
            {
                k: getattr(rec, k)
                for k in ("step", "epoch", "train_loss", "running_loss", "val_loss", "val_metric", "lr", "wall_time")
            }
            for rec in run.records
            if rec.is_eval
        ],
    }
