"""Model compression (issue 9): a baseline, each method applied to it, every variant measured.

:class:`CompressionConfig` is the baseline's setup (one optimizer, one seed) plus the methods;
:class:`Compression` trains the baseline (or loads given weights), applies every method and
measures every variant (accuracy, parameters, non-zeros, bytes, latency), reporting to
:class:`CompressionObserver` s as it goes; :class:`CompressionWork` is the same as background
work for the runner, so a page reads :attr:`CompressionWork.compression` live. Everything
that can be checked is checked before anything trains (:func:`check_methods`).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.hyperparams import int_list, parse_spec
from dlopt_core.catalog.models import build_model, get_model_spec
from dlopt_core.compression.measure import (
    Latency,
    compiled_latency,
    cpu_latency,
    cuda_latency,
    measure_sizes,
)
from dlopt_core.compression.methods import COMPRESSIONS, Compressed, get_compression
from dlopt_core.compression.pruning import make_permanent, prune_unstructured, weight_layers
from dlopt_core.compression.quantization import quantize_int8
from dlopt_core.device import use_one_thread
from dlopt_core.config import ModelConfig, NamedWithParams, RunConfig, config_hash
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import evaluate, load_run_data, run, steps_per_epoch
from dlopt_core.engine.records import Record, Status
from dlopt_core.engine.step import StepHooks
from dlopt_core.experiments.compare import RunObserver, RunResult, metric_name

BASELINE = "baseline"


class MethodConfig(NamedWithParams):
    """A compression method from the registry, its settings and (for distillation) a student.

    Written ``prune_structured:sparsity=0.5`` or ``distill:student=mlp:hidden=32,temperature=4``;
    a distillation's keys that are not its own belong to the student
    (``distill:student=mlp:hidden=32,activation=tanh``).
    """

    kind: ClassVar[str] = "method"
    name: str
    student: ModelConfig | None = None

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_compression(name)

    @model_validator(mode="after")
    def _student(self) -> Self:
        spec = get_compression(self.name)
        if spec.needs_student and self.student is None:
            raise ValueError(f"{self.name}: needs student=<model>, e.g. {self.name}:student=mlp:hidden=32")
        if not spec.needs_student and self.student is not None:
            raise ValueError(f"{self.name}: takes no student")
        return self

    @classmethod
    def parse(cls, text: str) -> Self:
        """Read ``name:key=value,...``; see the class docstring for students."""
        try:
            name, values = parse_spec(text)
            spec = get_compression(name)
        except ValueError as err:
            raise ConfigError(f"method: {err}") from None
        student = values.pop("student", None)
        if student is not None:
            own = {p.name for p in spec.hyperparams}
            moved = {k: values.pop(k) for k in list(values) if k not in own}
            model_name = student.partition(":")[0]
            allowed = {p.name for p in get_model_spec(model_name).hyperparams} if model_name in _model_names() else set()
            if unknown := sorted(set(moved) - allowed):
                raise ConfigError(
                    f"{name}.{unknown[0]}: unknown setting (allowed: {', '.join(own) or 'none'}; for the student "
                    f"{model_name}: {', '.join(sorted(allowed)) or 'none'})"
                )
            if moved:
                student += ("," if ":" in student else ":") + ",".join(f"{k}={v}" for k, v in moved.items())
            student_config = ModelConfig.parse(student)
            return cls.make(name=name, student=student_config, params=values)
        return cls.make(name=name, params=values)

    def to_spec(self) -> str:
        """The inverse of :meth:`parse`."""
        parts = ([f"student={self.student.to_spec()}"] if self.student is not None else []) + self.changed()
        return f"{self.name}:{','.join(parts)}" if parts else self.name


def _model_names() -> set[str]:
    from dlopt_core.catalog.models import MODELS

    return set(MODELS)


class CompressionConfig(RunConfig):
    """The baseline's setup (data, model, optimizer, budget, seed) and the methods to apply to it.

    ``sparsities``: each method with a sparsity also runs at each of these (the
    accuracy-vs-sparsity curves). ``baseline_run``: the MLflow run whose weights are the
    baseline (they are passed in beside the config); unset, the baseline is trained here.
    """

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-compress"
    KIND: ClassVar[str] = "compression"

    methods: tuple[MethodConfig, ...] = Field(min_length=1, max_length=24)
    sparsities: tuple[float, ...] = Field((), max_length=20)
    baseline_run: str | None = Field(None, max_length=64)
    latency_repeats: int = Field(20, ge=3, le=1000, description="timed forward passes per latency")
    compile: bool = Field(False, description="also time torch.compile'd models (seconds per model)")
    sensitivity_sparsity: float | None = Field(
        0.5, ge=0.0, lt=1.0, allow_inf_nan=False, description="per-layer sensitivity at this sparsity; None: skip",
    )

    @field_validator("sparsities", mode="before")
    @classmethod
    def _sparsities(cls, value: Any) -> Any:
        value = int_list(value, field="sparsities", example="0.25,0.5,0.9", kind=float)
        if isinstance(value, (list, tuple)):
            bad = [v for v in value if not isinstance(v, (int, float)) or not 0 <= float(v) < 1]
            if bad:
                raise ValueError(f"sparsities: each must be in [0, 1), got {bad[0]!r}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        labels = [v.to_spec() for v in self.variants()]
        if twice := next((label for label in labels if labels.count(label) > 1), None):
            raise ValueError(f"methods: {twice!r} appears twice")
        return self

    def variants(self) -> list[MethodConfig]:
        """The methods, each sweepable one also at every one of ``sparsities`` (in order, no repeats)."""
        out: list[MethodConfig] = []
        for m in self.methods:
            out.append(m)
            if get_compression(m.name).sweeps_sparsity:
                for s in self.sparsities:
                    variant = m.model_copy(update={"params": {**m.params, "sparsity": float(s)}})
                    if all(v.to_spec() != variant.to_spec() for v in out):
                        out.append(variant)
        return out

    def baseline_config(self) -> RunConfig:
        """The baseline's run config (what a run of it logs)."""
        return RunConfig.make(**self.model_dump(include=set(RunConfig.model_fields)))

    def key(self) -> str:
        return "compress-" + config_hash(self)


