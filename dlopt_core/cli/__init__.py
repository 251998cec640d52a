"""Command line: the same engine the pages drive.

Run logging is found through the ``dlopt.observers`` entry point group (the ``tracking``
package registers MLflow there), so the core never imports a tracking backend itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from dlopt_core.experiments.compare import Comparison, RunObserver, RunResult, metric_name, summary_rows
from dlopt_core.experiments.lr_range import SUGGESTION_LABELS, SUGGESTIONS, LRRangeConfig, LRRangeResult, run_lr_range
from dlopt_core.experiments.sweep import SweepConfig, best_lrs, sweep_points
from dlopt_core.config import (
    AugmentConfig, ComparisonConfig, Device, EngineChoice, ModelConfig, OptimizerConfig, Precision,
    ReduceConfig,
)
from dlopt_core.catalog.augmentations import AUGMENTATIONS
from dlopt_core.catalog.compressions import COMPRESSIONS
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.uploads.parse import parse_upload
from dlopt_core.uploads.store import store_table
from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.errors import ConfigError
from dlopt_core.catalog.functions import FUNCTIONS
from dlopt_core.experiments.landscape import LandscapeConfig, run_landscape, tune_lr
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.hyperparams import parse_spec
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.engine.records import Record
from dlopt_core.runner.plugins import tracking_observers, tracking_start
from dlopt_core.cli import compress, search


def _options(parser: argparse.ArgumentParser, flag: str, example: str) -> None:
    parser.add_argument(
        flag, action="append", default=[], metavar="KEY=VALUE", help=f"e.g. {example} (repeatable)"
    )


def _optimizer_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--optimizer", action="append", required=True, metavar="NAME[:lr=X,key=value...]",
        help=f"repeatable; names: {', '.join(OPTIMIZERS)}",
    )


def _option_values(items: list[str]) -> dict[str, str]:
    return {k: v for item in items for k, v in parse_spec(f"x:{item}")[1].items()}


def _setup_arguments(parser: argparse.ArgumentParser, *, training: bool = True) -> None:
    """What every training command shares: data, model, schedule, budget, device, engine.

    ``training=False`` leaves out what a command that sets the lr of every step itself and
    logs nothing has no use for (schedule, epochs, engine, tracking): the LR range test.
    """
    parser.add_argument("--dataset", default="digits", help=f"one of: {', '.join(DATASETS)}")
    parser.add_argument(
        "--csv", default=None, metavar="PATH",
        help="train on your own CSV instead (numeric features and one target column; checked, never executed)",
    )
    parser.add_argument(
        "--npz", default=None, metavar="PATH",
        help="train on arrays x and y saved with np.savez (images as (rows, height, width); no pickles are read)",
    )
    parser.add_argument(
        "--idx", default=None, nargs=2, metavar=("IMAGES", "LABELS"),
        help="train on MNIST-format idx files, gzipped or not (e.g. train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz)",
    )
    parser.add_argument("--target", default=None, metavar="COLUMN", help="with --csv: the column to predict")
    parser.add_argument(
        "--task", default="auto", choices=("auto", "classification", "regression"),
        help="with --csv, --npz or --idx: auto reads text or at most 20 whole-number values as classes",
    )
    _options(parser, "--dataset-option", "noise=0.3 or condition_number=1000")
    parser.add_argument(
        "--model", default="mlp", metavar="NAME[:key=value...]",
        help="e.g. mlp:hidden=128/64,activation=tanh,dropout=0.1 or cnn:channels=8/16; "
        + "; ".join(f"{n}: {', '.join(p.name for p in m.hyperparams) or 'no options'}" for n, m in MODELS.items()),
    )
    if training:
        parser.add_argument(
            "--schedule", default="constant", metavar="NAME[:key=value...]",
            help=f"lr schedule; names: {', '.join(SCHEDULES)}",
        )
        parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", default="64", help="an integer, or 'full' for full-batch GD")
    parser.add_argument("--device", default="auto", choices=get_args(Device))
    parser.add_argument(
        "--precision", default="fp32", choices=get_args(Precision),
        help="mixed precision through autocast (fp16 adds loss scaling)",
    )
    parser.add_argument("--grad-clip", type=float, default=None, metavar="NORM", help="clip the gradient norm")
    parser.add_argument(
        "--reduce", default=None, metavar="NAME[:key=value...]",
        help=f"shrink the training data first, e.g. subsample:fraction=0.1 or pca:components=8; names: {', '.join(REDUCTIONS)}",
    )
    parser.add_argument(
        "--augment", action="append", default=[], metavar="NAME[:key=value...]",
        help="augment each training batch (repeatable, applied in order), e.g. --augment flip "
        f"--augment noise:std=0.1 --augment mixup:alpha=0.2; names: {', '.join(AUGMENTATIONS)}",
    )
    parser.add_argument(
        "--fast-nondeterministic", action="store_true",
        help="on CUDA, let cuDNN pick the fastest (non-reproducible) kernels; runs are reproducible by default",
    )
    if not training:
        return
    parser.add_argument(
        "--engine", default="auto", choices=get_args(EngineChoice),
        help="batched: runs of one model shape train as one stacked model (same curves, faster); "
        "auto: batched for groups of 2 or more; runs that cannot be batched (L-BFGS, Muon, CNN, fp16, augmented) "
        "always train on their own",
    )
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")


def _data_values(args: argparse.Namespace) -> dict[str, Any]:
    """``--dataset`` with its options, or your own file (``--csv``, ``--npz``, ``--idx``): checked
    and stored under $DLOPT_HOME by its content hash."""
    given = [flag for flag in ("csv", "npz", "idx") if getattr(args, flag) is not None]
    if not given:
        return {"name": args.dataset, "options": _option_values(args.dataset_option)}
    if len(given) > 1:
        raise ConfigError(f"data: give one of --{' or --'.join(given)}, not both")
    if args.csv is not None and not args.target:
        raise ConfigError("target: --csv needs --target COLUMN, the column to predict")
    paths = [args.csv] if args.csv is not None else [args.npz] if args.npz is not None else list(args.idx)
    files = []
    for path in paths:
        try:
            files.append((Path(path).name, Path(path).read_bytes()))
        except OSError as err:
            raise ConfigError(f"{given[0]}: cannot read {path!r}: {err.strerror}") from None
    if args.csv is None and args.target:
        raise ConfigError(f"target: --{given[0]} files name their target (y, or the labels file); leave out --target")
    return {"name": store_table(parse_upload(files, target=args.target, task=args.task, kind=given[0]))}


def _shared_setup_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values of ``_setup_arguments(..., training=False)``."""
    return {
        "data": _data_values(args),
        "model": ModelConfig.parse(args.model),
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "grad_clip": args.grad_clip,
        "deterministic": not args.fast_nondeterministic,
        "augment": tuple(AugmentConfig.parse(text) for text in args.augment),
        "reduce": ReduceConfig.parse(args.reduce) if args.reduce else None,
    }


