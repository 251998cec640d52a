"""What a running work tells the server: typed events, and the one relay that sends them.

A work runs in its slot (a worker process, a thread) and the server keeps a live mirror of
it; the :class:`Relay` is an observer beside the trackers that turns every hook it is called
with into an event, and each work's ``apply`` takes them with ``match``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dlopt_core.config import RunConfig
from dlopt_core.engine.records import Record
from dlopt_core.experiments.compress.rows import CompressionRow, LayerSensitivity
from dlopt_core.experiments.observer import Observer, tracking_observers
from dlopt_core.experiments.study.summary import StudySummary, TrialRow, trial_row
from dlopt_core.runner.work import Control, Emit

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

# ``Comparison``, ``RunResult`` and ``Compression`` are named without an import, as in
# :mod:`dlopt_core.experiments.observer`: their modules send these events.

# -- runs (a comparison's, a compression's training runs) --


@dataclass(frozen=True)
class EngineChosen:
    """Which engine trains run ``index`` (a run the mirror built from the same config)."""

    index: int
    engine: str


@dataclass(frozen=True)
class RunAdded:
    """A run the mirror does not know yet (a compression's fine-tuning or student), started."""

    index: int
    config: RunConfig
    total_steps: int
    name: str | None


@dataclass(frozen=True)
class RecordMade:
    """One record of run ``index`` (without its weights)."""

    index: int
    record: Record


@dataclass(frozen=True)
class RunEnded:
    """Run ``index`` ended with ``status``."""

    index: int
    status: str
    error: str | None


@dataclass(frozen=True)
class OptimumFound:
    """The lowest train loss the model can reach."""

    value: float


@dataclass(frozen=True)
class Elapsed:
    """The whole work's time so far."""

    seconds: float


# -- a compression --


@dataclass(frozen=True)
class Progressed:
    """A compression's phase, share done and state."""

    phase: str
    done_units: int
    status: str
    error: str | None
    elapsed_s: float


@dataclass(frozen=True)
class RowDone:
    """A variant, measured."""

    row: CompressionRow


@dataclass(frozen=True)
class SensitivityFound:
    """The per-layer sensitivity of the baseline."""

    layers: list[LayerSensitivity]


# -- a study worker --


@dataclass(frozen=True)
class TrialEnded:
    """A trial this worker ran."""

    row: TrialRow


@dataclass(frozen=True)
class WorkerEnded:
    """The worker stopped: the study as stored then."""

    summary: StudySummary


# -- every kind --


@dataclass(frozen=True)
class TrackingReport:
    """What the trackers stored: MLflow run ids (by run index, row label or trial number, as
    the experiment keys its runs), errors, writes still pending."""

    run_ids: dict[Any, str]
    errors: list[str]
    unwritten: int


def tracking_report(trackers: Sequence[Observer]) -> TrackingReport:
    """What ``trackers`` stored so far: their run ids, errors and writes still pending."""
    return TrackingReport(
        {k: rid for t in trackers for k, rid in getattr(t, "run_ids", {}).items()},
        [e for t in trackers for e in getattr(t, "errors", [])],
        sum(getattr(t, "unwritten", 0) for t in trackers),
    )


class ReportingRelay(Observer):
    """The base of every relay: it sends a work's events to the server with ``emit``, and the
    trackers' report (run ids, errors, pending writes) when it has news of them."""

    def __init__(self, emit: Emit, trackers: Sequence[Observer]) -> None:
        self.emit, self.trackers = emit, trackers

    def _report(self) -> None:
        self.emit(tracking_report(self.trackers), urgent=True)


class TrackedWork:
    """What every work that logs to a tracking store shares (a comparison, a transfer, a sharing
    experiment): it travels to the worker as its recipe (the names in ``RECIPE``; the live mirror
    stays in the server), makes its trackers there, and takes their report into the mirror."""

    RECIPE: ClassVar[tuple[str, ...]]
    config: Any

    def _tracked(self, track: bool, experiment: str | None) -> None:
        self.track = track
        self.experiment = experiment or self.config.EXPERIMENT
        self.run_ids: dict[Any, str] = {}
        self.tracking_errors: list[str] = []
        self.unwritten = 0

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.RECIPE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The recipe alone: the worker builds what it trains in run(); a mirror built here as
        # well would check every run of the config once more, for nothing.
        self.__dict__.update(state)

    def trackers(self, **options: Any) -> list[Observer]:
        """The installed trackers for this work's kind (none with ``track`` off), in the worker."""
        if not self.track:
            return []
        from dlopt_core.runner.plugins import tracking_start

        tracking_start()
        return tracking_observers(self.config.KIND, experiment=self.experiment, **options)

    def took(self, report: TrackingReport) -> None:
        """The trackers' report, into the mirror."""
        self.run_ids, self.tracking_errors, self.unwritten = dict(report.run_ids), list(report.errors), report.unwritten


class Relay(ReportingRelay):
    """Sends an experiment's progress to the server as events, and takes a comparison's per-run stops.

    It reports what it is called with: a compression starts no comparison, so its runs are
    sent whole (:class:`RunAdded`) and it has no optimum or per-run stop.
    """

    def __init__(self, emit: Emit, control: Control, trackers: Sequence[Observer]) -> None:
        super().__init__(emit, trackers)
        self.control = control
        self._comparison: Comparison | None = None
        self._started = 0
        self._optimum: float | None = None

    # -- runs --

    def comparison_started(self, comparison: Comparison) -> None:
        self._comparison = comparison

    def run_started(self, run: RunResult) -> None:
        if self._comparison is None:
            self.emit(RunAdded(run.index, run.config, run.total_steps, run.name), urgent=False)
            return
        self.emit(EngineChosen(run.index, run.engine), urgent=False)
        self._started += 1
        if self._started == len(self._comparison.runs):
            self._report()  # every run's MLflow id exists now: a page can link them while they train

    def record(self, run: RunResult, rec: Record) -> None:
        # The first points and every evaluation go at once: they are what a person waits to see.
        # The final weights stay here: the trackers beside this relay have stored them.
        self.emit(RecordMade(run.index, rec if rec.state is None else rec._replace(state=None)), urgent=rec.is_eval)
        comparison = self._comparison
        if comparison is None:
            return
        if self._optimum is None and (optimum := comparison.optimum) is not None:
            self._optimum = optimum
            self.emit(OptimumFound(optimum), urgent=True)
        for index in self.control.take_run_stops():
            comparison.stop_run(index)

    def run_ended(self, run: RunResult) -> None:
        self.emit(RunEnded(run.index, str(run.status), run.error), urgent=True)

    def comparison_ended(self, comparison: Comparison) -> None:
        if comparison.optimum is not None:
            self.emit(OptimumFound(comparison.optimum), urgent=True)
        self.emit(Elapsed(comparison.elapsed_s), urgent=True)
        self._report()

    # -- a compression --

    def progressed(self, compression: Compression) -> None:
        c = compression
        self.emit(Progressed(c.phase, c.done_units, str(c.status), c.error, c.elapsed_s), urgent=True)

    def row_done(self, compression: Compression, row: CompressionRow) -> None:
        self.emit(RowDone(row), urgent=True)

    def sensitivity_done(self, compression: Compression) -> None:
        self.emit(SensitivityFound(list(compression.sensitivity)), urgent=True)

    def compression_ended(self, compression: Compression) -> None:
        self._report()

    # -- a study worker --

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.emit(TrialEnded(trial_row(trial)), urgent=True)

    def worker_ended(self, study: optuna.Study, summary: StudySummary) -> None:
        self.emit(WorkerEnded(summary), urgent=True)
        self._report()

