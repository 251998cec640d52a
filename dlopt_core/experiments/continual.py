"""Continual learning compared: optimizers x strategies x seeds on one task sequence.

:class:`ContinualConfig` is the frozen config (one flat form for MLflow, the URL and the CLI);
:class:`Continual` trains it (run by run, task by task, calling the observers' ``continual_*``
hooks) and is also the live state a page draws; :class:`ContinualWork` runs it as background
work and keeps a :class:`Continual` mirror in the server, fed by typed events.

A run is one optimizer with one strategy at one seed: one model (drawn from the seed, so every
optimizer and strategy starts from the same weights) trained on each task in turn with the
ordinary loop, a fresh optimizer per task (its state is not carried across a task boundary,
as Avalanche does by default). After each task it is tested on every task's test rows: a row
of the accuracy matrix R(i, j).
"""

from __future__ import annotations

import statistics
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from dlopt_core.catalog.models import build_model
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import (
    Device,
    Flat,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    check_distinct,
    check_optimizer_fits,
    check_seeds,
    config_hash,
)
from dlopt_core.continual import (
    SEQUENCES,
    STRATEGIES,
    Strategy,
    StrategySettings,
    Task,
    anytime_accuracy,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    get_sequence,
    get_strategy,
    load_sequence,
)
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.loop import evaluate, run as train
from dlopt_core.engine.records import Status
from dlopt_core.experiments.events import Elapsed, ReportingRelay, TrackedWork, TrackingReport
from dlopt_core.experiments.observer import Observer, notify
from dlopt_core.runner.work import Control, Emit

__all__ = [
    "MEASURES", "Continual", "ContinualConfig", "ContinualRun", "ContinualSummary", "ContinualWork",
    "mean_matrix", "summarize", "summary_rows",
]

MAX_CONTINUAL_RUNS = 120
# The summary's measures, by the name the CLI's JSON, the table and MLflow give them.
MEASURES = ("average_accuracy", "forgetting", "bwt", "fwt")


def _default_optimizers() -> tuple[OptimizerConfig, ...]:
    return (OptimizerConfig.make(name="sgd", lr=0.1), OptimizerConfig.make(name="adam", lr=0.001))


def _words(value: Any) -> Any:
    # "naive,replay" (the CLI, a URL) as a tuple.
    return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


