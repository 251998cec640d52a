"""``python -m dlopt_core continual``: optimizers x strategies x seeds learning a task sequence in turn."""

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
from dlopt_core.continual import SEQUENCES, STRATEGIES
from dlopt_core.engine.records import Status
from dlopt_core.experiments.continual import MEASURES, Continual, ContinualConfig, mean_matrix, summarize, summary_rows
from dlopt_core.experiments.events import tracking_report
from dlopt_core.experiments.observer import tracking_observers
from dlopt_core.runner.plugins import tracking_start


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "continual",
        help="continual learning: which optimizer and strategy (naive, replay, EWC) forgets least over a task sequence",
        description="Train one model per optimizer x strategy x seed on each task of a sequence in turn (split, "
        "permuted or rotated digits), test it on every task after each, and print the accuracy matrix, average "
        "accuracy, forgetting and backward / forward transfer; log each run to MLflow.",
    )
    config_arguments(p, ContinualConfig, helps={
        "sequence": "; ".join(f"{n}: {s.description}" for n, s in SEQUENCES.items()),
        "strategies": "comma-separated; " + "; ".join(f"{n}: {s.description}" for n, s in STRATEGIES.items()),
        "optimizers": "repeatable, e.g. --optimizer sgd:lr=0.1 --optimizer adam",
        "epochs": "epochs per task",
        "batch_size": "rows per step (replay adds as many stored rows)",
    }, metavars={"strategies": "NAME,..."})
    p.add_argument("--json", action="store_true",
                   help="print per optimizer x strategy the accuracy matrix (rows: after each task), average "
                   "accuracy, forgetting, bwt, fwt, and each seed's run")
    tracking_arguments(p, ContinualConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> ContinualConfig:
    """The experiment the command line describes."""
    return ContinualConfig.make(**config_values(args, ContinualConfig))


def argv(config: ContinualConfig, *, always: Collection[str] = ()) -> list[str]:
    """The flags after ``continual`` that describe ``config`` (:func:`build_config` gives it back)."""
    return config_argv(config, always=always)


def run(args: argparse.Namespace) -> int:
    """Train, print the table (or JSON); the exit status (1 if a run did not finish or a write failed)."""
    config = build_config(args)
    # MLflow may print to stdout; stdout is kept for the results (valid JSON with --json).
    with contextlib.redirect_stdout(sys.stderr), stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        observers = [] if args.no_track else tracking_observers(config.KIND, experiment=args.experiment)
        continual = Continual(config).execute(observers=observers, should_stop=stop.is_set)
    report = tracking_report(observers)
    run_ids, errors, unwritten = report.run_ids, report.errors, report.unwritten
    if args.json:
        print(dumps({
            "continual_id": continual.id,
            "config": config.to_dict(),
            "tasks": list(config.tasks),
            "elapsed_s": continual.elapsed_s,
            "mlflow_parent_run_id": run_ids.get(-1),
            "results": results(continual, run_ids),
            "tracking_errors": errors,
            "tracking_unwritten": unwritten,
        }))
    else:
        print(f"{config.sequence}: {', '.join(config.tasks)}; {continual.elapsed_s:.1f} s")
        print(table(summary_rows(continual)))
        if run_ids:
            print(f"logged to MLflow experiment {args.experiment!r} (parent run {run_ids.get(-1)})")
    for e in errors:
        print(f"warning: tracking: {e}", file=sys.stderr)
    if stop.exit_status is not None:
        return stop.exit_status
    return 0 if not unwritten and all(r.status is Status.FINISHED for r in continual.runs) else 1


def results(continual: Continual, run_ids: dict[int, str]) -> list[dict[str, Any]]:
    """Per optimizer x strategy: the mean accuracy matrix, each measure's mean and sd, and each seed's run."""
    out = []
    for s in summarize(continual):
        out.append({
            "optimizer": s.optimizer,
            "strategy": s.strategy,
            "matrix": mean_matrix(continual, s.optimizer, s.strategy),
            **{k: v for m in MEASURES for k, v in ((m, s.means[m]), (f"{m}_sd", s.sds[m]))},
            "anytime_accuracy": s.anytime,
            "finished": s.finished,
            "runs": [
                {"seed": r.seed, "status": r.status_text, "matrix": r.rows, "initial": r.initial, **r.measures,
                 "train_s": r.elapsed_s, "mlflow_run_id": run_ids.get(r.index)}
                for r in continual.runs_of(s.optimizer, s.strategy)
            ],
        })
    return out
