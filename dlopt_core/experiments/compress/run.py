"""A compression's run: train (or load) the baseline, apply every method, measure every variant."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.models import build_model
from dlopt_core.compression.measure import Latency, compiled_latency, cpu_latency, cuda_latency, measure_sizes
from dlopt_core.compression.methods import Compressed, get_compression
from dlopt_core.config import RunConfig
from dlopt_core.device import use_one_thread
from dlopt_core.engine.budget import step_budget
from dlopt_core.engine.loop import evaluate, load_run_data, run, run_budget
from dlopt_core.engine.records import Status
from dlopt_core.engine.step import StepHooks
from dlopt_core.experiments.compare import RunResult, metric_name
from dlopt_core.experiments.compress.baseline import check_methods, layer_sensitivity
from dlopt_core.experiments.compress.config import BASELINE, CompressionConfig, MethodConfig
from dlopt_core.experiments.compress.rows import CompressionRow, LayerSensitivity
from dlopt_core.experiments.observer import Observer, notify


class Cancelled(Exception):
    """Stop was asked for."""


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
        self, *, observers: Sequence[Observer] = (), should_stop: Callable[[], bool] = lambda: False,
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
                notify(observers, "sensitivity_done", self)
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
            notify(observers, "progressed", self)
            notify(observers, "compression_ended", self)
        return self

    def _set_phase(self, observers: Sequence[Observer], phase: str) -> None:
        self.phase = phase
        notify(observers, "progressed", self)

    def _add_row(self, observers: Sequence[Observer], row: CompressionRow) -> None:
        self.rows.append(row)
        self.done_units += _measure_units(self.config)
        notify(observers, "row_done", self, row)
        notify(observers, "progressed", self)

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


def _measure_units(config: CompressionConfig) -> int:
    # A measurement (evaluation, sizes, latencies) counts as much as an epoch of training.
    return run_budget(config).steps_per_epoch


def _planned_units(config: CompressionConfig, *, trained_here: bool) -> int:
    per_epoch = run_budget(config).steps_per_epoch
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
        self, compression: Compression, baseline: nn.Module, data: Dataset, observers: Sequence[Observer],
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
        result = RunResult(len(c.runs), config, step_budget(config, len(self.data.x_train)).total_steps, c.id, name=label)
        c.runs.append(result)
        c.phase = f"training {label}"
        result.status = Status.RUNNING
        notify(self.observers, "run_started", result)
        notify(self.observers, "progressed", c)
        iterator = run(config, data=self.data, hooks=hooks, model=model)
        last = 0
        try:
            for rec in iterator:
                result.apply(rec)
                notify(self.observers, "record", result, rec)
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
            notify(self.observers, "run_ended", result)
        if result.status is not Status.FINISHED:
            raise RuntimeError(f"{label}: training {result.status_text}")
        return model