class ContinualConfig(Flat):
    """A task sequence learned by every optimizer x strategy x seed."""

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-continual"
    KIND: ClassVar[str] = "continual"

    sequence: str = Field("split-digits", description=f"the task sequence; one of: {', '.join(SEQUENCES)}")
    sequence_seed: int = Field(0, ge=0, le=2**31 - 1, description="draws the tasks' rows (and permutations)")
    optimizers: tuple[OptimizerConfig, ...] = Field(default_factory=_default_optimizers, min_length=1, max_length=10)
    strategies: tuple[str, ...] = Field(
        tuple(STRATEGIES), min_length=1, description=f"comma-separated; names: {', '.join(STRATEGIES)}"
    )
    model: ModelConfig = Field(default_factory=lambda: ModelConfig.make(name="mlp", params={"hidden": (64,)}))
    epochs: int = Field(3, ge=1, le=1000, description="epochs per task")
    batch_size: int = Field(32, ge=1, le=100_000)
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=10)
    replay_size: int = Field(200, ge=1, le=100_000, description="replay: the most rows the buffer keeps")
    # 100: at 300 and more, SGD at lr 0.1 diverged on split digits (the penalty's curvature λF
    # times the lr passes 2); at 100 it did not, and Adam forgot 0.58 against naive's 0.72 (3 seeds).
    ewc_lambda: float = Field(
        100.0, ge=0.0, le=1e9, allow_inf_nan=False, description="EWC: the penalty's weight λ"
    )
    device: Device = "auto"

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @field_validator("optimizers", mode="before")
    @classmethod
    def _optimizers(cls, value: Any) -> Any:
        # Specs as text ("adam:lr=0.01"), one or several separated by spaces, read as configs.
        if isinstance(value, str):
            value = value.split()
        return tuple(OptimizerConfig.parse(v) if isinstance(v, str) else v for v in value)

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategies(cls, value: Any) -> Any:
        value = _words(value)
        for name in value:
            get_strategy(name)
        if len(set(value)) != len(value):
            raise ValueError(f"strategies: each strategy once, got {', '.join(value)}")
        return value

    @field_validator("sequence")
    @classmethod
    def _sequence(cls, value: str) -> str:
        get_sequence(value)
        return value

    @model_validator(mode="after")
    def _fits(self) -> Self:
        check_distinct(self.optimizers)
        for opt in self.optimizers:  # what each run checks, said before any run starts
            check_optimizer_fits(opt, batch_size=self._batch(opt), precision="fp32")
        self.run_config(self.optimizers[0], self.seeds[0])  # the model fits the digits
        if (n := len(self.optimizers) * len(self.strategies) * len(self.seeds)) > MAX_CONTINUAL_RUNS:
            raise ValueError(
                f"seeds: {n} runs (optimizers x strategies x seeds) is more than {MAX_CONTINUAL_RUNS}; take fewer"
            )
        return self

    def _batch(self, opt: OptimizerConfig) -> int | None:
        return None if get_optimizer(opt.name).full_batch_only else self.batch_size

    @property
    def tasks(self) -> tuple[str, ...]:
        """The sequence's task labels, in training order."""
        return get_sequence(self.sequence).tasks

    def plan(self) -> list[tuple[OptimizerConfig, str, int]]:
        """``(optimizer, strategy, seed)`` of every run in training order: seed by seed, so a
        stopped experiment has every optimizer x strategy at its first seeds."""
        return [(o, s, seed) for seed in self.seeds for o in self.optimizers for s in self.strategies]

    def run_config(self, optimizer: OptimizerConfig, seed: int) -> RunConfig:
        """The loop's config of one task of a run (its data, the task's, is given to the loop)."""
        return RunConfig.make(
            data={"name": "digits"}, model=self.model, epochs=self.epochs, batch_size=self._batch(optimizer),
            device=self.device, optimizer=optimizer, seed=seed,
        )

    def settings(self) -> StrategySettings:
        return StrategySettings(replay_size=self.replay_size, ewc_lambda=self.ewc_lambda)

    def key(self) -> str:
        """Stable short hash: the same experiment gets the same job key in every process."""
        return "continual-" + config_hash(self)

    def parent_name(self) -> str:
        """The name of the MLflow run that holds the runs."""
        opts = " vs ".join(o.label for o in self.optimizers)
        return f"{self.key()} ({self.sequence}: {opts} x {', '.join(self.strategies)}, {len(self.seeds)} seeds)"


@dataclass
class ContinualRun:
    """One optimizer x strategy at one seed: its accuracy matrix so far and how it ended (plain, picklable)."""

    index: int
    optimizer: str  # the optimizer's label (unique in its config)
    strategy: str
    seed: int
    status: Status = Status.PENDING
    initial: list[float] = field(default_factory=list)  # b_j: each task's accuracy at initialisation
    rows: list[list[float]] = field(default_factory=list)  # R(i, j): row i after task i
    task_seconds: list[float] = field(default_factory=list)  # training time of each task
    error: str | None = None
    diverged_task: int | None = None

    @property
    def measures(self) -> dict[str, float | None]:
        """The measures after the last task done (see :mod:`dlopt_core.continual.measures`)."""
        return {
            "average_accuracy": average_accuracy(self.rows), "forgetting": forgetting(self.rows),
            "bwt": backward_transfer(self.rows), "fwt": forward_transfer(self.rows, self.initial),
        }

    @property
    def anytime(self) -> list[float]:
        return anytime_accuracy(self.rows)

    @property
    def elapsed_s(self) -> float:
        return sum(self.task_seconds)

    @property
    def status_text(self) -> str:
        if self.status is Status.DIVERGED:
            return f"diverged in task {self.diverged_task}"
        if self.status is Status.FAILED:
            return f"failed: {self.error}"
        return str(self.status)


@torch.no_grad()
def task_accuracies(model: nn.Module, tasks: Sequence[Task]) -> list[float]:
    """``model``'s accuracy on each task's test rows (10-way, no task id)."""
    was_training = model.training
    model.eval()
    out = [evaluate(model, t.data, t.data.x_val, t.data.y_val)[1] for t in tasks]
    model.train(was_training)
    return out


