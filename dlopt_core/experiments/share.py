"""Parameter sharing compared: the variants of one family x seeds, with checks that they share.

:class:`ShareConfig` is the frozen config (one flat form for MLflow, the URL and the CLI);
:class:`Share` trains it (variant by variant, seed by seed, calling the observers' ``share_*``
hooks) and is also the live state a page draws; :class:`ShareWork` runs it as background work
and keeps a :class:`Share` mirror in the server, fed by typed events.
"""

from __future__ import annotations

import statistics
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import torch
from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.datasets import load_dataset
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import (
    MAX_EPOCHS,
    Device,
    Flat,
    OptimizerConfig,
    ScheduleConfig,
    check_seeds,
    config_hash,
)
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.records import Status
from dlopt_core.experiments.events import Elapsed, ReportingRelay, TrackedWork, TrackingReport
from dlopt_core.experiments.observer import Observer, notify
from dlopt_core.runner.work import Control, Emit
from dlopt_core.sharing import (
    Diverged,
    EpochRow,
    SharingCheck,
    build_variant,
    get_family,
    get_task,
    get_variant,
    sharing_check,
    train_run,
)
from dlopt_core.sharing.train import Combine

Family = Literal["tied", "depth", "multitask"]
DATASET = "digits"  # the tasks are read from its labels (digit, digit >= 5)
MAX_SHARE_RUNS = 60


class ShareConfig(Flat):
    """The variants of one family x seeds, each trained with the same optimizer and schedule."""

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-share"
    KIND: ClassVar[str] = "share"

    family: Family = Field("tied", description="tied: autoencoder; depth: cross-layer sharing; multitask: hard sharing")
    variants: tuple[str, ...] = Field((), description="of the family; empty: all of them")
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.make(name="adam"))
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(15, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=100_000)
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=10)
    width: int = Field(32, ge=2, le=1024, description="the autoencoder's hidden width; the MLPs' and trunk's width")
    depth: int = Field(4, ge=1, le=32, description="hidden layers of the deep MLP and of the multi-task trunk")
    combine: Combine = Field("equal", description="multitask: sum the task gradients, or PCGrad on the trunk")
    device: Device = "auto"

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @field_validator("variants", mode="before")
    @classmethod
    def _variant_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # "tied,untied" from a URL, MLflow or the CLI
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @model_validator(mode="after")
    def _fits(self) -> Self:
        family = get_family(self.family)
        for name in self.variants:
            if name not in family.variants:
                raise ValueError(
                    f"variants: {name!r} is not of the {self.family!r} family (allowed: {', '.join(family.variants)})"
                )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants: each variant once, got {', '.join(self.variants)}")
        # Empty means all: written out, so the same experiment has one key whichever way it was asked.
        object.__setattr__(self, "variants", self.variants or family.variants)
        if not family.combines:  # only a trunk shared by tasks has gradients to combine
            object.__setattr__(self, "combine", "equal")
        spec = get_optimizer(self.optimizer.name)
        if spec.needs_closure or spec.full_batch_only:
            raise ValueError(
                f"optimizer: {self.optimizer.name!r} needs a closure or the full batch, which this mini-batch "
                "loop does not give; choose another"
            )
        if (n := len(self.variants) * len(self.seeds)) > MAX_SHARE_RUNS:
            raise ValueError(f"seeds: {n} runs is more than {MAX_SHARE_RUNS}; take fewer seeds or variants")
        return self

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task the family's variants learn (a variant may learn fewer)."""
        return get_family(self.family).tasks

    def key(self) -> str:
        """Stable short hash: the same experiment gets the same job key in every process."""
        return "share-" + config_hash(self)

    def parent_name(self) -> str:
        """The name of the MLflow run that holds the runs."""
        labels = " vs ".join(get_variant(v).label for v in self.variants)
        combine = f", {self.combine}" if get_family(self.family).combines else ""
        return f"{self.key()} ({labels}{combine}, {len(self.seeds)} seeds)"


@dataclass
class ShareRun:
    """One variant at one seed: its epoch rows so far and how it ended (plain, picklable data)."""

    index: int
    variant: str
    seed: int
    status: Status = Status.PENDING
    rows: list[EpochRow] = field(default_factory=list)
    error: str | None = None
    diverged_step: int | None = None

    @property
    def label(self) -> str:
        return get_variant(self.variant).label

    @property
    def tasks(self) -> tuple[str, ...]:
        return get_variant(self.variant).tasks

    @property
    def final(self) -> dict[str, float | None]:
        """The last validation metric by task (None for each while there is none, or if it diverged)."""
        last = self.rows[-1] if self.rows and self.status is not Status.DIVERGED else None
        return {t: (last.metrics.get(t) if last else None) for t in self.tasks}

    @property
    def elapsed_s(self) -> float:
        """Training seconds so far (evaluations not counted)."""
        return self.rows[-1].elapsed_s if self.rows else 0.0

    @property
    def status_text(self) -> str:
        if self.status is Status.DIVERGED:
            return f"diverged at step {self.diverged_step}"
        if self.status is Status.FAILED:
            return f"failed: {self.error}"
        return str(self.status)


