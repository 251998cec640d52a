"""A comparison: every (optimizer, seed) run of a config, trained side by side.

The comparison consumes a stream of ``(run index, record)`` from an engine and keeps each
run's live state; observers (MLflow logging, a progress line, a pruner) see every record.
One run can be stopped on its own (:meth:`Comparison.stop_run`), or all of them.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dlopt_core.catalog.datasets import Dataset, get_dataset_spec
from dlopt_core.catalog.models import convex_optimum, get_model_spec
from dlopt_core.config import ComparisonConfig, RunConfig, TrainingSetup
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import data_key, load_run_data, run_budget
from dlopt_core.engine.records import Measures, Record, Status
from dlopt_core.engine.plan import MergedEngine, build_engine
from dlopt_core.experiments.events import (
    Elapsed,
    EngineChosen,
    OptimumFound,
    RecordMade,
    Relay,
    RunEnded,
    TrackedWork,
    TrackingReport,
)
from dlopt_core.experiments.observer import Observer, notify
from dlopt_core.runner.work import Control, Emit

__all__ = ["Comparison", "RunResult", "Status", "metric_name", "summary_rows"]


@dataclass
class RunResult:
    """One run's live state: its evaluation records grow while it trains."""

    index: int
    config: RunConfig
    total_steps: int
    comparison_id: str
    status: Status = Status.PENDING
    records: list[Record] = field(default_factory=list)
    steps: int = 0
    wall_time: float = 0.0
    diverged_step: int | None = None
    error: str | None = None
    engine: str = ""  # "batched" or "sequential", once planned
    # Each time the train loss reached a new low (0.2 % below the last one kept), at step
    # resolution: mini-batch losses averaged over the last few batches, and the full train
    # loss at evaluations. The steps to any target are read from it later, in bounded memory.
    lows: list[tuple[int, float]] = field(default_factory=list)
    # The lr the run actually used, (epoch, lr) each time it moved by more than 1 %: a
    # plateau schedule's drops are only known here, never in the plan.
    lr_points: list[tuple[float, float]] = field(default_factory=list)
    # The latest weights a 2-D classification run reported (records keep none: memory).
    weights: dict[str, Any] | None = None
    # Keep lows and lr points (a sweep of thousands of runs reads neither).
    detailed: bool = True
    name: str | None = None  # what the legend and table call it; None: its optimizer's label
    _best: tuple[int, float] | None = field(default=None, repr=False)  # the latest strict low
    _window: deque[float] = field(default_factory=deque, repr=False)

    @property
    def label(self) -> str:
        return self.name or self.config.optimizer.label

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.total_steps // max(1, self.config.epochs))

    @property
    def initial_loss(self) -> float | None:
        """Train loss before the first step (the validation loss where the train loss was not measured)."""
        if not self.records or self.records[0].step != 0:
            return None
        first = self.records[0]
        return first.train_loss if first.train_loss is not None else first.val_loss

    @property
    def lowest_loss(self) -> float | None:
        """The lowest train loss seen (smoothed mini-batch or evaluated)."""
        return self._best[1] if self._best else None

    def steps_to(self, target: float) -> int | None:
        """Steps until the train loss was at or below ``target``; ``None`` if never.

        Exact to 0.2 % in loss; a target reached only in the last 0.2 % of descent reads the
        step of the lowest point (so a reached target never reads "never").
        """
        hit = next((step for step, loss in self.lows if loss <= target), None)
        if hit is None and self._best is not None and self._best[1] <= target:
            return self._best[0]
        return hit

    def _low(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            return
        if self._best is None or loss < self._best[1]:
            self._best = (step, loss)
        if not self.lows or loss < self.lows[-1][1] * 0.998:
            self.lows.append((step, loss))

    def _track_loss(self, rec: Record) -> None:
        if rec.batch_loss is not None:
            window = self._window
            if window.maxlen is None:
                # A full-batch loss is exact; mini-batch losses are noisy: smooth over up to 10
                # (at most an epoch's worth).
                self._window = window = deque(maxlen=min(10, self.steps_per_epoch))
            window.append(rec.batch_loss)
            if len(window) == window.maxlen:
                # The loss of a step is measured before its update (step - 1 updates made);
                # the window's mean belongs to its middle.
                self._low(rec.step - 1 - (len(window) - 1) // 2, sum(window) / len(window))
        elif rec.train_loss is not None:
            self._low(rec.step, rec.train_loss)

    def _track_lr(self, rec: Record) -> None:
        points = self.lr_points
        if rec.batch_loss is not None:
            # A step record's lr was used from the step before it, as the plan draws it.
            at = (rec.step - 1) / self.steps_per_epoch
        elif rec.step == 0:
            at = 0.0
        else:
            return
        if not points or abs(rec.lr - points[-1][1]) > 0.01 * max(abs(rec.lr), abs(points[-1][1])):
            points.append((at, rec.lr))

    @property
    def status_text(self) -> str:
        if self.status is Status.DIVERGED:
            return f"diverged at step {self.diverged_step}"
        if self.status is Status.FAILED:
            return f"failed: {self.error}"
        if self.status in (Status.CANCELLED, Status.PRUNED):
            return f"{self.status} at step {self.steps}"
        return str(self.status)

    def apply(self, rec: Record) -> None:
        """Take one record from the stream (here, or in another process's mirror)."""
        if rec.status is Status.FAILED:
            self.end(Status.FAILED, error=rec.error)
            return
        if rec.weights is not None:
            self.weights = rec.weights
            rec = rec._replace(weights=None)
        if rec.state is not None:  # the final weights are for observers (storage), not for the live view
            rec = rec._replace(state=None)
        self.steps, self.wall_time = rec.step, rec.wall_time
        if self.detailed:
            self._track_loss(rec)
            self._track_lr(rec)
        if rec.is_eval or rec.status.ended:
            self.records.append(rec)
        if self.status is Status.PENDING:
            self.status = Status.RUNNING
        if rec.status.ended:
            self.end(rec.status)

    def end(self, status: Status, *, error: str | None = None) -> None:
        self.status = Status(status)
        self.error = error
        self.diverged_step = self.steps if self.status is Status.DIVERGED else None


class RunsPlan(Protocol):
    """What a comparison needs of its config: a sweep is one too."""

    EXPERIMENT: ClassVar[str]
    KIND: ClassVar[str]
    data: Any
    engine: str
    target_loss: float | None

    def runs(self) -> list[RunConfig]: ...

    def key(self) -> str: ...


class Comparison:
    """The runs of a :class:`ComparisonConfig` and their live results."""

    def __init__(self, config: ComparisonConfig | RunsPlan, *, comparison_id: str | None = None) -> None:
        self.config = config
        self.id = comparison_id or uuid.uuid4().hex[:12]
        configs = config.runs()
        # A sweep (thousands of runs, read only at its end) opts out of the per-step details.
        self.detailed: bool = getattr(config, "detailed", True)
        # A plan whose runs differ in more than the optimizer names them itself (run_label).
        name_of = getattr(config, "run_label", None)
        try:
            # Sizes only: the data is made when training starts, not when a page draws a form.
            budgets = [run_budget(c) for c in configs]
        except ValueError as err:  # a reduction's settings that this data cannot take (PCA > features)
            raise ConfigError(str(err)) from None
        self.runs = [
            RunResult(
                i, c, budgets[i].total_steps, self.id, detailed=self.detailed,
                name=name_of(c) if name_of is not None else None,
            )
            for i, c in enumerate(configs)
        ]
        self._stops: dict[int, Status] = {}
        self._lock = threading.Lock()
        self.elapsed_s = 0.0  # training time of the whole comparison
        # The lowest train loss the model can reach, where it is known (linear models).
        self.optimum: float | None = None

    @property
    def has_optimum(self) -> bool:
        return self.detailed and get_model_spec(self.config.model.name).convex

    def measures(self) -> Measures:
        """What the engine measures: everything for a comparison, validation only for a sweep."""
        if not self.detailed:
            return Measures(train_loss=False)
        # The boundary view draws each optimizer's first seed: only those carry weights.
        first: dict[str, RunResult] = {}
        for r in self.runs:
            if r.label not in first or r.config.seed < first[r.label].config.seed:
                first[r.label] = r
        return Measures(train_loss=True, weights=frozenset(r.index for r in first.values()))

    def _solve_optimum(self, data_of: Callable[[RunConfig], Dataset]) -> threading.Thread | None:
        """Solve for the optimum beside the training (it took 2.5 s on digits before the first
        point), on the data the engine trains on (``data_of``: loaded once for both)."""
        if not self.has_optimum:
            return None

        def solve() -> None:
            try:
                self.optimum = convex_optimum(data_of(self.runs[0].config))
            except Exception:  # the dashed line is a help, never a reason to stop training
                traceback.print_exc()

        thread = threading.Thread(target=solve, name="dlopt-optimum", daemon=True)
        thread.start()
        return thread

    @property
    def cancelled(self) -> bool:
        return any(r.status is Status.CANCELLED for r in self.runs)

    @property
    def total_steps(self) -> int:
        return sum(r.total_steps for r in self.runs)

    @property
    def done_steps(self) -> int:
        """Steps trained; a run that ended by itself early (diverged) counts as done."""
        return sum(r.total_steps if r.status.completed or r.status is Status.FAILED else r.steps for r in self.runs)

    @property
    def progress(self) -> float:
        return self.done_steps / max(1, self.total_steps)

    def stop_run(self, index: int, status: Status = Status.CANCELLED) -> None:
        """Ask run ``index`` to stop at its next step (thread-safe); it ends as ``status``."""
        with self._lock:
            self._stops.setdefault(index, Status(status))

    def _take_stops(self) -> dict[int, Status]:
        if not self._stops:  # every record asks; almost always there is nothing to take
            return {}
        with self._lock:
            stops, self._stops = self._stops, {}
        return stops

    def _data_of(self) -> Callable[[RunConfig], Dataset]:
        """Each run's data set, loaded once per distinct data (most comparisons have one) for
        the engine and the optimum's solver alike."""
        loaded: dict[str, Dataset] = {}
        lock = threading.Lock()  # the solver's thread asks too

        def data_of(config: RunConfig) -> Dataset:
            key = data_key(config)
            with lock:
                if key not in loaded:
                    loaded[key] = load_run_data(config)
                return loaded[key]

        return data_of

    def execute(
        self,
        *,
        observers: Sequence[Observer] = (),
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Comparison:
        """Train every run to the end, or until ``should_stop()`` turns true."""
        started = time.perf_counter()
        solving: threading.Thread | None = None
        engine: MergedEngine | None = None
        announced: list[RunResult] = []  # runs the observers were told about
        on_record = [o.record for o in observers]
        try:
            # Inside the try: building forks processes, and announcing a run creates it in
            # MLflow (thousands in a sweep); a stop or SIGTERM meanwhile still ends them all.
            notify(observers, "comparison_started", self)
            data_of = self._data_of()
            engine = build_engine(
                [r.config for r in self.runs], data=data_of, choice=self.config.engine,
                measures=self.measures(),
            )
            # After the build: a split engine forks, and a child must not inherit the locks
            # of a thread busy in scikit-learn.
            solving = self._solve_optimum(data_of)
            for r in self.runs:
                r.status = Status.RUNNING
                r.engine = engine.engine_of[r.index]
                announced.append(r)
                notify(observers, "run_started", r)
            for index, rec in engine:
                r = self.runs[index]
                r.apply(rec)
                for hook in on_record:
                    if hook(r, rec) and not r.status.ended:
                        self.stop_run(index, Status.PRUNED)
                if r.status.ended:
                    notify(observers, "run_ended", r)
                for stopped, status in self._take_stops().items():
                    if engine.stop(stopped):
                        self.runs[stopped].end(status)
                        notify(observers, "run_ended", self.runs[stopped])
                if should_stop():
                    break
        finally:
            # Reached on Stop, and on an interrupt (SIGTERM, Ctrl-C): every unfinished run
            # ends as cancelled, so no run stays "running" in MLflow.
            told = {r.index for r in announced}
            for r in self.runs:
                if not r.status.ended:
                    if engine is not None:
                        engine.stop(r.index)
                    r.end(Status.CANCELLED)
                    if r.index in told:
                        notify(observers, "run_ended", r)
            if engine is not None:
                engine.close()
            self.elapsed_s = time.perf_counter() - started
            if solving is not None and not self.cancelled:  # a stopped job ends at once
                solving.join()
            notify(observers, "comparison_ended", self)
        return self


# The default target: this share of the way from the start to the lowest loss.
TARGET_GAP = 0.1


def target_floor(comparison: Comparison, optimum: float | None) -> float | None:
    """What the default target closes in on: the optimum where known, else the lowest loss any run reached.

    A fixed share of the starting loss was out of reach for most MLPs within their budget,
    so the column was empty; the best any optimizer did is reachable by construction.
    """
    if optimum is not None:
        return optimum
    lows = [low for r in comparison.runs if (low := r.lowest_loss) is not None]
    return min(lows) if lows else None


def target_for(run: RunResult, target: float | None, floor: float | None) -> float | None:
    """``target``, or by default the loss 90 % of the way from the run's start down to ``floor``."""
    if target is not None:
        return target
    start = run.initial_loss
    if start is None or floor is None or not math.isfinite(start) or floor >= start:
        return None
    return floor + TARGET_GAP * (start - floor)


def target_column(target: float | None, has_optimum: bool) -> str:
    """The results table's name for the steps-to-target column."""
    if target is not None:
        return f"steps to loss ≤ {target:g}"
    if has_optimum:
        return "steps to 90 % of the way to the optimum"
    return "steps to 90 % of the way to the best loss reached"


def summary_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Per optimizer (over seeds): final and best validation metric, steps to target, time, status."""
    metric = metric_name(comparison.config)
    target = comparison.config.target_loss
    optimum = comparison.optimum  # read once: a thread may set it meanwhile
    floor = target_floor(comparison, optimum)
    column = target_column(target, optimum is not None)
    rows = []
    groups: dict[str, list[RunResult]] = {}
    for r in comparison.runs:
        groups.setdefault(r.label, []).append(r)
    for label, runs in groups.items():
        evals = [[rec for rec in r.records if rec.val_metric is not None] for r in runs]
        # A diverged run has no final value: its last finite point says nothing about the end.
        finals = [e[-1].val_metric for r, e in zip(runs, evals) if e and r.status is not Status.DIVERGED]
        # Nor a best: a run that diverged early would report its untrained start as its best.
        bests = [max(rec.val_metric for rec in e) for r, e in zip(runs, evals) if e and r.status is not Status.DIVERGED]
        train = [e[-1].train_loss for r, e in zip(runs, evals) if e and r.status is not Status.DIVERGED]
        row: dict[str, Any] = {"optimizer": label, "seeds": len(runs)}
        for name, values in ((f"final {metric}", finals), (f"best {metric}", bests), ("final train loss", train)):
            row[name] = _mean(values)
            if len(runs) > 1:  # the spread over seeds says whether a difference means anything
                row[f"{name} sd"] = statistics.stdev(values) if len(values) > 1 else None
        hits = [r.steps_to(goal) if (goal := target_for(r, target, floor)) is not None else None for r in runs]
        # A median only when every seed got there: one that never did is not "fast".
        row[column] = statistics.median(hits) if hits and all(h is not None for h in hits) else None
        row["training time (s)"] = _mean([r.wall_time for r in runs])
        row["status"] = ", ".join(sorted({r.status_text for r in runs}))
        rows.append(row)
    return rows


def metric_name(config: TrainingSetup) -> str:
    """What ``val_metric`` means for this config's data."""
    return "val R²" if get_dataset_spec(config.data.name).task == "regression" else "val accuracy"


def _mean(values: list[Any]) -> float | None:
    finite = [v for v in values if v is not None]
    return statistics.fmean(finite) if finite else None


ComparisonEvent = EngineChosen | RecordMade | RunEnded | OptimumFound | Elapsed | TrackingReport


class ComparisonWork(TrackedWork):
    """A comparison as background work (:mod:`dlopt_core.runner`): trained in a worker,
    mirrored here from the events it sends, so pages read :attr:`comparison` live."""

    RECIPE = ("config", "comparison_id", "track", "experiment", "parent", "key", "label")

    def __init__(
        self, config: ComparisonConfig | RunsPlan, *, track: bool = True, experiment: str | None = None,
        extra: dict[str, Any] | None = None, parent: str | None = None,
    ) -> None:
        self.config = config  # a ComparisonConfig, or anything with its runs() and key() (a sweep)
        self.key = config.key()
        self.label = f"compare {self.key}"
        self._tracked(track, experiment)  # a sweep's or a data plan's own experiment
        self.parent = parent  # a name: the runs are logged as children of one run
        self.comparison = Comparison(config)
        self.comparison_id = self.comparison.id
        self.extra = extra or {}  # what a page keeps beside it

    def run(self, emit: Emit, control: Control) -> None:
        trackers = self.trackers(**({"parent": self.parent} if self.parent else {}))
        comparison = Comparison(self.config, comparison_id=self.comparison_id)
        relay = Relay(emit, control, trackers)
        # Trackers first: a run's MLflow id exists before the relay reports it.
        comparison.execute(observers=[*trackers, relay], should_stop=control.should_stop)

    def apply(self, event: ComparisonEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        match event:
            case RecordMade(index, record):
                self.comparison.runs[index].apply(record)
            case RunEnded(index, status, error):
                run = self.comparison.runs[index]
                if not run.status.ended or run.status is not Status(status):
                    run.end(Status(status), error=error)
            case EngineChosen(index, engine):
                self.comparison.runs[index].engine = engine
            case Elapsed(seconds):
                self.comparison.elapsed_s = seconds
            case OptimumFound(value):
                self.comparison.optimum = value
            case TrackingReport():
                self.took(event)

    def finish(self, status: Status) -> None:
        """Runs that never reported an end (a worker ended hard) take the job's end."""
        for run in self.comparison.runs:
            if not run.status.ended:
                run.end(Status.CANCELLED if status is not Status.FAILED else Status.FAILED)