class Continual:
    """A continual-learning experiment: its runs (seed-major), and time; trains with :meth:`execute`."""

    def __init__(self, config: ContinualConfig, *, continual_id: str | None = None) -> None:
        self.config = config
        self.id = continual_id or uuid.uuid4().hex[:12]
        self.runs = [ContinualRun(i, o.label, s, seed) for i, (o, s, seed) in enumerate(config.plan())]
        self.elapsed_s = 0.0

    @property
    def progress(self) -> float:
        """Share of the tasks done over all runs."""
        n = len(self.config.tasks)
        done = sum(n if r.status.ended else len(r.rows) for r in self.runs)
        return min(1.0, done / (n * len(self.runs)))

    def runs_of(self, optimizer: str, strategy: str) -> list[ContinualRun]:
        """The runs (one per seed) of an optimizer label and a strategy name."""
        return [r for r in self.runs if r.optimizer == optimizer and r.strategy == strategy]

    def execute(self, *, observers: Sequence[Observer] = (), should_stop: Callable[[], bool] = lambda: False) -> Self:
        """Train every run in order, telling ``observers``; a stop cancels what has not ended."""
        cfg = self.config
        use_one_thread()
        tasks = load_sequence(cfg.sequence, seed=cfg.sequence_seed, device=resolve_device(cfg.device))
        began = time.perf_counter()
        notify(observers, "continual_started", self)
        try:
            for run, (optimizer, _, _) in zip(self.runs, cfg.plan(), strict=True):
                if should_stop():
                    break
                self._train(run, optimizer, tasks, observers, should_stop)
        finally:
            for run in self.runs:
                if not run.status.ended:
                    run.status = Status.CANCELLED
                    notify(observers, "continual_run_ended", self, run)
            self.elapsed_s = time.perf_counter() - began
            notify(observers, "continual_ended", self)
        return self

    def _train(self, run: ContinualRun, optimizer: OptimizerConfig, tasks: Sequence[Task],
               observers: Sequence[Observer], should_stop: Callable[[], bool]) -> None:
        cfg = self.config
        run.status = Status.RUNNING
        try:
            config = cfg.run_config(optimizer, run.seed)
            model = build_model(cfg.model, tasks[0].data, run.seed)
            strategy = get_strategy(run.strategy).make(cfg.settings())
            run.initial = task_accuracies(model, tasks)
            notify(observers, "continual_run_started", self, run)
            for task in tasks:
                began = time.perf_counter()
                ended = _fit(model, strategy, config, task, should_stop)
                if ended is not Status.FINISHED:
                    run.status = ended
                    run.diverged_task = task.index if ended is Status.DIVERGED else None
                    break
                strategy.task_done(model, task.data)
                run.task_seconds.append(time.perf_counter() - began)
                run.rows.append(task_accuracies(model, tasks))
                notify(observers, "continual_task_done", self, run)
            else:
                run.status = Status.FINISHED
        except Exception as exc:  # one run's crash is its own status; the others go on
            run.status, run.error = Status.FAILED, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        notify(observers, "continual_run_ended", self, run)


def _fit(model: nn.Module, strategy: Strategy, config: RunConfig, task: Task,
         should_stop: Callable[[], bool]) -> Status:
    """Train ``model`` in place on one task; how it ended (finished, diverged or cancelled)."""
    records = train(config, data=task.data, hooks=strategy.hooks(model), model=model, train_loss=False)
    try:
        for rec in records:
            if rec.status is Status.DIVERGED:
                return Status.DIVERGED
            if should_stop():
                return Status.CANCELLED
    finally:
        records.close()
    return Status.FINISHED


# -- summaries: over seeds --


@dataclass(frozen=True)
class ContinualSummary:
    """One optimizer x strategy over its finished seeds: each measure's mean and sd."""

    optimizer: str
    strategy: str
    means: dict[str, float | None]
    sds: dict[str, float | None]
    anytime: list[float]  # mean over the finished seeds, after each task
    finished: int
    runs: int


def _usable(runs: Sequence[ContinualRun]) -> list[ContinualRun]:
    return [r for r in runs if r.status not in (Status.DIVERGED, Status.FAILED)]


