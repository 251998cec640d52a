"""One observer contract for every experiment kind, and the loader of tracking backends.

An :class:`Observer` has a do-nothing hook for each moment of every kind (as Keras and
Lightning callbacks do): a comparison's runs (a compression's training runs are the same
hooks), a compression's variants, a study worker's trials. An observer overrides the hooks
of what it watches; the experiments call every hook on every observer they are given.

Tracking backends are found through the ``dlopt.tracking`` entry point group, so the core never
imports one: each entry is a callable ``(kind, *, experiment, **options) -> Observer`` that
returns its observer for an experiment of that kind (a config class's ``KIND``).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from dlopt_core.runner.plugins import TRACKING_GROUP

if TYPE_CHECKING:  # annotations only: none of these is needed to run a hook
    import optuna
    from optuna.trial import FrozenTrial

    from dlopt_core.engine.records import Record
    from dlopt_core.experiments.compress.rows import CompressionRow
    from dlopt_core.experiments.study.config import StudyConfig
    from dlopt_core.experiments.study.summary import StudySummary
    from dlopt_core.experiments.study_storage import StudyStorage
    from dlopt_core.sharing.checks import SharingCheck
    from dlopt_core.sharing.train import EpochRow

# ``Comparison``, ``RunResult`` (experiments.compare), ``Compression`` (experiments.compress.run),
# ``Share`` and ``ShareRun`` (experiments.share), ``Continual`` and ``ContinualRun`` (experiments.continual), ``StreamRace`` and ``LearnerRun``
# (experiments.stream) are named in annotations without an import: those modules call
# the hooks, so they import this one, and an import back would be a circle.


class Observer:
    """Hooks an experiment calls as it goes, in order, from its own thread; all do nothing."""

    # -- a comparison's runs (and a compression's training runs) --

    def comparison_started(self, comparison: Comparison) -> None:
        """Once, before any run starts (a tracker opens the comparison's parent run here)."""

    def run_started(self, run: RunResult) -> None:
        """Before the run's first record."""

    def record(self, run: RunResult, rec: Record) -> bool | None:
        """After every record of the run; ``True`` stops that run (it ends as ``pruned``)."""
        return None

    def run_ended(self, run: RunResult) -> None:
        """Once, with the run's final status."""

    def comparison_ended(self, comparison: Comparison) -> None:
        """Once, after every run has ended."""

    # -- a compression --

    def progressed(self, compression: Compression) -> None:
        """The phase or the share done changed."""

    def row_done(self, compression: Compression, row: CompressionRow) -> None:
        """A variant (the baseline first) was measured."""

    def sensitivity_done(self, compression: Compression) -> None:
        """The per-layer sensitivity is in ``compression.sensitivity``."""

    def compression_ended(self, compression: Compression) -> None:
        """Once, at the end (finished, failed or cancelled)."""

    # -- a study worker --

    def worker_started(self, study: optuna.Study, config: StudyConfig, storage: StudyStorage) -> None:
        """Before the worker's first trial."""

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After each trial this worker ran (complete, pruned or failed)."""

    def worker_ended(self, study: optuna.Study, summary: StudySummary) -> None:
        """When the worker stops: the study is full, or it was told to stop."""

    # -- a parameter-sharing comparison (experiments.share) --

    def share_started(self, share: Share) -> None:
        """Once, before any run (a tracker opens the parent run here)."""

    def share_checked(self, share: Share, check: SharingCheck) -> None:
        """A variant's really-shared checks, before its first run."""

    def share_run_started(self, share: Share, run: ShareRun) -> None:
        """Before the run's first epoch row."""

    def share_epoch(self, share: Share, run: ShareRun, row: EpochRow) -> None:
        """After each epoch of the run (epoch 0: the untrained model)."""

    def share_run_ended(self, share: Share, run: ShareRun) -> None:
        """Once, with the run's final status."""

    def share_ended(self, share: Share) -> None:
        """Once, after every run has ended."""


    # -- a continual-learning experiment (experiments.continual) --

    def continual_started(self, continual: Continual) -> None:
        """Once, before any run (a tracker opens the parent run here)."""

    def continual_run_started(self, continual: Continual, run: ContinualRun) -> None:
        """Before the run's first task; ``run.initial`` holds each task's accuracy at initialisation."""

    def continual_task_done(self, continual: Continual, run: ContinualRun) -> None:
        """After each task of the run: ``run.rows[-1]`` is the accuracy on every task."""

    def continual_run_ended(self, continual: Continual, run: ContinualRun) -> None:
        """Once, with the run's final status."""

    def continual_ended(self, continual: Continual) -> None:
        """Once, after every run has ended."""


    # -- a drift race (experiments.stream) --

    def stream_started(self, race: StreamRace) -> None:
        """Once, before any run (a tracker opens the parent run here)."""

    def stream_run_started(self, race: StreamRace, run: LearnerRun) -> None:
        """Before the learner's first step on the stream."""

    def stream_steps(self, race: StreamRace, run: LearnerRun, start: int) -> None:
        """After a chunk of steps: ``run.accuracy[start:]`` and the alarms from ``start`` on are new."""

    def stream_run_ended(self, race: StreamRace, run: LearnerRun) -> None:
        """Once, with the run's final status."""

    def stream_ended(self, race: StreamRace) -> None:
        """Once, after every run has ended."""


def notify(observers: Iterable[Observer], hook: str, *args: Any) -> None:
    """Call ``hook`` on every observer, in order."""
    for obs in observers:
        getattr(obs, hook)(*args)


def tracking_observers(kind: str, *, experiment: str, **options: Any) -> list[Observer]:
    """One observer per installed tracking backend for an experiment of ``kind``, logged in
    ``experiment`` (``parent="name"``: a comparison's runs nest under one run)."""
    return [ep.load()(kind, experiment=experiment, **options) for ep in entry_points(group=TRACKING_GROUP)]