def _setup_values(args: argparse.Namespace) -> dict[str, Any]:
    schedule, schedule_params = parse_spec(args.schedule)
    return {
        **_shared_setup_values(args),
        "schedule": {"name": schedule, "params": schedule_params},
        "epochs": args.epochs,
        "engine": args.engine,
        "seeds": args.seeds,
        "optimizers": tuple(OptimizerConfig.parse(o) for o in args.optimizer),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dlopt_core",
        description="Train small models with several optimizers and compare them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cmp = sub.add_parser(
        "compare",
        help="run a comparison of optimizers and print a results table",
        description="Run every optimizer for every seed on one setup; log each run to MLflow.",
    )
    _setup_arguments(cmp)
    _optimizer_arg(cmp)
    cmp.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    cmp.add_argument(
        "--target-loss", type=float, default=None,
        help="report the steps each optimizer takes to reach this train loss (default: 90%% of the way "
        "from the start to the optimum for linear models, else to the lowest loss any run reached)",
    )
    cmp.add_argument("--json", action="store_true", help="print machine-readable results (elapsed_s: total training time)")
    cmp.add_argument("--experiment", default="dlopt-compare", help="MLflow experiment name")
    cmp.set_defaults(func=_compare)

    swp = sub.add_parser(
        "sweep",
        help="learning-rate sensitivity: every optimizer at every lr of a log grid, over seeds",
        description="Train optimizers x a log-spaced lr grid x seeds (batched where it applies); "
        "print each optimizer's final validation loss per lr and its best lr. Logged to MLflow "
        "as one parent run per sweep with a child run per (optimizer, lr, seed).",
    )
    _setup_arguments(swp)
    _optimizer_arg(swp)
    swp.add_argument("--lr-range", default="1e-4:1", metavar="LOW:HIGH", help="log-spaced grid bounds")
    swp.add_argument("--points", type=int, default=12, help="learning rates in the grid")
    swp.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    swp.add_argument("--json", action="store_true",
                     help="print every (optimizer, lr, seed) final metrics, best_lr per optimizer and elapsed_s")
    swp.add_argument("--experiment", default="dlopt-sweep", help="MLflow experiment name")
    swp.set_defaults(func=_sweep)

    rng = sub.add_parser(
        "lr-range",
        help="LR range test: suggest learning rates for one optimizer from an exponential lr sweep",
        description="From a fresh model per seed, train STEPS mini-batch steps while the lr grows "
        "exponentially from --lr-min to --lr-max (full batches for full-batch-only optimizers); stop when "
        "the smoothed loss (a bias-corrected moving average over half a decade of lr) rises above 4x its best or is not finite. Print three "
        "suggestions per seed and their median over seeds: the steepest slope of the smoothed loss against "
        "log10(lr), fastai's valley rule, and the lr at the minimum / 10. Nothing is logged to MLflow.",
    )
    _setup_arguments(rng, training=False)
    rng.add_argument("--optimizer", required=True, metavar="NAME[:key=value...]",
                     help=f"one optimizer (its lr is ignored); names: {', '.join(OPTIMIZERS)}")
    rng.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2: one test per seed")
    rng.add_argument("--steps", type=int, default=200, help="steps of the sweep (fewer if the loss explodes)")
    rng.add_argument("--lr-min", type=float, default=1e-7, help="the first step's lr")
    rng.add_argument("--lr-max", type=float, default=10.0, help="the last step's lr")
    rng.add_argument("--json", action="store_true",
                     help="print the suggestions (median over seeds), their spread, and each seed's curve and suggestions")
    rng.set_defaults(func=_lr_range)

    land = sub.add_parser(
        "landscape",
        help="run optimizers on a 2-D test function and print their trajectories",
        description="Step each optimizer on a 2-D test function; print final values or, with --json, every point.",
    )
    land.add_argument("--function", default="rosenbrock", help=f"one of: {', '.join(FUNCTIONS)}")
    _options(land, "--function-option", "condition_number=100")
    land.add_argument("--start", default=None, metavar="X,Y", help="start point (default: the function's own); "
                      "write --start=-1.5,2 when X is negative")
    _optimizer_arg(land)
    land.add_argument("--steps", type=int, default=300)
    land.add_argument("--noise", type=float, default=0.0, help="gradient noise scale (seeded)")
    land.add_argument("--seed", type=int, default=0)
    land.add_argument("--tune", action="store_true", help="first tune each optimizer's lr with a short Optuna search")
    land.add_argument("--json", action="store_true", help="print every trajectory as JSON")
    land.set_defaults(func=_landscape)

    search.add_parser(sub, _setup_arguments)
    compress.add_parser(sub, _setup_arguments, _shared_setup_values, _table, _dumps)

    ls = sub.add_parser(
        "list",
        help="list optimizers, schedules, data sets, models, test functions, augmentations, reductions and "
        "compression methods",
    )
    ls.set_defaults(func=_list)
    return parser


