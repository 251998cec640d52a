"""What the CLI's subcommands share: the setup flags and their values, signals that cancel,
training a comparison with progress and tracking, and the table and JSON printers."""

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

from dlopt_core.catalog.augmentations import AUGMENTATIONS
from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.hyperparams import parse_spec
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import AugmentConfig, Device, EngineChoice, ModelConfig, OptimizerConfig, Precision, ReduceConfig
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.records import Record
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.compare import Comparison, RunObserver, RunResult
from dlopt_core.runner.plugins import tracking_observers, tracking_start
from dlopt_core.uploads.parse import parse_upload
from dlopt_core.uploads.store import store_table


def options_arg(parser: argparse.ArgumentParser, flag: str, example: str) -> None:
    """A repeatable ``flag KEY=VALUE`` option."""
    parser.add_argument(
        flag, action="append", default=[], metavar="KEY=VALUE", help=f"e.g. {example} (repeatable)"
    )


def optimizer_arg(parser: argparse.ArgumentParser) -> None:
    """The repeatable ``--optimizer NAME[:lr=X,...]``."""
    parser.add_argument(
        "--optimizer", action="append", required=True, metavar="NAME[:lr=X,key=value...]",
        help=f"repeatable; names: {', '.join(OPTIMIZERS)}",
    )


def option_values(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict."""
    return {k: v for item in items for k, v in parse_spec(f"x:{item}")[1].items()}


def setup_arguments(parser: argparse.ArgumentParser, *, training: bool = True) -> None:
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
    options_arg(parser, "--dataset-option", "noise=0.3 or condition_number=1000")
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


def data_values(args: argparse.Namespace) -> dict[str, Any]:
    """``--dataset`` with its options, or your own file (``--csv``, ``--npz``, ``--idx``): checked
    and stored under $DLOPT_HOME by its content hash."""
    given = [flag for flag in ("csv", "npz", "idx") if getattr(args, flag) is not None]
    if not given:
        return {"name": args.dataset, "options": option_values(args.dataset_option)}
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


def shared_setup_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values of ``setup_arguments(..., training=False)``."""
    return {
        "data": data_values(args),
        "model": ModelConfig.parse(args.model),
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "grad_clip": args.grad_clip,
        "deterministic": not args.fast_nondeterministic,
        "augment": tuple(AugmentConfig.parse(text) for text in args.augment),
        "reduce": ReduceConfig.parse(args.reduce) if args.reduce else None,
    }


def setup_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values of ``setup_arguments(...)`` with ``--optimizer`` and ``--seeds``: a comparison's setup."""
    schedule, schedule_params = parse_spec(args.schedule)
    return {
        **shared_setup_values(args),
        "schedule": {"name": schedule, "params": schedule_params},
        "epochs": args.epochs,
        "engine": args.engine,
        "seeds": args.seeds,
        "optimizers": tuple(OptimizerConfig.parse(o) for o in args.optimizer),
    }


class Progress(RunObserver):
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


class Signals:
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
def stop_on_signals() -> Iterator[Signals]:
    """SIGTERM and SIGINT set the yielded :class:`Signals` while the block runs."""
    signals = Signals()
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
class Executed:
    """A comparison trained by :func:`execute`, with its tracking observers."""

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


def execute(config: Any, args: argparse.Namespace, *, parent: str | None = None) -> Executed:
    """Train ``config``'s runs with a progress line, signals that cancel, and tracking."""
    resolve_device(config.device)
    use_one_thread()
    if note := getattr(config, "schedule_note", None):
        print(f"note: schedule: {note}", file=sys.stderr)
    # MLflow prints "View run ..." lines to stdout for a tracking server; stdout is kept for
    # the results (valid JSON with --json), everything else goes to stderr.
    with contextlib.redirect_stdout(sys.stderr), stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        options = {"parent": parent} if parent else {}
        observers = [] if args.no_track else tracking_observers(experiment=args.experiment, **options)
        comparison = Comparison(config)
        comparison.execute(observers=[Progress(comparison), *observers], should_stop=stop.is_set)
    return Executed(comparison, observers, stop.exit_status)


def dumps(value: Any) -> str:
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


def cell(value: Any) -> str:
    """One table cell: ``-`` for nothing, 4 significant digits for a float."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as a plain-text table with a header."""
    headers = list(rows[0])
    cells = [[cell(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])
