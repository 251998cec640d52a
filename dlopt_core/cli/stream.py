"""``python -m dlopt_core stream``: learners race on a drifting stream, scored prequentially, with drift detectors."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Collection
from typing import Any

from dlopt_core.cli.common import (
    config_arguments,
    config_argv,
    config_values,
    dumps,
    stop_on_signals,
    table,
    tracking_arguments,
)
from dlopt_core.engine.records import Status
from dlopt_core.experiments.events import tracking_report
from dlopt_core.experiments.observer import tracking_observers
from dlopt_core.experiments.stream import (
    StreamConfig,
    StreamRace,
    detector_rows,
    recovery_rows,
    run_summary,
)
from dlopt_core.runner.plugins import tracking_start
from dlopt_core.stream import BASELINES, POLICIES, STREAMS

SCORES = ("precision", "recall", "mean_time_to_detect", "false_per_1000")


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "stream",
        help="race optimizers and lr policies on a drifting stream (test-then-train), with drift detectors scored",
        description="Each learner (an optimizer, its lr and an lr policy) scores each arriving mini-batch, then trains "
        "on it; every learner sees the same stream and starting weights per seed. Prints per learner its final and "
        "average accuracy and the steps it took to recover after each true drift, and per drift detector (River's "
        "ADWIN, Page-Hinkley, KSWIN on each learner's errors) its precision, recall, time to detect and false alarms "
        "beside an always-fire and a never-fire baseline; logs each run to MLflow.",
    )
    config_arguments(p, StreamConfig, helps={
        "stream": "; ".join(f"{n}: {s.label}" for n, s in STREAMS.items()),
        "learners": "repeatable, e.g. --learners adam:lr=0.01,policy=reset; policies: "
        + "; ".join(f"{k}: {v}" for k, v in POLICIES.items()),
        "seeds": "comma-separated, e.g. 0,1,2 (each draws the stream and the starting weights)",
        "hidden": "comma-separated widths, e.g. 32,16",
        "batch_size": "samples per step: each batch is scored, then trained on (default: 20)",
    }, metavars={"learners": "NAME[:lr=X,policy=P,key=value...]"})
    p.add_argument("--json", action="store_true",
                   help="print the drift points, per learner its curve and recover_steps, per detector its scores")
    tracking_arguments(p, StreamConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> StreamConfig:
    """The race the command line describes."""
    return StreamConfig.make(**config_values(args, StreamConfig))


def argv(config: StreamConfig, *, always: Collection[str] = ()) -> list[str]:
    """The flags after ``stream`` that describe ``config`` (:func:`build_config` gives it back)."""
    return config_argv(config, always=always)


def run(args: argparse.Namespace) -> int:
    """Race, print the tables (or JSON); the exit status (1 if a run did not finish or a write failed)."""
    config = build_config(args)
    # MLflow may print to stdout; stdout is kept for the results (valid JSON with --json).
    with contextlib.redirect_stdout(sys.stderr), stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        observers = [] if args.no_track else tracking_observers(config.KIND, experiment=args.experiment)
        race = StreamRace(config).execute(observers=observers, should_stop=stop.is_set)
    report = tracking_report(observers)
    run_ids, errors, unwritten = report.run_ids, report.errors, report.unwritten
    if args.json:
        print(dumps(race_json(race, run_ids) | {"tracking_errors": errors, "tracking_unwritten": unwritten}))
    else:
        print(f"{config.stream}: {race.n_steps} steps of {config.batch_size}; true drifts (steps): "
              + ", ".join(f"{s}" if s == e else f"{s}-{e}" for s, e in race.drifts))
        print(table(recovery_rows(race)))
        print()
        print(table(detector_rows(race)))
        if run_ids:
            print(f"logged to MLflow experiment {args.experiment!r} (parent run {run_ids.get(-1)})")
    for e in errors:
        print(f"warning: tracking: {e}", file=sys.stderr)
    if stop.exit_status is not None:
        return stop.exit_status
    return 0 if not unwritten and all(r.status is Status.FINISHED for r in race.runs) else 1


def race_json(race: StreamRace, run_ids: dict[int, str]) -> dict[str, Any]:
    """What ``--json`` prints: the drifts, per learner its mean curve and recovery, per detector its scores."""
    cfg = race.config
    learners = []
    for i, (learner, row) in enumerate(zip(cfg.learners, recovery_rows(race), strict=True)):
        runs = race.runs_of(i)
        curves = [r.rolling_accuracy(cfg.window) for r in runs if r.accuracy]
        length = min((len(c) for c in curves), default=0)
        learners.append({
            "learner": learner.label, "spec": learner.to_spec(), "optimizer": learner.name, "lr": learner.lr,
            "policy": learner.policy,
            "final_accuracy": row["final_accuracy"], "average_accuracy": row["average_accuracy"],
            "recover_steps": [row[f"recover_{d + 1}"] for d in range(len(race.drifts))],
            "curve": [statistics.fmean(c[t] for c in curves) for t in range(length)],
            "runs": [{**run_summary(race, r), "mlflow_run_id": run_ids.get(r.index),
                      "alarm_steps": r.alarms, "reset_steps": r.resets} for r in runs],
        })
    detectors = {
        row["name"]: {
            **{k: row[k] for k in SCORES},
            **{b: {k: row[f"{b}_{k}"] for k in SCORES} for b in BASELINES},
        }
        for row in detector_rows(race)
    }
    return {
        "race_id": race.id, "config": cfg.to_dict(), "elapsed_s": race.elapsed_s, "n_steps": race.n_steps,
        "drifts": [list(d) for d in race.drifts], "window": cfg.window, "tolerance": cfg.tolerance,
        "mlflow_parent_run_id": run_ids.get(-1), "learners": learners, "detectors": detectors,
    }