def mean_matrix(continual: Continual, optimizer: str, strategy: str) -> list[list[float]]:
    """R(i, j) averaged over the seeds that have done task i (rows so far, diverged or failed runs left out)."""
    runs = _usable(continual.runs_of(optimizer, strategy))
    out = []
    for i in range(len(continual.config.tasks)):
        rows = [r.rows[i] for r in runs if len(r.rows) > i]
        if not rows:
            break
        out.append([statistics.fmean(col) for col in zip(*rows, strict=True)])
    return out


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    # One value has no spread: None, not a 0 that reads as "every seed agreed".
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(continual: Continual) -> list[ContinualSummary]:
    """Per optimizer x strategy (config order), the measures of its finished runs: mean and sd over seeds."""
    out = []
    for opt in continual.config.optimizers:
        for strategy in continual.config.strategies:
            runs = continual.runs_of(opt.label, strategy)
            done = [r for r in runs if r.status is Status.FINISHED]
            means, sds = {}, {}
            for m in MEASURES:
                means[m], sds[m] = _spread([v for r in done if (v := r.measures[m]) is not None])
            anytime = [statistics.fmean(col) for col in zip(*(r.anytime for r in done), strict=True)] if done else []
            out.append(ContinualSummary(opt.label, strategy, means, sds, anytime, len(done), len(runs)))
    return out


def summary_rows(continual: Continual) -> list[dict[str, Any]]:
    """One flat row per optimizer x strategy: each measure's mean and sd over the finished seeds."""
    rows = []
    for s in summarize(continual):
        row: dict[str, Any] = {"optimizer": s.optimizer, "strategy": s.strategy}
        for m in MEASURES:
            row[m], row[f"{m}_sd"] = s.means[m], s.sds[m]
        row["finished"] = f"{s.finished}/{s.runs}"
        rows.append(row)
    return rows


# -- events: what the worker tells the server's mirror --


@dataclass(frozen=True)
class ContinualRunStarted:
    index: int
    initial: list[float]


@dataclass(frozen=True)
class TaskDone:
    index: int
    row: list[float]
    seconds: float


@dataclass(frozen=True)
class ContinualRunEnded:
    index: int
    status: str
    error: str | None
    diverged_task: int | None


ContinualEvent = ContinualRunStarted | TaskDone | ContinualRunEnded | Elapsed | TrackingReport


class ContinualRelay(ReportingRelay):
    """Sends a continual-learning experiment's progress to the server as events."""

    def continual_run_started(self, continual: Continual, run: ContinualRun) -> None:
        self.emit(ContinualRunStarted(run.index, list(run.initial)), urgent=True)
        if run.index == 0:
            self._report()  # the parent's MLflow id exists: a page can link it while runs train

    def continual_task_done(self, continual: Continual, run: ContinualRun) -> None:
        self.emit(TaskDone(run.index, list(run.rows[-1]), run.task_seconds[-1]), urgent=True)

    def continual_run_ended(self, continual: Continual, run: ContinualRun) -> None:
        self.emit(ContinualRunEnded(run.index, str(run.status), run.error, run.diverged_task), urgent=True)

    def continual_ended(self, continual: Continual) -> None:
        self.emit(Elapsed(continual.elapsed_s), urgent=True)
        self._report()


class ContinualWork(TrackedWork):
    """A continual-learning experiment as background work: trained in a worker, mirrored here in
    :attr:`continual`.

    ``run_ids`` maps each run's index to its MLflow run (the parent under -1).
    """

    RECIPE = ("config", "continual_id", "track", "experiment", "key", "label")

    def __init__(self, config: ContinualConfig, *, track: bool = True, experiment: str | None = None) -> None:
        self.config = config
        self.key = config.key()
        self.label = f"continual {self.key}"
        self._tracked(track, experiment)
        self.continual = Continual(config)
        self.continual_id = self.continual.id

    def run(self, emit: Emit, control: Control) -> None:
        trackers = self.trackers()
        continual = Continual(self.config, continual_id=self.continual_id)
        # Trackers first: a run's MLflow id exists before the relay reports it.
        continual.execute(observers=[*trackers, ContinualRelay(emit, trackers)], should_stop=control.should_stop)

    def apply(self, event: ContinualEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        match event:
            case TaskDone(index, row, seconds):
                run = self.continual.runs[index]
                run.rows.append(row)
                run.task_seconds.append(seconds)
            case ContinualRunStarted(index, initial):
                run = self.continual.runs[index]
                run.status, run.initial = Status.RUNNING, initial
            case ContinualRunEnded(index, status, error, diverged_task):
                run = self.continual.runs[index]
                run.status, run.error, run.diverged_task = Status(status), error, diverged_task
            case Elapsed(seconds):
                self.continual.elapsed_s = seconds
            case TrackingReport():
                self.took(event)

    def finish(self, status: Status) -> None:
        """Runs that never reported an end (a worker ended hard) take the job's end."""
        for run in self.continual.runs:
            if not run.status.ended:
                run.status = Status.FAILED if status is Status.FAILED else Status.CANCELLED
