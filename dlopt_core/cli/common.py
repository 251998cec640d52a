"""What the CLI's subcommands share: a config class's flags (generated from its fields), signals
that cancel, training a comparison with progress and tracking, and the table and JSON printers.

Every field of a config is a flag named after it (``batch_size`` is ``--batch-size``), its type,
default and description read from the class: a registry choice takes ``NAME[:key=value...]``
(repeatable for a tuple of them), a switch takes nothing, a list of numbers ``0,1,2``. No flag
holds a default of its own: a flag left out leaves the field at its class's default, so a new
field of a config is a new flag with no edit here. The data set is the one field shaped by hand
(``--dataset`` with its options, or your own file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from dlopt_core.catalog.augmentations import AUGMENTATIONS
from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.hyperparams import check_number_text, parse_spec
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import DataConfig, Flat, NamedWithParams, flatten, value_text
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.records import Record
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.compare import Comparison, RunResult
from dlopt_core.experiments.observer import Observer, tracking_observers
from dlopt_core.runner.plugins import tracking_start
from dlopt_core.uploads.parse import parse_upload, read_upload_file
from dlopt_core.uploads.store import store_table

# Flags named otherwise than their field: the names they had before flags were generated.
FLAG_NAMES = {
    "optimizers": "optimizer", "methods": "method", "deterministic": "fast-nondeterministic", "study_name": "study",
}

# The command line's own wording, where a field's description is written for Python (``None: ...``)
# or says less than a command line needs; each help ends with the class's default.
HELP = {
    "model": "e.g. mlp:hidden=128/64,activation=tanh,dropout=0.1 or cnn:channels=8/16; "
    + "; ".join(f"{n}: {', '.join(p.name for p in m.hyperparams) or 'no options'}" for n, m in MODELS.items()),
    "schedule": f"lr schedule; names: {', '.join(SCHEDULES)}",
    "batch_size": "an integer, or 'full' for full-batch GD",
    "precision": "mixed precision through autocast (fp16 adds loss scaling)",
    "grad_clip": "clip the gradient norm",
    "deterministic": "on CUDA, let cuDNN pick the fastest (non-reproducible) kernels; runs are reproducible by default",
    "augment": "augment each training batch (repeatable, applied in order), e.g. --augment flip "
    f"--augment noise:std=0.1 --augment mixup:alpha=0.2; names: {', '.join(AUGMENTATIONS)}",
    "reduce": "shrink the training data first, e.g. subsample:fraction=0.1 or pca:components=8; "
    f"names: {', '.join(REDUCTIONS)}",
    "optimizers": f"repeatable; names: {', '.join(OPTIMIZERS)}",
    "seeds": "comma-separated, e.g. 0,1,2",
    "engine": "batched: runs of one model shape train as one stacked model (same curves, faster); "
    "auto: batched for groups of 2 or more; runs that cannot be batched (L-BFGS, Muon, CNN, fp16, augmented) "
    "always train on their own",
}
METAVAR = {"grad_clip": "NORM", "optimizers": "NAME[:lr=X,key=value...]", "optimizer": "NAME[:lr=X,key=value...]"}

Kind = Literal["data", "spec", "specs", "switch", "choice", "value", "list"]


def _kind(info: FieldInfo) -> tuple[Kind, Any] | None:
    """How a field is written on the command line and the type it holds; ``None``: it has no flag."""
    ann = info.annotation
    union = isinstance(ann, UnionType) or get_origin(ann) is Union
    types = [t for t in get_args(ann) if t is not NoneType] if union else [ann]
    if len(types) != 1:
        return None
    t = types[0]
    if t is DataConfig:
        return "data", t
    if isinstance(t, type) and issubclass(t, NamedWithParams):
        return "spec", t
    if get_origin(t) is tuple:
        items = [i for i in get_args(t) if i is not Ellipsis]
        if items and isinstance(items[0], type) and issubclass(items[0], NamedWithParams):
            return "specs", items[0]
        return ("list", t) if items and all(i in (int, float, str) for i in items) else None
    if t is bool:
        return "switch", t
    if get_origin(t) is Literal:
        return "choice", t
    return ("value", t) if t in (int, float, str) else None


def _fields(config: type[Flat], skip: Collection[str]) -> list[tuple[str, FieldInfo, Kind, Any]]:
    """The fields of ``config`` written as flags, less ``skip`` (those a command shapes itself)."""
    out = []
    for name, info in config.model_fields.items():
        if name not in skip and (found := _kind(info)) is not None:
            out.append((name, info, *found))
    return out


def flag(field: str) -> str:
    """``--batch-size`` for ``batch_size`` (or its older name, see :data:`FLAG_NAMES`)."""
    return "--" + FLAG_NAMES.get(field, field).replace("_", "-")


def _dest(field: str) -> str:
    return FLAG_NAMES.get(field, field).replace("-", "_")


def default_text(config: type[Flat], field: str) -> str | None:
    """The class's default of ``field`` as a command line writes it (``None``: unset or off)."""
    value = config.model_fields[field].get_default(call_default_factory=True)
    if isinstance(value, NamedWithParams):
        return value.to_spec()
    if value is None or value is False or value == ():
        return None
    return value_text(value)


