"""The drift race: learners (a registry optimizer x an lr policy) on one drifting stream x seeds,
evaluated prequentially (each batch scored, then trained on), with River's drift detectors on
each learner's errors, scored against the stream's true drifts beside two baselines.

:class:`StreamConfig` is the frozen config (one flat form for MLflow, the URL and the CLI);
:class:`StreamRace` trains it (seed by seed, each learner on the same stream and the same
starting weights, calling the observers' ``stream_*`` hooks) and is also the live state a page
draws; :class:`StreamWork` runs it as background work and keeps a :class:`StreamRace` mirror in
the server, fed by typed events. Steps are mini-batches: drift regions, alarms, recovery and
time to detect are all counted in steps.
"""

from __future__ import annotations

import statistics
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import Flat, OptimizerConfig, check_seeds, config_hash
from dlopt_core.device import use_one_thread
from dlopt_core.engine.records import Status
from dlopt_core.experiments.events import Elapsed, ReportingRelay, TrackedWork, TrackingReport
from dlopt_core.experiments.observer import Observer, notify
from dlopt_core.runner.work import Control, Emit
from dlopt_core.stream import (
    BASELINES,
    DETECTORS,
    STREAMS,
    DetectorSettings,
    Policy,
    TorchLearner,
    Watch,
    baseline_alarms,
    get_stream_spec,
    make_stream,
    mean_score,
    prequential,
    recover_steps,
    rolling,
    score_alarms,
    stream_model,
)

StreamName = Literal[tuple(STREAMS)]  # type: ignore[valid-type]
DetectorName = Literal[tuple(DETECTORS)]  # type: ignore[valid-type]
MAX_STREAM_RUNS = 60
CHUNK = 20  # steps per live update: ~10 events per run on the default race


class LearnerConfig(OptimizerConfig):
    """A registry optimizer, its lr and an lr policy: ``adam:lr=0.01,policy=reset`` (the CLI and URL form)."""

    kind: ClassVar[str] = "learner"
    policy: Policy = "constant"

    @property
    def label(self) -> str:
        return f"{super().label} {self.policy}"


def _learner(text: str) -> LearnerConfig:
    return LearnerConfig.parse(text)


def _default_learners() -> tuple[LearnerConfig, ...]:
    return tuple(_learner(t) for t in (
        "sgd:lr=0.1,policy=constant", "sgd:lr=0.5,policy=decay", "adam:lr=0.01,policy=constant",
        "adam:lr=0.01,policy=reset",
    ))