def _build_config(args: argparse.Namespace) -> ComparisonConfig:
    return ComparisonConfig.make(**_setup_values(args), target_loss=args.target_loss)


class _Progress(RunObserver):
    """A one-line progress display on stderr (only when it is a terminal)."""

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison
        self.enabled = sys.stderr.isatty()
        self._shown = -1

    def record(self, run: RunResult, rec: Record) -> None:
        if not self.enabled:
            return
        percent = int(100 * self.comparison.progress)
        if percent != self._shown:
            self._shown = percent
            print(f"\rtraining {percent:3d}%", end="", file=sys.stderr, flush=True)

    def comparison_ended(self, comparison: Comparison) -> None:
        if self.enabled:
            print("\r", end="", file=sys.stderr)


class _Signals:
    """SIGTERM and Ctrl-C stop training at the next step, so every run ends as cancelled."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._stop = threading.Event()

    def is_set(self) -> bool:
        return self._stop.is_set()

    def handler(self, signum: int, frame: object) -> None:
        self.caught = self.caught or signum
        self._stop.set()

    @property
    def exit_status(self) -> int | None:
        """128 + the signal's number, the shell's convention for a process a signal ended."""
        return None if self.caught is None else 128 + self.caught


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_Signals]:
    signals = _Signals()
    previous = {sig: signal.signal(sig, signals.handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if signals.caught:
            name = signal.Signals(signals.caught).name
            print(f"stopped by {name}: unfinished runs were cancelled", file=sys.stderr)


@dataclass
class _Executed:
    comparison: Comparison
    observers: list[Any]
    exit_signal: int | None

    @property
    def errors(self) -> list[str]:
        return [e for o in self.observers for e in getattr(o, "errors", [])]

    @property
    def unwritten(self) -> int:
        return sum(getattr(o, "unwritten", 0) for o in self.observers)

    @property
    def run_ids(self) -> dict[int, str]:
        return {i: rid for o in self.observers for i, rid in getattr(o, "run_ids", {}).items()}

    def report(self, *, printed_table: bool) -> int:
        """Tracking warnings on stderr; the exit status."""
        if printed_table and not self.errors and not self.unwritten:
            for o in self.observers:
                print(o.describe(), f"(comparison_id={self.comparison.id})")
        for e in self.errors:
            print(f"warning: tracking: {e}", file=sys.stderr)
        if self.unwritten:
            print(
                f"error: {self.unwritten} tracking writes could not be made; they are kept locally and "
                "will be written when the store answers (on the next start)",
                file=sys.stderr,
            )
        if self.exit_signal is not None:
            return self.exit_signal
        if self.unwritten:  # an error whose writes were replayed later lost nothing
            return 1
        return 0 if all(r.status.completed for r in self.comparison.runs) else 1


def _execute(config: Any, args: argparse.Namespace, *, parent: str | None = None) -> _Executed:
    """Train ``config``'s runs with a progress line, signals that cancel, and tracking."""
    resolve_device(config.device)
    use_one_thread()
    if note := getattr(config, "schedule_note", None):
        print(f"note: schedule: {note}", file=sys.stderr)
    # MLflow prints "View run ..." lines to stdout for a tracking server; stdout is kept for
    # the results (valid JSON with --json), everything else goes to stderr.
    with contextlib.redirect_stdout(sys.stderr), _stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        options = {"parent": parent} if parent else {}
        observers = [] if args.no_track else tracking_observers(experiment=args.experiment, **options)
        comparison = Comparison(config)
        comparison.execute(observers=[_Progress(comparison), *observers], should_stop=stop.is_set)
    return _Executed(comparison, observers, stop.exit_status)