def _help(config: type[Flat], field: str, info: FieldInfo, helps: Mapping[str, str]) -> str | None:
    text = helps.get(field) or HELP.get(field) or info.description
    default = default_text(config, field) if info.annotation is not bool else None
    if default is not None:
        text = f"{text} (default: {default})" if text else f"default: {default}"
    return text.replace("%", "%%") if text else None  # argparse formats help with %


def given_value(kind: type) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, refusing an empty value (``--batch-size=`` once
    trained full batch) and a number written with ``_``."""

    def read(text: str) -> Any:
        if not text.strip():
            raise argparse.ArgumentTypeError("empty value; give one, or leave the flag out for its default")
        try:
            check_number_text(text, field="value")
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value: ")) from None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None

    read.__name__ = kind.__name__
    return read


def config_arguments(
    parser: argparse.ArgumentParser,
    config: type[Flat],
    *,
    skip: Collection[str] = (),
    helps: Mapping[str, str] | None = None,
    metavars: Mapping[str, str] | None = None,
    required: Collection[str] = (),
) -> None:
    """A flag for each field of ``config`` but ``skip``; ``helps``, ``metavars``: a command's own wording;
    ``required``: fields the command asks for although their class has a default."""
    helps, metavars = helps or {}, {**METAVAR, **(metavars or {})}
    for field, info, kind, t in _fields(config, skip):
        if kind == "data":
            _data_arguments(parser, config)
            continue
        options: dict[str, Any] = {"default": None, "help": _help(config, field, info, helps)}
        if kind == "switch":
            # A switch turns its field to the other value; left out, the class's default stays.
            const = not info.get_default(call_default_factory=True)
            parser.add_argument(flag(field), dest=_dest(field), action="store_const", const=const, **options)
            continue
        if kind in ("spec", "specs"):
            options["metavar"] = metavars.get(field, "NAME[:key=value...]")
            options["action"] = "append" if kind == "specs" else "store"
        elif kind == "choice":
            options["choices"] = get_args(t)
        elif kind == "value":
            nullable = info.annotation is not t
            # A field that may be None but is not by default names None with a word the config reads
            # ('full' for batch_size): the text goes to the config as it is.
            options["type"] = given_value(str if nullable and info.get_default() is not None else t)
            options["metavar"] = metavars.get(field)
        else:
            options["type"] = given_value(str)
            options["metavar"] = metavars.get(field, "A,B,...")
        must = field in required or info.is_required()
        parser.add_argument(flag(field), dest=_dest(field), required=must, **options)


def _data_arguments(parser: argparse.ArgumentParser, config: type[Flat]) -> None:
    default = config.model_fields["data"].get_default(call_default_factory=True).name
    parser.add_argument("--dataset", default=None, help=f"one of: {', '.join(DATASETS)} (default: {default})")
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
    splits = ", ".join(f"{f}={value_text(DataConfig.model_fields[f].default)}" for f in DataConfig.extra_fields())
    options_arg(parser, "--dataset-option", f"noise=0.3 or condition_number=1000; the split: {splits}")


def config_values(args: argparse.Namespace, config: type[Flat], *, skip: Collection[str] = ()) -> dict[str, Any]:
    """The values the flags of :func:`config_arguments` were given (a flag left out is left out)."""
    out: dict[str, Any] = {}
    for field, _, kind, t in _fields(config, skip):
        if kind == "data":
            out[field] = data_values(args)
            continue
        given = getattr(args, _dest(field))
        if given is None:
            continue
        if kind == "spec":
            given = t.parse(given)
        elif kind == "specs":
            given = tuple(t.parse(text) for text in given)
        out[field] = given
    return out


def config_argv(cfg: Flat, *, skip: Collection[str] = (), always: Collection[str] = ()) -> list[str]:
    """The flags that give ``cfg`` back through :func:`config_values`: each field that differs from
    its class's default, and those in ``always``."""
    config, flat, out = type(cfg), flatten(cfg), []
    for field, info, kind, _ in _fields(config, skip):
        value, default = getattr(cfg, field), info.get_default(call_default_factory=True)
        if value == default and field not in always:
            continue
        if kind == "data":
            out += ["--dataset", value.name]
            extra = [f"{f}={value_text(getattr(value, f))}" for f in value.extra_fields()
                     if getattr(value, f) != DataConfig.model_fields[f].default]
            for option in extra + value.changed():
                out += ["--dataset-option", option]
        elif kind == "spec":
            out += [flag(field), value.to_spec()] if value is not None else []
        elif kind == "specs":
            for item in value:
                out += [flag(field), item.to_spec()]
        elif kind == "switch":
            out += [flag(field)] if value != default else []
        elif field in flat:  # a None the config has no word for is its default: left out
            text = value_text(flat[field])
            # argparse reads "-1.5,2" after a flag as another flag.
            out += [f"{flag(field)}={text}"] if text.startswith("-") else [flag(field), text]
    return out