class StreamConfig(Flat):
    """Learners racing on one drifting stream, each for every seed (stream and weights drawn from it)."""

    EXPERIMENT: ClassVar[str] = "dlopt-stream"
    KIND: ClassVar[str] = "stream"

    stream: StreamName = Field("digits_swap", description="the drifting stream")
    learners: tuple[LearnerConfig, ...] = Field(
        default_factory=_default_learners, min_length=1, max_length=12,
        description="optimizer:lr=X,policy=P; policies: constant, decay (lr/sqrt(t)), reset (state reset on an alarm)",
    )
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=10)
    batch_size: int = Field(20, ge=1, le=1000, description="samples per step")
    hidden: tuple[int, ...] = Field((32,), max_length=4, description="the MLP's hidden widths")
    window: int = Field(10, ge=1, le=1000, description="steps in the rolling accuracy and loss")
    recover_fraction: float = Field(0.95, gt=0.0, le=1.0, description="share of the pre-drift accuracy to get back")
    # Page-Hinkley watches for rising error only; ADWIN fires on any change, so as a reset signal it
    # also reset Adam while the learner was improving (4 of 5 resets on digits_swap, found in review).
    reset_detector: DetectorName = Field(
        "page_hinkley", description="the detector whose alarms reset a 'reset' learner (page_hinkley: rising error only)",
    )
    tolerance: int = Field(25, ge=0, le=10_000, description="steps after a drift's end an alarm still detects it")
    adwin_delta: float = Field(0.002, gt=0.0, lt=1.0, description="ADWIN's confidence")
    ph_threshold: float = Field(50.0, gt=0.0, le=1e6, description="Page-Hinkley's threshold")
    kswin_alpha: float = Field(0.005, gt=0.0, lt=1.0, description="KSWIN's test level")
    kswin_window: int = Field(60, ge=6, le=10_000, description="KSWIN's window, in steps")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden(cls, value: Any) -> Any:
        if isinstance(value, str):  # "32,16" or "32/16"
            return tuple(int(v) for v in value.replace("/", ",").split(",") if v.strip())
        return value

    @field_validator("learners", mode="before")
    @classmethod
    def _learners(cls, value: Any) -> Any:
        if isinstance(value, str):  # one spec, or several separated by spaces (MLflow, a URL)
            return tuple(_learner(t) for t in value.split())
        return tuple(_learner(v) if isinstance(v, str) else v for v in value)

    @model_validator(mode="after")
    def _fits(self) -> Self:
        for learner in self.learners:
            spec = get_optimizer(learner.name)
            if spec.needs_closure or spec.full_batch_only:
                raise ValueError(
                    f"learners: {learner.name!r} needs a closure or the full batch, which a stream does not give; "
                    "choose another"
                )
        labels = [lr.label for lr in self.learners]
        if twice := next((label for label in labels if labels.count(label) > 1), None):
            raise ValueError(f"learners: {twice!r} appears twice; change its lr, policy or a hyperparameter")
        if any(not 1 <= h <= 4096 for h in self.hidden):
            raise ValueError(f"hidden: each width must be in [1, 4096], got {self.hidden}")
        if self.n_steps < 2 * self.window:
            raise ValueError(f"batch_size: {self.batch_size} leaves {self.n_steps} steps, fewer than twice the window")
        if (n := len(self.learners) * len(self.seeds)) > MAX_STREAM_RUNS:
            raise ValueError(f"seeds: {n} runs is more than {MAX_STREAM_RUNS}; take fewer seeds or learners")
        return self

    @property
    def n_steps(self) -> int:
        """Steps in the stream (its samples in whole batches)."""
        return get_stream_spec(self.stream).n_samples // self.batch_size

    @property
    def drifts(self) -> tuple[tuple[int, int], ...]:
        """The stream's true drift regions, in steps (first and last step, inclusive)."""
        b = self.batch_size
        return tuple((s // b, max(s, e - 1) // b) for s, e in get_stream_spec(self.stream).drifts)

    @property
    def detector_settings(self) -> DetectorSettings:
        return DetectorSettings(self.adwin_delta, self.ph_threshold, self.kswin_alpha, self.kswin_window)

    def key(self) -> str:
        """Stable short hash: the same race gets the same job key in every process."""
        return "stream-" + config_hash(self)

    def parent_name(self) -> str:
        """The name of the MLflow run that holds the runs."""
        what = f"{len(self.learners)} learners" if len(self.learners) > 3 else " vs ".join(lr.label for lr in self.learners)
        return f"{self.key()} ({self.stream}: {what}, {len(self.seeds)} seeds)"


@dataclass
class LearnerRun:
    """One learner at one seed on the stream: its per-step scores and alarms (plain, picklable data)."""

    index: int
    learner: int  # its place in ``config.learners``
    label: str
    seed: int
    status: Status = Status.PENDING
    accuracy: list[float] = field(default_factory=list)  # each batch's, scored before training on it
    loss: list[float] = field(default_factory=list)
    alarms: dict[str, list[int]] = field(default_factory=lambda: {d: [] for d in DETECTORS})
    resets: list[int] = field(default_factory=list)  # steps where the optimizer state was reset
    error: str | None = None

    @property
    def steps(self) -> int:
        return len(self.accuracy)

    def rolling_accuracy(self, window: int) -> list[float]:
        return rolling(self.accuracy, window)

    def rolling_loss(self, window: int) -> list[float]:
        return rolling(self.loss, window)

    @property
    def status_text(self) -> str:
        return f"failed: {self.error}" if self.status is Status.FAILED else str(self.status)

    def extend(self, accuracy: Sequence[float], loss: Sequence[float], alarms: dict[str, list[int]],
               resets: Sequence[int]) -> None:
        self.accuracy.extend(accuracy)
        self.loss.extend(loss)
        for name, steps in alarms.items():
            self.alarms.setdefault(name, []).extend(steps)
        self.resets.extend(resets)


class StreamRace:
    """A drift race: its runs (seed-major, then learner) and time; trains with :meth:`execute`."""

    def __init__(self, config: StreamConfig, *, race_id: str | None = None) -> None:
        self.config = config
        self.id = race_id or uuid.uuid4().hex[:12]
        pairs = [(s, i) for s in config.seeds for i in range(len(config.learners))]
        self.runs = [LearnerRun(n, i, config.learners[i].label, s) for n, (s, i) in enumerate(pairs)]
        self.elapsed_s = 0.0

    @property
    def drifts(self) -> tuple[tuple[int, int], ...]:
        """The stream's true drift regions in steps: what a page shades."""
        return self.config.drifts

    @property
    def n_steps(self) -> int:
        return self.config.n_steps

    @property
    def progress(self) -> float:
        """Share of the steps done over all runs."""
        done = sum(self.n_steps if r.status.ended else r.steps for r in self.runs)
        return min(1.0, done / (len(self.runs) * self.n_steps))

    @property
    def status(self) -> Status:
        """The race's state, read from its runs."""
        if all(r.status is Status.PENDING for r in self.runs):
            return Status.PENDING
        if not all(r.status.ended for r in self.runs):
            return Status.RUNNING
        if any(r.status is Status.CANCELLED for r in self.runs):
            return Status.CANCELLED
        return Status.FAILED if any(r.status is Status.FAILED for r in self.runs) else Status.FINISHED

    def runs_of(self, learner: int) -> list[LearnerRun]:
        return [r for r in self.runs if r.learner == learner]

    def recover(self, run: LearnerRun) -> list[int | None]:
        """Steps ``run`` took to recover after each drift whose span (to the next drift, or the
        stream's end) it has trained through; None: it did not recover within that span. A drift
        still in progress is not in the list yet: mid-race it is neither recovered nor "never"."""
        cfg = self.config
        acc = run.rolling_accuracy(cfg.window)
        ends = [d[0] for d in self.drifts[1:]] + [cfg.n_steps]
        drifts = [d for d, end in zip(self.drifts, ends, strict=True) if len(acc) >= end or run.status.ended and d[0] < len(acc)]
        return recover_steps(acc, drifts, fraction=cfg.recover_fraction, pre_window=cfg.window)

    def execute(self, *, observers: Sequence[Observer] = (), should_stop: Callable[[], bool] = lambda: False) -> Self:
        """Race every learner on every seed's stream, in order, telling ``observers``; a stop cancels the rest."""
        use_one_thread()
        began = time.perf_counter()
        notify(observers, "stream_started", self)
        try:
            for seed in self.config.seeds:
                if should_stop():
                    break
                stream = make_stream(self.config.stream, seed)
                for run in (r for r in self.runs if r.seed == seed):
                    if should_stop():
                        break
                    self._race(run, stream, observers, should_stop)
        finally:
            for run in self.runs:
                if not run.status.ended:
                    run.status = Status.CANCELLED
                    notify(observers, "stream_run_ended", self, run)
            self.elapsed_s = time.perf_counter() - began
            notify(observers, "stream_ended", self)
        return self

    def _race(self, run: LearnerRun, stream: Any, observers: Sequence[Observer], should_stop: Callable[[], bool]) -> None:
        cfg = self.config
        spec = cfg.learners[run.learner]
        run.status = Status.RUNNING
        notify(observers, "stream_run_started", self, run)
        try:
            model = stream_model(stream.n_features, stream.n_classes, cfg.hidden, run.seed)
            learner = TorchLearner(model, optimizer=spec.name, lr=spec.lr, params=spec.params, policy=spec.policy)
            watches = {d: Watch(d, cfg.detector_settings, run.seed) for d in DETECTORS}
            reset_on = cfg.reset_detector if spec.policy == "reset" else None
            chunk = _Chunk()
            rows = prequential(learner, stream.batches(cfg.batch_size), watches=watches, reset_on=reset_on)
            try:
                for row in rows:
                    chunk.add(row)
                    if len(chunk.accuracy) == CHUNK or row.step == cfg.n_steps - 1:
                        self._flush(run, chunk, observers)
                        chunk = _Chunk()
                    if should_stop():
                        break
            finally:
                rows.close()
            if chunk.accuracy:
                self._flush(run, chunk, observers)
            run.status = Status.FINISHED if run.steps == cfg.n_steps else Status.CANCELLED
        except Exception as exc:  # one run's crash is its own status; the others go on
            run.status, run.error = Status.FAILED, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        notify(observers, "stream_run_ended", self, run)

    def _flush(self, run: LearnerRun, chunk: _Chunk, observers: Sequence[Observer]) -> None:
        start = run.steps
        run.extend(chunk.accuracy, chunk.loss, chunk.alarms, chunk.resets)
        notify(observers, "stream_steps", self, run, start)


@dataclass
class _Chunk:
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    alarms: dict[str, list[int]] = field(default_factory=dict)
    resets: list[int] = field(default_factory=list)

    def add(self, row: Any) -> None:
        self.accuracy.append(row.accuracy)
        self.loss.append(row.loss)
        for name in row.alarms:
            self.alarms.setdefault(name, []).append(row.step)
        if row.reset:
            self.resets.append(row.step)


# -- what a race measured --


def run_summary(race: StreamRace, run: LearnerRun) -> dict[str, Any]:
    """One run's final accuracy (the rolling window at its last step), average accuracy and recovery per drift."""
    acc = run.rolling_accuracy(race.config.window)
    return {
        "learner": run.label,
        "seed": run.seed,
        "status": run.status_text,
        "final_accuracy": acc[-1] if acc else None,
        "average_accuracy": statistics.fmean(run.accuracy) if run.accuracy else None,
        "recover_steps": race.recover(run),
        "resets": len(run.resets),
        "alarms": {d: len(a) for d, a in run.alarms.items()},
    }


def recovery_rows(race: StreamRace) -> list[dict[str, Any]]:
    """One row per learner: its mean final and average accuracy and mean steps to recover after each drift
    over the seeds that recovered (``recovered_i``: how many of them did)."""
    rows = []
    for i, learner in enumerate(race.config.learners):
        runs = [r for r in race.runs_of(i) if r.accuracy]
        summaries = [run_summary(race, r) for r in runs]
        row: dict[str, Any] = {"learner": learner.label, "optimizer": learner.name, "policy": learner.policy}
        for key in ("final_accuracy", "average_accuracy"):
            values = [s[key] for s in summaries if s[key] is not None]
            row[key] = statistics.fmean(values) if values else None
        for d in range(len(race.drifts)):
            steps = [s["recover_steps"][d] for s in summaries if d < len(s["recover_steps"])]
            got = [v for v in steps if v is not None]
            row[f"recover_{d + 1}"] = statistics.fmean(got) if got else None
            row[f"recovered_{d + 1}"] = f"{len(got)}/{len(steps)}" if steps else "-"
        row["resets"] = statistics.fmean(s["resets"] for s in summaries) if summaries else None
        rows.append(row)
    return rows


def detector_rows(race: StreamRace) -> list[dict[str, Any]]:
    """One row per detector: its mean precision, recall, time to detect and false alarms per 1,000 steps
    over every learner x seed's error stream, beside the ``always`` and ``never`` baselines scored the
    same way on the same runs."""
    cfg = race.config
    runs = [r for r in race.runs if r.status is Status.FINISHED]

    def scored(alarms_of: Callable[[LearnerRun], list[int]]) -> dict[str, float | None]:
        return mean_score([score_alarms(alarms_of(r), race.drifts, n_steps=r.steps, tolerance=cfg.tolerance)
                           for r in runs])

    baselines = {b: scored(lambda r, b=b: baseline_alarms(b, r.steps)) for b in BASELINES}
    rows = []
    for name, spec in DETECTORS.items():
        row: dict[str, Any] = {"detector": spec.label, "name": name}
        own = scored(lambda r, name=name: r.alarms.get(name, []))
        for key in ("precision", "recall", "mean_time_to_detect", "false_per_1000"):
            row[key] = own[key]
            for b in BASELINES:
                row[f"{b}_{key}"] = baselines[b][key]
        row["alarms"] = own["alarms"]
        rows.append(row)
    return rows


# -- events: what the worker tells the server's mirror --


@dataclass(frozen=True)
class StreamRunStarted:
    index: int


@dataclass(frozen=True)
class StepsDone:
    index: int
    start: int  # the first step in this chunk
    accuracy: list[float]
    loss: list[float]
    alarms: dict[str, list[int]]
    resets: list[int]


@dataclass(frozen=True)
class StreamRunEnded:
    index: int
    status: str
    error: str | None


StreamEvent = StreamRunStarted | StepsDone | StreamRunEnded | Elapsed | TrackingReport


class StreamRelay(ReportingRelay):
    """Sends a race's progress to the server as events."""

    def stream_run_started(self, race: StreamRace, run: LearnerRun) -> None:
        self.emit(StreamRunStarted(run.index), urgent=False)
        if run.index == 0:
            self._report()  # the parent's MLflow id exists: a page can link it while runs train

    def stream_steps(self, race: StreamRace, run: LearnerRun, start: int) -> None:
        alarms = {d: [s for s in steps if s >= start] for d, steps in run.alarms.items()}
        self.emit(StepsDone(run.index, start, run.accuracy[start:], run.loss[start:],
                            {d: s for d, s in alarms.items() if s}, [s for s in run.resets if s >= start]),
                  urgent=start == 0)

    def stream_run_ended(self, race: StreamRace, run: LearnerRun) -> None:
        self.emit(StreamRunEnded(run.index, str(run.status), run.error), urgent=True)

    def stream_ended(self, race: StreamRace) -> None:
        self.emit(Elapsed(race.elapsed_s), urgent=True)
        self._report()


class StreamWork(TrackedWork):
    """A drift race as background work: trained in a worker, mirrored here in :attr:`race`.

    ``run_ids`` maps each run's index to its MLflow run (the parent under -1).
    """

    RECIPE = ("config", "race_id", "track", "experiment", "key", "label")

    def __init__(self, config: StreamConfig, *, track: bool = True, experiment: str | None = None) -> None:
        self.config = config
        self.key = config.key()
        self.label = f"stream {self.key}"
        self._tracked(track, experiment)
        self.race = StreamRace(config)
        self.race_id = self.race.id

    def run(self, emit: Emit, control: Control) -> None:
        trackers = self.trackers()
        race = StreamRace(self.config, race_id=self.race_id)
        # Trackers first: a run's MLflow id exists before the relay reports it.
        race.execute(observers=[*trackers, StreamRelay(emit, trackers)], should_stop=control.should_stop)

    def apply(self, event: StreamEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        match event:
            case StepsDone(index, start, accuracy, loss, alarms, resets):
                run = self.race.runs[index]
                if run.steps == start:  # an event seen twice is taken once
                    run.extend(accuracy, loss, alarms, resets)
            case StreamRunStarted(index):
                self.race.runs[index].status = Status.RUNNING
            case StreamRunEnded(index, status, error):
                run = self.race.runs[index]
                run.status, run.error = Status(status), error
            case Elapsed(seconds):
                self.race.elapsed_s = seconds
            case TrackingReport():
                self.took(event)

    def finish(self, status: Status) -> None:
        """Runs that never reported an end (a worker ended hard) take the job's end."""
        for run in self.race.runs:
            if not run.status.ended:
                run.status = Status.FAILED if status is Status.FAILED else Status.CANCELLED