def _compare(args: argparse.Namespace) -> int:
    config = _build_config(args)
    done = _execute(config, args)
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
        print(_dumps(out))
    else:
        print(_table(rows))
    return done.report(printed_table=not args.json)


def _sweep(args: argparse.Namespace) -> int:
    low, sep, high = args.lr_range.partition(":")
    try:
        lr_min, lr_max = float(low), float(high)
    except ValueError:
        raise ConfigError(f"lr-range: write LOW:HIGH, e.g. 1e-4:1 (got {args.lr_range!r})") from None
    config = SweepConfig.make(**_setup_values(args), lr_min=lr_min, lr_max=lr_max, points=args.points)
    done = _execute(config, args, parent=config.parent_name())
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
        print(_dumps(out))
    else:
        metric = metric_name(config)
        rows = [
            {"optimizer": p.label, "lr": p.lr, "val loss": p.mean_loss, "± sd": p.sd_loss if p.mean_loss is not None else None,
             metric: p.mean_metric, "diverged seeds": p.diverged}
            for p in points
        ]
        print(_table(rows))
        for b in best.values():
            edge = " (on the edge of the range: widen it)" if b.on_edge else ""
            print(f"best lr for {b.label}: {b.lr:.3g}, val loss {b.loss:.4g}{edge}")
    return done.report(printed_table=not args.json)