def lr_bounds(text: str | None) -> dict[str, float]:
    """``--lr-range LOW:HIGH`` as ``lr_min`` and ``lr_max`` (none when it is left out)."""
    if text is None:
        return {}
    low, _, high = text.partition(":")
    try:
        return {"lr_min": float(low), "lr_max": float(high)}
    except ValueError:
        raise ConfigError(f"lr-range: write LOW:HIGH, e.g. 1e-4:1 (got {text!r})") from None


def tracking_arguments(parser: argparse.ArgumentParser, config: type[Any]) -> None:
    """``--no-track`` and ``--experiment`` (default: the MLflow experiment ``config`` names)."""
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    parser.add_argument("--experiment", default=config.EXPERIMENT, help="MLflow experiment name")


def options_arg(parser: argparse.ArgumentParser, flag: str, example: str) -> None:
    """A repeatable ``flag KEY=VALUE`` option."""
    parser.add_argument(
        flag, action="append", default=[], metavar="KEY=VALUE", help=f"e.g. {example} (repeatable)"
    )


def option_values(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict."""
    return {k: v for item in items for k, v in parse_spec(f"x:{item}")[1].items()}


def data_values(args: argparse.Namespace) -> dict[str, Any]:
    """``--dataset`` with its options, or your own file (``--csv``, ``--npz``, ``--idx``): checked
    and stored under $DLOPT_HOME by its content hash. The split's options (``val_fraction``,
    ``split_seed``) apply to either."""
    options = option_values(args.dataset_option)
    split = {f: options.pop(f) for f in DataConfig.extra_fields() if f in options}
    given = [source for source in ("csv", "npz", "idx") if getattr(args, source) is not None]
    if not given:
        return {**({"name": args.dataset} if args.dataset is not None else {}), **split, "params": options}
    if len(given) > 1:
        raise ConfigError(f"data: give one of --{' or --'.join(given)}, not both")
    if args.csv is not None and not args.target:
        raise ConfigError("target: --csv needs --target COLUMN, the column to predict")
    paths = [args.csv] if args.csv is not None else [args.npz] if args.npz is not None else list(args.idx)
    files = [(Path(path).name, read_upload_file(path)) for path in paths]
    if args.csv is None and args.target:
        raise ConfigError(f"target: --{given[0]} files name their target (y, or the labels file); leave out --target")
    return {"name": store_table(parse_upload(files, target=args.target, task=args.task, kind=given[0])), **split}


class Progress(Observer):
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
        observers = [] if args.no_track else tracking_observers(config.KIND, experiment=args.experiment, **options)
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