class Share:
    """A sharing experiment: its runs (variant-major, then seed), checks and time; trains with :meth:`execute`."""

    def __init__(self, config: ShareConfig, *, share_id: str | None = None) -> None:
        self.config = config
        self.id = share_id or uuid.uuid4().hex[:12]
        self.runs = [
            ShareRun(i, variant, seed)
            for i, (variant, seed) in enumerate((v, s) for v in config.variants for s in config.seeds)
        ]
        self.checks: dict[str, SharingCheck] = {}
        self.elapsed_s = 0.0

    @property
    def params(self) -> dict[str, int]:
        """Parameters per variant, as torch counts them in the built model (known once checked)."""
        return {v: c.params for v, c in self.checks.items()}

    @property
    def progress(self) -> float:
        """Share of the epochs done over all runs."""
        total = len(self.runs) * self.config.epochs
        done = sum(r.rows[-1].epoch if r.rows and not r.status.ended else self.config.epochs * r.status.ended
                   for r in self.runs)
        return min(1.0, done / total)

    def runs_of(self, variant: str) -> list[ShareRun]:
        return [r for r in self.runs if r.variant == variant]

    def execute(self, *, observers: Sequence[Observer] = (), should_stop: Callable[[], bool] = lambda: False) -> Self:
        """Train every run in order, telling ``observers``; a stop cancels what has not ended."""
        cfg = self.config
        use_one_thread()
        device = resolve_device(cfg.device)
        data = load_dataset(DATASET, {}, val_fraction=0.2, split_seed=0, device=device)
        began = time.perf_counter()
        notify(observers, "share_started", self)
        try:
            for variant in cfg.variants:
                if should_stop():
                    break
                if variant not in self.checks:
                    model = build_variant(variant, data.n_features, width=cfg.width, depth=cfg.depth,
                                          seed=cfg.seeds[0], device=device)
                    self.checks[variant] = sharing_check(variant, model, data, cfg.optimizer)
                    notify(observers, "share_checked", self, self.checks[variant])
                for run in self.runs_of(variant):
                    if should_stop():
                        break
                    self._train(run, data, device, observers, should_stop)
        finally:
            for run in self.runs:
                if not run.status.ended:
                    run.status = Status.CANCELLED
                    notify(observers, "share_run_ended", self, run)
            self.elapsed_s = time.perf_counter() - began
            notify(observers, "share_ended", self)
        return self

    def _train(self, run: ShareRun, data: Any, device: torch.device, observers: Sequence[Observer],
               should_stop: Callable[[], bool]) -> None:
        cfg = self.config
        run.status = Status.RUNNING
        notify(observers, "share_run_started", self, run)
        try:
            model = build_variant(run.variant, data.n_features, width=cfg.width, depth=cfg.depth, seed=run.seed,
                                  device=device)
            for row in train_run(model, data, optimizer=cfg.optimizer, schedule=cfg.schedule, epochs=cfg.epochs,
                                 batch_size=cfg.batch_size, seed=run.seed, combine=cfg.combine,
                                 should_stop=should_stop):
                run.rows.append(row)
                notify(observers, "share_epoch", self, run, row)
            run.status = Status.FINISHED if run.rows and run.rows[-1].epoch == cfg.epochs else Status.CANCELLED
        except Diverged as stop:
            run.status, run.diverged_step = Status.DIVERGED, stop.step
        except Exception as exc:  # one run's crash is its own status; the others go on
            run.status, run.error = Status.FAILED, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        notify(observers, "share_run_ended", self, run)


@dataclass(frozen=True)
class VariantSummary:
    """One variant over its seeds: the final metric per task (mean, sd) and its checks."""

    variant: str
    label: str
    params: int | None
    means: dict[str, float | None]
    sds: dict[str, float | None]  # None: fewer than two finished seeds, no spread to tell
    seconds: float | None  # mean training seconds of the runs that finished
    finished: int
    runs: int
    check: SharingCheck | None