def _lr_range(args: argparse.Namespace) -> int:
    config = LRRangeConfig.make(
        **_shared_setup_values(args), optimizer=OptimizerConfig.parse(args.optimizer), seeds=args.seeds,
        steps=args.steps, lr_min=args.lr_min, lr_max=args.lr_max,
    )
    resolve_device(config.device)
    use_one_thread()
    result = run_lr_range(config)
    if args.json:
        print(_dumps(_lr_range_json(result)))
        return 0
    seeds = ",".join(map(str, config.seeds))
    optimizer = " ".join([OPTIMIZERS[config.optimizer.name].label, *config.optimizer.changed()])
    print(f"LR range test of {optimizer} on {config.data.name} ({config.model.name}): "
          f"{config.steps} steps from lr {config.lr_min:g} to {config.lr_max:g}, seeds {seeds}, {result.elapsed_s:.2f} s")
    rows = [
        {"suggestion": SUGGESTION_LABELS[name], "lr (median)": getattr(result.suggestions, name),
         "lowest": spread[0] if (spread := result.spread[name]) else None, "highest": spread[1] if spread else None}
        for name in SUGGESTIONS
    ]
    print(_table(rows))
    for c in result.curves:
        end = f"exploded at lr {c.lrs[-1]:.3g}" if c.exploded else f"reached lr {c.lrs[-1]:.3g}"
        found = ", ".join(f"{SUGGESTION_LABELS[n]} {_cell(v)}" for n, v in c.suggestions.as_dict().items())
        print(f"seed {c.seed}: {len(c.lrs)} steps, {end}; {found}")
    return 0


def _lr_range_json(result: LRRangeResult) -> dict[str, Any]:
    return {
        "config": result.config.to_dict(),
        "suggestions": result.suggestions.as_dict(),
        "spread": {name: list(s) if s else None for name, s in result.spread.items()},
        "elapsed_s": result.elapsed_s,
        "seeds": [
            {
                "seed": c.seed, "steps": len(c.lrs), "exploded": c.exploded, "seconds": c.seconds,
                "suggestions": c.suggestions.as_dict(),
                "curve": {"lr": c.lrs, "loss": c.losses, "smoothed": c.smoothed},
            }
            for c in result.curves
        ],
    }


def _dumps(value: Any) -> str:
    """Strict JSON: a non-finite float (a diverged loss) becomes null, not NaN."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False, default=str)


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


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    headers = list(rows[0])
    cells = [[_cell(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _landscape(args: argparse.Namespace) -> int:
    use_one_thread()
    options = _option_values(args.function_option)
    config = LandscapeConfig.make(
        function=args.function, params=options, start=args.start, steps=args.steps,
        noise=args.noise, seed=args.seed, optimizers=tuple(OptimizerConfig.parse(o) for o in args.optimizer),
    )
    if args.tune:
        tuned = []
        for opt in config.optimizers:
            lr = tune_lr(config.test_function, opt, start=config.start_point, steps=config.steps,
                         noise=config.noise, seed=config.seed, params=config.params)
            tuned.append(opt.model_copy(update={"lr": lr}))
        config = config.model_copy(update={"optimizers": tuple(tuned)})
    result = run_landscape(config, grid=2)
    minima = config.test_function.minima
    if args.json:
        out = {
            "config": config.to_dict(),
            "minima": [list(m) for m in minima],
            "trajectories": [
                {
                    "optimizer": o.to_spec(),
                    "status": t.status,
                    "stopped_at": t.stopped_at,
                    "points": [[x, y] for x, y in zip(t.x, t.y)],
                    "values": t.values,
                }
                for o, t in zip(config.optimizers, result.trajectories)
            ],
        }
        print(_dumps(out))
    else:
        rows = [
            {"optimizer": t.label, "final value": t.values[-1], "distance": t.distances(minima)[-1],
             "status": t.status_text}
            for t in result.trajectories
        ]
        print(_table(rows))
    return 0


def _list(args: argparse.Namespace) -> int:
    sections = {
        "optimizers": {n: s.description for n, s in OPTIMIZERS.items()},
        "schedules": {n: s.description for n, s in SCHEDULES.items()},
        "datasets": {n: s.description for n, s in DATASETS.items()},
        "models": {n: s.description for n, s in MODELS.items()},
        "functions": {n: f"{f.label}: {f.formula}" for n, f in FUNCTIONS.items()},
        "augmentations": {n: s.description for n, s in AUGMENTATIONS.items()},
        "reductions": {n: s.description for n, s in REDUCTIONS.items()},
        "compression methods": {n: s.description for n, s in COMPRESSIONS.items()},
    }
    for title, entries in sections.items():
        print(f"{title}:")
        for name, text in entries.items():
            print(f"  {name:20s} {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad config)."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
