"""A comparison: every (optimizer, seed) run of a config, trained side by side.

Runs advance in turn, one record each, so all curves grow together while the comparison is
watched live. Observers (MLflow logging, the CLI's progress line) consume the records.
"""

from __future__ import annotations

import statistics
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dlopt_core.config import ComparisonConfig, RunConfig
from dlopt_core.catalog.datasets import get_dataset_spec
from dlopt_core.engine.loop import Record, load_run_data, run, steps_per_epoch

RunStatus = Literal["pending", "running", "finished", "diverged", "cancelled", "failed"]


@dataclass
class RunResult:
    """One run's live state: its evaluation records grow while it trains."""

    index: int
    config: RunConfig
    total_steps: int
    comparison_id: str
    status: RunStatus = "pending"
    records: list[Record] = field(default_factory=list)
    steps: int = 0
    wall_time: float = 0.0
    diverged_step: int | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return self.config.optimizer.label

    @property
    def status_text(self) -> str:
        if self.status == "diverged":
            return f"diverged at step {self.diverged_step}"
        if self.status == "failed":
            return f"failed: {self.error}"
        return self.status


class RunObserver(Protocol):
    """Hooks called from the comparison's thread, in order, for every run."""

    def run_started(self, run: RunResult) -> None: ...

    def record(self, run: RunResult, rec: Record) -> None: ...

    def run_ended(self, run: RunResult) -> None: ...

    def comparison_ended(self, comparison: Comparison) -> None: ...


class Comparison:
    """The runs of a :class:`ComparisonConfig` and their live results."""

    def __init__(self, config: ComparisonConfig, *, comparison_id: str | None = None) -> None:
        self.config = config
        self.id = comparison_id or uuid.uuid4().hex[:12]
        configs = config.runs()
        n_train = len(load_run_data(configs[0]).x_train)
        self.runs = [
            RunResult(i, c, c.epochs * steps_per_epoch(c, n_train), self.id)
            for i, c in enumerate(configs)
        ]
        self.cancelled = False

    @property
    def total_steps(self) -> int:
        return sum(r.total_steps for r in self.runs)

    @property
    def done_steps(self) -> int:
        return sum(r.total_steps if r.status not in ("pending", "running") else r.steps for r in self.runs)

    @property
    def progress(self) -> float:
        return self.done_steps / max(1, self.total_steps)

    def execute(
        self,
        *,
        observers: Sequence[RunObserver] = (),
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Comparison:
        """Train every run to the end, or until ``should_stop()`` turns true."""
        data = load_run_data(self.runs[0].config)
        active: dict[int, Any] = {}
        for r in self.runs:
            active[r.index] = run(r.config, data=data)
            r.status = "running"
            _each(observers, "run_started", r)
        on_record = [o.record for o in observers]
        while active and not should_stop():
            for index in list(active):
                r = self.runs[index]
                try:
                    rec = next(active[index])
                except Exception as exc:  # a run that raises must not take the others down
                    r.status, r.error = "failed", f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
                    del active[index]
                    _each(observers, "run_ended", r)
                    continue
                r.steps, r.wall_time = rec.step, rec.wall_time
                if rec.is_eval or rec.status != "running":
                    r.records.append(rec)
                for hook in on_record:
                    hook(r, rec)
                if rec.status != "running":
                    r.status = rec.status
                    r.diverged_step = rec.step if rec.status == "diverged" else None
                    active.pop(index).close()
                    _each(observers, "run_ended", r)
        for index, iterator in active.items():
            iterator.close()
            self.runs[index].status = "cancelled"
            self.cancelled = True
            _each(observers, "run_ended", self.runs[index])
        _each(observers, "comparison_ended", self)
        return self


def _each(observers: Iterable[RunObserver], hook: str, *args: Any) -> None:
    for obs in observers:
        getattr(obs, hook)(*args)


def steps_to_target(records: Iterable[Record], target: float) -> int | None:
    """First evaluated step whose train loss is at or below ``target``."""
    return next((r.step for r in records if r.train_loss is not None and r.train_loss <= target), None)


def summary_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Per optimizer (over seeds): final and best validation metric, steps to target, time, status."""
    metric = metric_name(comparison.config)
    target = comparison.config.target_loss
    rows = []
    groups: dict[str, list[RunResult]] = {}
    for r in comparison.runs:
        groups.setdefault(r.label, []).append(r)
    for label, runs in groups.items():
        evals = [[rec for rec in r.records if rec.val_metric is not None] for r in runs]
        # A diverged run has no final value: its last finite point says nothing about the end.
        finals = [e[-1].val_metric for r, e in zip(runs, evals) if e and r.status != "diverged"]
        bests = [max(rec.val_metric for rec in e) for e in evals if e]
        row: dict[str, Any] = {
            "optimizer": label,
            "seeds": len(runs),
            f"final {metric}": _mean(finals),
            f"best {metric}": _mean(bests),
            "final train loss": _mean(
                [e[-1].train_loss for r, e in zip(runs, evals) if e and r.status != "diverged"]
            ),
        }
        if target is not None:
            hits = [steps_to_target(r.records, target) for r in runs]
            reached = [h for h in hits if h is not None]
            row[f"steps to loss ≤ {target:g}"] = (
                statistics.median(reached) if len(reached) == len(hits) else None
            )
        row["wall time (s)"] = _mean([r.wall_time for r in runs])
        row["status"] = ", ".join(sorted({r.status_text for r in runs}))
        rows.append(row)
    return rows


def metric_name(config: ComparisonConfig | RunConfig) -> str:
    """What ``val_metric`` means for this config's data."""
    return "val R²" if get_dataset_spec(config.data.name).task == "regression" else "val accuracy"


def _mean(values: list[Any]) -> float | None:
    finite = [v for v in values if v is not None]
    return statistics.fmean(finite) if finite else None
