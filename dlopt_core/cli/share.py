"""``python -m dlopt_core share``: the variants of one sharing family x seeds, with the really-shared checks."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Collection
from typing import Any

from dlopt_core.cli.common import (
    config_argv,
    config_arguments,
    config_values,
    dumps,
    stop_on_signals,
    table,
    tracking_arguments,
)
from dlopt_core.engine.records import Status
from dlopt_core.experiments.events import tracking_report
from dlopt_core.experiments.observer import tracking_observers
from dlopt_core.experiments.share import Share, ShareConfig, summary_rows
from dlopt_core.runner.plugins import tracking_start
from dlopt_core.sharing import FAMILIES, get_task


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "share",
        help="compare parameter sharing (tied weights, cross-layer, multi-task) with checks that it really shares",
        description="Train every variant of one sharing family for every seed on the digits; check from the built "
        "model and optimizer that shared tensors are shared; log each run to MLflow.",
    )
    families = "; ".join(f"{n}: {', '.join(f.variants)}" for n, f in FAMILIES.items())
    config_arguments(p, ShareConfig, helps={
        "variants": f"comma-separated, of the family (default: all of it); {families}",
        "optimizer": "a mini-batch optimizer (not L-BFGS), e.g. sgd:lr=0.1,momentum=0.9",
        "batch_size": "rows per step",
    })
    p.add_argument("--json", action="store_true", help="print one row per variant x seed and a summary per variant")
    tracking_arguments(p, ShareConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> ShareConfig:
    """The experiment the command line describes."""
    return ShareConfig.make(**config_values(args, ShareConfig))


def argv(config: ShareConfig, *, always: Collection[str] = ()) -> list[str]:
    """The flags after ``share`` that describe ``config`` (:func:`build_config` gives it back)."""
    return config_argv(config, always=always)


def run(args: argparse.Namespace) -> int:
    """Train, print the table (or JSON); the exit status (1 if a run did not finish or a write failed)."""
    config = build_config(args)
    # MLflow may print to stdout; stdout is kept for the results (valid JSON with --json).
    with contextlib.redirect_stdout(sys.stderr), stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        observers = [] if args.no_track else tracking_observers(config.KIND, experiment=args.experiment)
        share = Share(config).execute(observers=observers, should_stop=stop.is_set)
    report = tracking_report(observers)
    run_ids, errors, unwritten = report.run_ids, report.errors, report.unwritten
    rows = summary_rows(share)
    if args.json:
        print(dumps({
            "share_id": share.id,
            "config": config.to_dict(),
            "elapsed_s": share.elapsed_s,
            "mlflow_parent_run_id": run_ids.get(-1),
            "summary": rows,
            "checks": {v: c.to_dict() for v, c in share.checks.items()},
            "runs": [_run_json(share, r, run_ids) for r in share.runs],
            "tracking_errors": errors,
            "tracking_unwritten": unwritten,
        }))
    else:
        print(table(rows))
        if run_ids:
            print(f"logged to MLflow experiment {args.experiment!r} (parent run {run_ids.get(-1)})")
    for e in errors:
        print(f"warning: tracking: {e}", file=sys.stderr)
    if stop.exit_status is not None:
        return stop.exit_status
    return 0 if not unwritten and all(r.status is Status.FINISHED for r in share.runs) else 1


def _run_json(share: Share, run: Any, run_ids: dict[int, str]) -> dict[str, Any]:
    check = share.checks.get(run.variant)
    return {
        "variant": run.label,
        "name": run.variant,
        "seed": run.seed,
        "status": str(run.status),
        "diverged_step": run.diverged_step,
        "params": check.params if check else None,
        **{get_task(t).metric_key: v for t, v in run.final.items()},
        "train_s": run.elapsed_s,
        **(check.flags() if check else {}),
        "mlflow_run_id": run_ids.get(run.index),
        "epochs": [
            {"epoch": row.epoch, "train_loss": row.train_loss, "elapsed_s": row.elapsed_s,
             **{get_task(t).metric_key: v for t, v in row.metrics.items()},
             **({"cosines": row.cosines} if row.cosines else {})}
            for row in run.rows
        ],
    }
