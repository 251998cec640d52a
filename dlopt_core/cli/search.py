"""``python -m dlopt_core search``: one worker of an Optuna study; several fill one study together.

Start it in several processes, or on several machines with ``--storage`` (or
``$DLOPT_OPTUNA_STORAGE``) naming a shared PostgreSQL: each takes trials until the study
holds ``--n-trials`` finished ones, never more. SIGTERM or Ctrl-C end the running trial as
cancelled (it does not count) and start no new one.

Study logging is found through the ``dlopt.tracking`` entry point group
(:func:`~dlopt_core.experiments.observer.tracking_observers`), so the core never imports a tracking backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, get_args

import optuna

from dlopt_core.cli.common import (
    config_argv,
    config_arguments,
    config_values,
    dumps,
    lr_bounds,
    stop_on_signals,
    table,
    tracking_arguments,
)
from dlopt_core.config import EngineChoice
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.observer import tracking_observers
from dlopt_core.experiments.study.worker import run_worker
from dlopt_core.experiments.study_storage import ENV_STORAGE, StorageUnavailable, study_storage
from dlopt_core.runner.plugins import tracking_start

# The search bounds are one flag, --lr-range LOW:HIGH.
_BOUNDS = ("lr_min", "lr_max")


def add_parser(subparsers: Any) -> None:
    """Add ``search`` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "search",
        help="an Optuna worker: search one optimizer's learning rate in a shared study",
        description="Run trials of an Optuna study (lr on a log scale; optionally the optimizer's other "
        "hyperparameters, the schedule, the batch size) until it holds --n-trials finished trials, "
        "together with every other worker on the same study and storage. Prints the study's state.",
    )
    config_arguments(p, StudyConfig, skip=_BOUNDS, required=("optimizer",), metavars={
        "optimizer": "NAME[:key=value...]", "study_name": "NAME",
    }, helps={
        "optimizer": "the optimizer and its fixed hyperparameters, e.g. sgd:momentum=0.9 (its lr is searched)",
        "study_name": "the study's name (default: the optimizer and a hash of the setup); resumes if it exists",
        "n_trials": "finished trials the study holds in all, over every worker",
        "sampler": "grid: a log grid of n-trials rates; cmaes: continuous parameters only",
        "pruner": "hyperband: successive halving brackets",
        "metric": "val_loss is minimised, val_metric maximised",
        "search_hyperparams": "also search the optimizer's numeric hyperparameters",
        "search_schedule": "also choose among the registry's schedules",
        "search_batch_size": "also choose a batch size (powers of two)",
        "seed": "every trial's run seed",
    })
    p.add_argument("--lr-range", default=None, metavar="LOW:HIGH",
                   help="search bounds (default: the registry's range widened 3x at each end)")
    # Kept so that older command lines still run: a trial is one run, there is nothing to batch.
    p.add_argument("--engine", default=None, choices=get_args(EngineChoice), help="no effect (a trial is one run)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help=f"postgresql+psycopg://user@host/db, sqlite:///path, journal:/path or memory (default: "
                   f"${ENV_STORAGE}, else a journal file under $DLOPT_HOME)")
    p.add_argument("--worker", type=int, default=None, metavar="N",
                   help="this worker's number, for reproducible sampling (default: a fresh sampler seed)")
    p.add_argument("--json", action="store_true", help="print the study's state as JSON")
    tracking_arguments(p, StudyConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> StudyConfig:
    """The study the command line describes."""
    return StudyConfig.make(**config_values(args, StudyConfig, skip=_BOUNDS), **lr_bounds(args.lr_range))


def argv(config: StudyConfig) -> list[str]:
    """The flags after ``search`` that describe ``config`` (:func:`build_config` gives it back)."""
    return [*config_argv(config, skip=_BOUNDS, always=("optimizer",)), "--lr-range", f"{config.lr_min!r}:{config.lr_max!r}"]


def run(args: argparse.Namespace) -> int:
    """Be one worker of the study; print its state.

    0: the study is full; 1: the storage cannot be opened, or tracking failed; 128+N: stopped by signal N.
    """
    config = build_config(args)
    try:
        storage = study_storage(args.storage)
    except StorageUnavailable as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    if note := config.schedule_note:
        print(f"note: schedule: {note}", file=sys.stderr)
    # Optuna logs every trial, and a traceback for each cancelled or surplus one, which end
    # FAIL on purpose; the result is printed below.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # stdout is kept for the result (valid JSON with --json); MLflow may print there.
    with contextlib.redirect_stdout(sys.stderr), stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        observers = [] if args.no_track else tracking_observers(StudyConfig.KIND, experiment=args.experiment)
        summary = run_worker(config, storage, should_stop=stop.is_set, observers=observers, worker=args.worker)
    parent = next((o.parent_run_id for o in observers if getattr(o, "parent_run_id", None)), None)
    if args.json:
        print(dumps({**summary.to_json(), "mlflow_parent_run_id": parent}))
    else:
        print(f"study {summary.study_name!r} in {summary.storage_url}: {summary.finished}/{summary.n_trials} finished "
              f"({', '.join(f'{k} {v}' for k, v in summary.counts.items() if v)})")
        rows = [{"trial": t.number, "state": t.state, "lr": t.lr, config.metric: t.value,
                 "diverged at step": t.diverged_step, "note": t.note} for t in summary.trials]
        if rows:
            print(table(rows))
        if summary.best is not None:
            edge = " (on the edge of the range: widen it)" if summary.best_on_edge else ""
            print(f"best: trial {summary.best.number}, lr {summary.best.lr:.3g}, {config.metric} {summary.best.value:.4g}{edge}")
    for e in summary.errors:
        print(f"warning: tracking: {e}", file=sys.stderr)
    if stop.exit_status is not None:
        return stop.exit_status
    return 0 if summary.done and not summary.errors else 1