@dataclass(frozen=True)
class CompressionRow:
    """One variant, measured. Sizes and latencies are ``None`` for a variant that failed (``error``)."""

    method: str  # registry name, "baseline" or "student_scratch"
    label: str
    badge: str
    settings: dict[str, Any]
    val_loss: float | None = None
    val_metric: float | None = None  # accuracy, or R^2 for regression
    params: int | None = None
    nonzeros: int | None = None
    bytes: int | None = None  # torch.save of the state_dict
    payload_bytes: int | None = None  # the tensor data alone
    sparse_bytes: int | None = None  # masked weights in CSR (masked-only variants)
    masked_only: bool = False
    sparsity: float | None = None  # the asked share (pruning methods)
    latency_b1_ms: float | None = None
    latency_b256_ms: float | None = None
    compiled_b1_ms: float | None = None
    compiled_b256_ms: float | None = None
    cuda_b1_ms: float | None = None
    cuda_b256_ms: float | None = None
    latency_note: str = ""
    compiled_note: str = ""
    cuda_note: str = ""
    note: str = ""
    seconds: float = 0.0  # compressing (and any training) time
    error: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON and CSV (``settings`` stays a dict)."""
        return asdict(self)


@dataclass(frozen=True)
class LayerSensitivity:
    """The validation metric when only ``layer`` is pruned (at ``sparsity``) or int8-quantized."""

    layer: str
    kind: str  # "linear" or "conv"
    params: int
    sparsity: float
    pruned_metric: float
    quantized_metric: float | None  # None: torchao quantizes linear layers only


class CompressionObserver(RunObserver):
    """Hooks for a compression; all do nothing. The :class:`RunObserver` hooks see its training runs
    (the baseline trained here, fine-tuning, students) as a comparison's runs."""

    def progressed(self, compression: Compression) -> None:
        """The phase or the share done changed."""

    def row_done(self, compression: Compression, row: CompressionRow) -> None:
        """A variant (the baseline first) was measured."""

    def sensitivity_done(self, compression: Compression) -> None:
        """The per-layer sensitivity is in :attr:`Compression.sensitivity`."""

    def compression_ended(self, compression: Compression) -> None:
        """Once, at the end (finished, failed or cancelled)."""


class Cancelled(Exception):
    """Stop was asked for."""