def summarize(share: Share) -> list[VariantSummary]:
    """Per variant, its finished runs' final metrics and training time."""
    out = []
    for variant in share.config.variants:
        runs = share.runs_of(variant)
        done = [r for r in runs if r.status is Status.FINISHED]
        means: dict[str, float | None] = {}
        sds: dict[str, float | None] = {}
        for task in get_variant(variant).tasks:
            values = [v for r in done if (v := r.final[task]) is not None]
            means[task] = statistics.fmean(values) if values else None
            sds[task] = statistics.stdev(values) if len(values) > 1 else None
        seconds = statistics.fmean(r.elapsed_s for r in done) if done else None
        out.append(VariantSummary(variant, get_variant(variant).label, share.params.get(variant), means, sds,
                                  seconds, len(done), len(runs), share.checks.get(variant)))
    return out


def summary_rows(share: Share) -> list[dict[str, Any]]:
    """One flat row per variant: params, each task's metric (mean and sd over seeds), the checks' booleans."""
    rows = []
    for s in summarize(share):
        row: dict[str, Any] = {"variant": s.label, "params": s.params}
        for task in share.config.tasks:
            key = get_task(task).metric_key
            row[key] = s.means.get(task)
            row[f"{key}_sd"] = s.sds.get(task) if task in s.means else None
        row["train_s"] = s.seconds
        row["finished"] = f"{s.finished}/{s.runs}"
        row.update(s.check.flags() if s.check else {})
        rows.append(row)
    return rows


# -- events: what the worker tells the server's mirror --


@dataclass(frozen=True)
class VariantChecked:
    check: SharingCheck


@dataclass(frozen=True)
class ShareRunStarted:
    index: int


@dataclass(frozen=True)
class EpochDone:
    index: int
    row: EpochRow


@dataclass(frozen=True)
class ShareRunEnded:
    index: int
    status: str
    error: str | None
    diverged_step: int | None


ShareEvent = VariantChecked | ShareRunStarted | EpochDone | ShareRunEnded | Elapsed | TrackingReport


class ShareRelay(ReportingRelay):
    """Sends a sharing experiment's progress to the server as events."""

    def share_checked(self, share: Share, check: SharingCheck) -> None:
        self.emit(VariantChecked(check), urgent=True)

    def share_run_started(self, share: Share, run: ShareRun) -> None:
        self.emit(ShareRunStarted(run.index), urgent=False)
        if run.index == 0:
            self._report()  # the parent's MLflow id exists: a page can link it while runs train

    def share_epoch(self, share: Share, run: ShareRun, row: EpochRow) -> None:
        self.emit(EpochDone(run.index, row), urgent=True)

    def share_run_ended(self, share: Share, run: ShareRun) -> None:
        self.emit(ShareRunEnded(run.index, str(run.status), run.error, run.diverged_step), urgent=True)

    def share_ended(self, share: Share) -> None:
        self.emit(Elapsed(share.elapsed_s), urgent=True)
        self._report()


class ShareWork(TrackedWork):
    """A sharing experiment as background work: trained in a worker, mirrored here in :attr:`share`.

    ``run_ids`` maps each run's index to its MLflow run (the parent under -1).
    """

    RECIPE = ("config", "share_id", "track", "experiment", "key", "label")

    def __init__(self, config: ShareConfig, *, track: bool = True, experiment: str | None = None) -> None:
        self.config = config
        self.key = config.key()
        self.label = f"share {self.key}"
        self._tracked(track, experiment)
        self.share = Share(config)
        self.share_id = self.share.id

    def run(self, emit: Emit, control: Control) -> None:
        trackers = self.trackers()
        share = Share(self.config, share_id=self.share_id)
        # Trackers first: a run's MLflow id exists before the relay reports it.
        share.execute(observers=[*trackers, ShareRelay(emit, trackers)], should_stop=control.should_stop)

    def apply(self, event: ShareEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        match event:
            case EpochDone(index, row):
                self.share.runs[index].rows.append(row)
            case ShareRunStarted(index):
                self.share.runs[index].status = Status.RUNNING
            case ShareRunEnded(index, status, error, diverged_step):
                run = self.share.runs[index]
                run.status, run.error, run.diverged_step = Status(status), error, diverged_step
            case VariantChecked(check):
                self.share.checks[check.variant] = check
            case Elapsed(seconds):
                self.share.elapsed_s = seconds
            case TrackingReport():
                self.took(event)

    def finish(self, status: Status) -> None:
        """Runs that never reported an end (a worker ended hard) take the job's end."""
        for run in self.share.runs:
            if not run.status.ended:
                run.status = Status.FAILED if status is Status.FAILED else Status.CANCELLED