def check_methods(
    config: CompressionConfig, *, data: Dataset | None = None, baseline_state: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Raise :class:`ConfigError` for every method that cannot take this model (and for baseline
    weights that do not fit it), before anything trains or is logged; return the baseline model
    (the given weights loaded, or untrained)."""
    data = data if data is not None else load_run_data(config.baseline_config())
    model = build_model(config.model, data, config.seed)
    if baseline_state is not None:
        load_baseline(model, baseline_state, config.model)
    problems = []
    for m in config.variants():
        spec = get_compression(m.name)
        if spec.fits is not None and (problem := spec.fits(m.params, m.student, model, data)):
            problems.append(f"{m.to_spec()}: {problem}")
    if problems:
        raise ConfigError("; ".join(problems))
    return model


def load_baseline(model: nn.Module, state: Mapping[str, Any], model_config: ModelConfig) -> None:
    """Load ``state`` into ``model``; :class:`ConfigError` when it is another architecture."""
    tensors = {k: torch.as_tensor(v) for k, v in state.items()}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise ConfigError(f"baseline weights: they do not fit the model {model_config.to_spec()!r}: {detail}") from None


def layer_sensitivity(model: nn.Module, data: Dataset, *, sparsity: float) -> list[LayerSensitivity]:
    """For each weight layer alone: the validation metric pruned (magnitude, ``sparsity``) and int8-quantized."""
    out = []
    for name, layer in weight_layers(model):
        pruned = copy.deepcopy(model)
        prune_unstructured(pruned, sparsity, layers=[name])
        make_permanent(pruned)
        quantized = None
        if isinstance(layer, nn.Linear):
            quantized = _metric(quantize_int8(model, "weight", layers={name})[0], data)
        out.append(LayerSensitivity(
            name, "linear" if isinstance(layer, nn.Linear) else "conv", sum(p.numel() for p in layer.parameters()),
            sparsity, _metric(pruned, data), quantized,
        ))
    return out


@dataclass(frozen=True)
class SparsityPoint:
    sparsity: float
    val_metric: float


def sparsity_curve(
    model: nn.Module, data: Dataset, *, method: str = "prune_unstructured", sparsities: Sequence[float],
    params: Mapping[str, Any] | None = None,
) -> list[SparsityPoint]:
    """The validation metric of ``method`` applied one-shot (no fine-tuning) at each sparsity: a quick curve."""
    spec = get_compression(method)
    if not spec.sweeps_sparsity:
        raise ConfigError(f"method: {method!r} has no sparsity to sweep")
    out = []
    for s in sparsities:
        cfg = MethodConfig.make(name=method, params={**(params or {}), "sparsity": s, "finetune_epochs": 0, "steps": 1})
        ctx = _OneShot(model, data)
        out.append(SparsityPoint(float(s), _metric(spec.apply(cfg.params, None, ctx)[0].model, data)))
    return out


@dataclass
class _OneShot:
    baseline: nn.Module
    data: Dataset
    config: Any = None

    def train(self, config: Any, **kwargs: Any) -> nn.Module:
        raise RuntimeError("a one-shot curve trains nothing")


def _metric(model: nn.Module, data: Dataset) -> float:
    model.eval()
    return evaluate(model, data, data.x_val, data.y_val)[1]


class Compression:
    """A compression's live state: training curves, measured rows, per-layer sensitivity, progress."""

    def __init__(
        self, config: CompressionConfig, *, baseline_state: Mapping[str, Any] | None = None,
        compression_id: str | None = None,
    ) -> None:
        self.config = config
        self.baseline_state = baseline_state
        self.id = compression_id or uuid.uuid4().hex[:12]
        self.rows: list[CompressionRow] = []
        self.runs: list[RunResult] = []  # training runs: curves as on the Compare page
        self.sensitivity: list[LayerSensitivity] = []
        self.phase = "waiting"
        self.status = Status.PENDING
        self.error: str | None = None
        self.elapsed_s = 0.0
        self.optimum: float | None = None  # what curves_data reads of a comparison
        self.done_units = 0
        self.total_units = _planned_units(config, trained_here=baseline_state is None)

    @property
    def progress(self) -> float:
        """Share done, counting a training step as one unit and each measurement as an epoch's worth."""
        return min(1.0, self.done_units / max(1, self.total_units))

    @property
    def metric_name(self) -> str:
        return metric_name(self.config)

    @property
    def baseline(self) -> CompressionRow | None:
        return next((r for r in self.rows if r.is_baseline), None)

    def execute(
        self, *, observers: Sequence[CompressionObserver] = (), should_stop: Callable[[], bool] = lambda: False,
    ) -> Compression:
        """Check, train or load the baseline, apply and measure every method; stop when ``should_stop()``.

        A method that fails while running (diverged fine-tuning, a kernel missing) becomes a row
        with its ``error``; a bad config raises :class:`ConfigError` before anything is reported.
        """
        started = time.perf_counter()
        use_one_thread()  # latencies as the app's jobs run (a second thread spins and slows small models)
        data = load_run_data(self.config.baseline_config())
        model = check_methods(self.config, data=data, baseline_state=self.baseline_state)
        self.status = Status.RUNNING
        context = _Context(self, model, data, observers, should_stop)
        try:
            if self.baseline_state is None:
                context.baseline = context.train(self.config.baseline_config(), model=model, label=BASELINE)
            self._measure_baseline(context)
            if self.config.sensitivity_sparsity is not None:
                self._set_phase(observers, "per-layer sensitivity")
                self.sensitivity = layer_sensitivity(context.baseline, data, sparsity=self.config.sensitivity_sparsity)
                _each(observers, "sensitivity_done", self)
            variants = self.config.variants()
            for i, method in enumerate(variants, 1):
                self._set_phase(observers, f"{method.to_spec()} ({i} of {len(variants)})")
                for row in self._variant(context, method):
                    self._add_row(observers, row)
            self.status = Status.FINISHED
            self.phase = "done"
        except Cancelled:
            self.status, self.phase = Status.CANCELLED, "cancelled"
        except Exception as exc:
            self.status, self.error, self.phase = Status.FAILED, f"{type(exc).__name__}: {exc}", "failed"
            raise
        finally:
            self.elapsed_s = time.perf_counter() - started
            _each(observers, "progressed", self)
            _each(observers, "compression_ended", self)
        return self

    def _set_phase(self, observers: Sequence[CompressionObserver], phase: str) -> None:
        self.phase = phase
        _each(observers, "progressed", self)

    def _add_row(self, observers: Sequence[CompressionObserver], row: CompressionRow) -> None:
        self.rows.append(row)
        self.done_units += _measure_units(self.config)
        _each(observers, "row_done", self, row)
        _each(observers, "progressed", self)

    def _measure_baseline(self, context: _Context) -> None:
        self._set_phase(context.observers, "measuring the baseline")
        settings = {"baseline_run": self.config.baseline_run} if self.config.baseline_run else {}
        row = self._measured(context.baseline, context.data, method=BASELINE, label=BASELINE, badge="baseline",
                             settings=settings, seconds=0.0)
        self._add_row(context.observers, row)

    def _variant(self, context: _Context, method: MethodConfig) -> list[CompressionRow]:
        spec = get_compression(method.name)
        settings = dict(method.params) | ({"student": method.student.to_spec()} if method.student else {})
        start = time.perf_counter()
        try:
            made = spec.apply(dict(method.params), method.student, context)
        except Cancelled:
            raise
        except Exception as exc:  # this variant fails alone; the others are still measured
            return [CompressionRow(method.name, method.to_spec(), spec.badge, settings, error=f"{type(exc).__name__}: {exc}",
                                   seconds=time.perf_counter() - start)]
        seconds = (time.perf_counter() - start) / len(made)
        return [
            self._measured(c.model, context.data, method=c.method, label=c.label, badge=c.badge, settings=settings,
                           seconds=seconds, compressed=c, sparsity=method.params.get("sparsity"))
            for c in made
        ]

    def _measured(
        self, model: nn.Module, data: Dataset, *, method: str, label: str, badge: str, settings: dict[str, Any],
        seconds: float, compressed: Compressed | None = None, sparsity: Any = None,
    ) -> CompressionRow:
        # A CPU copy: measured where the latencies are, and the baseline (which later methods
        # start from, on the training device) is left where it is.
        model = copy.deepcopy(model).cpu().eval()
        masked = compressed is not None and compressed.masked
        try:
            loss, metric = evaluate(model, data, data.x_val.cpu(), data.y_val.cpu())
            sizes = measure_sizes(model, masked=masked)
        except Exception as exc:
            return CompressionRow(method, label, badge, settings, error=f"{type(exc).__name__}: {exc}", seconds=seconds)
        x = data.x_val.cpu()
        repeats = self.config.latency_repeats
        eager = cpu_latency(model, x, repeats=repeats)
        compiled = compiled_latency(model, x, repeats=repeats) if self.config.compile else Latency(None, None, "not asked for")
        cuda = cuda_latency(model, x, repeats=repeats)
        return CompressionRow(
            method, label, badge, settings, loss, metric, sizes.params, sizes.nonzeros, sizes.bytes, sizes.payload_bytes,
            sizes.sparse_bytes, masked, float(sparsity) if sparsity is not None else None,
            eager.b1_ms, eager.b256_ms, compiled.b1_ms, compiled.b256_ms, cuda.b1_ms, cuda.b256_ms,
            eager.note, compiled.note, cuda.note, compressed.note if compressed is not None else "", seconds,
        )


def _each(observers: Sequence[Any], hook: str, *args: Any) -> None:
    for o in observers:
        getattr(o, hook, lambda *a: None)(*args)


def _train_steps(config: RunConfig, n_train: int) -> int:
    return config.epochs * steps_per_epoch(config, n_train)


def _measure_units(config: CompressionConfig) -> int:
    # A measurement (evaluation, sizes, latencies) counts as much as an epoch of training.
    from dlopt_core.catalog.datasets import split_sizes

    n_train, _ = split_sizes(config.data.name, dict(config.data.options), config.data.val_fraction)
    return steps_per_epoch(config, n_train)


def _planned_units(config: CompressionConfig, *, trained_here: bool) -> int:
    from dlopt_core.catalog.datasets import split_sizes

    n_train, _ = split_sizes(config.data.name, dict(config.data.options), config.data.val_fraction)
    per_epoch = steps_per_epoch(config, n_train)
    units = config.epochs * per_epoch if trained_here else 0
    rows = 1
    for m in config.variants():
        p = m.params
        if "finetune_epochs" in p:
            units += p["steps"] * p["finetune_epochs"] * per_epoch
        if get_compression(m.name).needs_student:
            units += 2 * config.epochs * per_epoch
            rows += 1
        rows += 1
    return units + rows * per_epoch


class _Context:
    """What a method gets (:class:`~dlopt_core.compression.methods.CompressionContext`): training
    reports its curve to the observers and honours Stop."""

    def __init__(
        self, compression: Compression, baseline: nn.Module, data: Dataset, observers: Sequence[CompressionObserver],
        should_stop: Callable[[], bool],
    ) -> None:
        self.compression, self.baseline, self.data = compression, baseline, data
        self.config = compression.config.baseline_config()
        self.observers, self.should_stop = observers, should_stop

    def train(
        self, config: RunConfig, *, model: nn.Module | None = None, hooks: StepHooks = StepHooks(), label: str,
    ) -> nn.Module:
        c = self.compression
        model = model if model is not None else build_model(config.model, self.data, config.seed)
        result = RunResult(len(c.runs), config, _train_steps(config, len(self.data.x_train)), c.id, name=label)
        c.runs.append(result)
        c.phase = f"training {label}"
        result.status = Status.RUNNING
        _each(self.observers, "run_started", result)
        _each(self.observers, "progressed", c)
        iterator = run(config, data=self.data, hooks=hooks, model=model)
        last = 0
        try:
            for rec in iterator:
                result.apply(rec)
                for o in self.observers:
                    o.record(result, rec)
                c.done_units += rec.step - last
                last = rec.step
                if self.should_stop():
                    raise Cancelled
        except Cancelled:
            iterator.close()
            result.end(Status.CANCELLED)
            raise
        except Exception as exc:
            result.end(Status.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if not result.status.ended:
                result.end(Status.CANCELLED)
            _each(self.observers, "run_ended", result)
        if result.status is not Status.FINISHED:
            raise RuntimeError(f"{label}: training {result.status_text}")
        return model


class _Relay(CompressionObserver):
    """Sends a compression's progress to the server as events (:meth:`CompressionWork.apply`)."""

    def __init__(self, emit: Any, trackers: Sequence[Any]) -> None:
        self.emit, self.trackers = emit, trackers

    def run_started(self, run: RunResult) -> None:
        self.emit(("run", run.index, run.config, run.total_steps, run.name), urgent=True)

    def record(self, run: RunResult, rec: Record) -> None:
        self.emit(("record", run.index, rec if rec.state is None else rec._replace(state=None)), urgent=rec.is_eval)

    def run_ended(self, run: RunResult) -> None:
        self.emit(("ended", run.index, str(run.status), run.error), urgent=True)

    def progressed(self, compression: Compression) -> None:
        self.emit(("progress", compression.phase, compression.done_units, str(compression.status),
                   compression.error, compression.elapsed_s), urgent=True)

    def row_done(self, compression: Compression, row: CompressionRow) -> None:
        self.emit(("row", row), urgent=True)

    def sensitivity_done(self, compression: Compression) -> None:
        self.emit(("sensitivity", compression.sensitivity), urgent=True)

    def compression_ended(self, compression: Compression) -> None:
        run_ids = {k: v for t in self.trackers for k, v in getattr(t, "row_run_ids", {}).items()}
        errors = [e for t in self.trackers for e in getattr(t, "errors", [])]
        self.emit(("tracking", run_ids, errors), urgent=True)


def compression_observers(*, experiment: str) -> list[CompressionObserver]:
    """One observer per installed tracking backend (the ``dlopt.compression_observers`` entry
    point group; ``tracking`` registers MLflow's), so the core never imports one."""
    return [ep.load()(experiment=experiment) for ep in entry_points(group="dlopt.compression_observers")]


class CompressionWork:
    """A compression as background work (:mod:`dlopt_core.runner`): run in a worker, mirrored
    here from its events, so a page reads :attr:`compression` live (rows, runs, progress, phase).

    ``baseline_state``: the baseline's weights (a finished run's, see ``tracking.weights``);
    ``None`` trains the baseline first.
    """

    def __init__(
        self, config: CompressionConfig, *, baseline_state: Mapping[str, Any] | None = None, track: bool = True,
        experiment: str = CompressionConfig.EXPERIMENT,
    ) -> None:
        self.config = config
        # NumPy: the work is pickled into a worker process, where shared-memory tensors would not outlive ours.
        self.baseline_state = (
            None if baseline_state is None else {k: np.asarray(torch.as_tensor(v).cpu()) for k, v in baseline_state.items()}
        )
        self.key = config.key()
        self.label = f"compress {self.key}"
        self.track = track
        self.experiment = experiment
        self.compression = Compression(config, baseline_state=self.baseline_state)
        self.row_run_ids: dict[str, str] = {}  # row label -> MLflow run id
        self.tracking_errors: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        return {
            "config": self.config, "baseline_state": self.baseline_state, "track": self.track,
            "experiment": self.experiment, "id": self.compression.id,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["config"], baseline_state=state["baseline_state"], track=state["track"], experiment=state["experiment"],
        )
        self.compression.id = state["id"]

    def run(self, emit: Any, control: Any) -> None:
        from dlopt_core.runner.plugins import tracking_start

        trackers: list[Any] = []
        if self.track:
            tracking_start()
            trackers = compression_observers(experiment=self.experiment)
        compression = Compression(self.config, baseline_state=self.baseline_state, compression_id=self.compression.id)
        compression.execute(observers=[*trackers, _Relay(emit, trackers)], should_stop=control.should_stop)

    def apply(self, event: Any) -> None:
        c, kind = self.compression, event[0]
        if kind == "run":
            _, index, config, total, name = event
            c.runs.append(RunResult(index, config, total, c.id, status=Status.RUNNING, name=name))
        elif kind == "record":
            run_ = c.runs[event[1]]
            before = run_.steps
            run_.apply(event[2])
            c.done_units += run_.steps - before
        elif kind == "ended":
            run_ = c.runs[event[1]]
            if not run_.status.ended:
                run_.end(Status(event[2]), error=event[3])
        elif kind == "progress":
            c.phase, c.done_units, c.status, c.error, c.elapsed_s = event[1], event[2], Status(event[3]), event[4], event[5]
        elif kind == "row":
            c.rows.append(event[1])
        elif kind == "sensitivity":
            c.sensitivity = list(event[1])
        elif kind == "tracking":
            self.row_run_ids, self.tracking_errors = dict(event[1]), list(event[2])

    def finish(self, status: Status) -> None:
        """The job ended: anything that did not report its end takes the job's."""
        c = self.compression
        for r in c.runs:
            if not r.status.ended:
                r.end(Status.CANCELLED if status is not Status.FAILED else Status.FAILED)
        if not c.status.ended:
            c.status = status
