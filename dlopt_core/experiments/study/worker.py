"""A study's worker: fills the study with trials beside any others, and the same as background work.

:func:`run_worker` fills a study until it holds ``n_trials`` finished (complete or pruned)
trials in all, together with any other workers (processes, machines) on the same storage,
and never more. A page starts workers (:class:`StudyWork`) and reads progress from the
storage with :func:`~dlopt_core.experiments.study.summary.study_summary`; a study resumes by name.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.records import Status
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.events import Relay, TrackingReport, TrialEnded, WorkerEnded
from dlopt_core.experiments.observer import Observer, notify, tracking_observers
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.study.objective import TRIAL_ENDS, objective
from dlopt_core.experiments.study.store import open_study, storage_handle
from dlopt_core.experiments.study.summary import StudySummary, TrialRow, study_summary
from dlopt_core.experiments.study_storage import StudyStorage, end_stale_trials, storage_url
from dlopt_core.runner.work import Control, Emit

StudyEvent = TrialEnded | WorkerEnded | TrackingReport


def _never() -> bool:
    return False


def _counts(study: optuna.Study) -> tuple[int, int, int]:
    finished = running = waiting = 0
    for t in study.get_trials(deepcopy=False):
        finished += t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        running += t.state is TrialState.RUNNING
        waiting += t.state is TrialState.WAITING
    return finished, running, waiting


def run_worker(
    config: StudyConfig,
    storage: StudyStorage | str | None = None,
    *,
    should_stop: Callable[[], bool] = _never,
    observers: Sequence[Observer] = (),
    worker: int | None = None,
    poll_s: float = 0.5,
) -> StudySummary:
    """Run trials of ``config``'s study until it holds ``n_trials`` finished trials in all.

    Several workers (this process, others, other machines on a shared storage) fill one
    study together: a worker starts a trial only while finished + running + queued trials
    are fewer than the target, waits (polling every ``poll_s`` seconds) while the others'
    running trials might still fill it, and takes over a dead worker's trial (queued again).
    ``should_stop`` is asked before each trial and at each step of one: when it says so the
    running trial ends FAIL (``cancelled``, so it does not count) and the worker returns;
    none is left RUNNING. ``observers`` hear of the worker's start and end and of each trial it ran.
    ``worker`` numbers this worker for a reproducible sampler (:func:`worker_seed`).
    """
    handle = storage_handle(storage)
    resolve_device(config.device)
    use_one_thread()
    study = open_study(config, handle, worker=worker)
    trial_objective = objective(config, should_stop)
    callbacks = [o.trial_ended for o in observers]
    notify(observers, "worker_started", study, config, handle)
    stopped = False
    while True:
        end_stale_trials(study, handle)
        finished, running, waiting = _counts(study)
        if finished >= config.n_trials:
            break
        if should_stop():
            stopped = True
            break
        if not waiting and finished + running >= config.n_trials:
            _sleep(poll_s, should_stop)  # the running trials may fill the study, or fail
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.optimize(trial_objective, n_trials=1, catch=TRIAL_ENDS, callbacks=callbacks)
    summary = dataclasses.replace(study_summary(study, handle), stopped=stopped)
    notify(observers, "worker_ended", study, summary)
    return dataclasses.replace(summary, errors=[e for o in observers for e in getattr(o, "errors", [])])


class StudyWork:
    """One worker of a study as background work (:mod:`dlopt_core.runner`): a page submits one
    per local worker process (``worker`` 0, 1, ...); Stop ends it as :func:`run_worker` does.

    The storage is the source of truth for progress (:func:`study_summary` sees every worker's
    trials, remote ones too); this mirror only holds what this worker reported.
    """

    def __init__(
        self, config: StudyConfig, *, storage: str | None = None, worker: int = 0, track: bool = True,
        experiment: str = StudyConfig.EXPERIMENT,
    ) -> None:
        self.config = config
        # Resolved here: the worker process writes where the submitting page reads.
        self.storage = storage_url(storage)
        self.worker = worker
        self.track = track
        self.experiment = experiment
        self.key = f"study-{config.name}-w{worker}"
        self.label = f"study {config.name} worker {worker}"
        self.trials: list[TrialRow] = []  # the trials this worker ran, as they ended
        self.summary: StudySummary | None = None
        self.status: Status = Status.PENDING
        self.tracking_errors: list[str] = []  # what MLflow refused of this worker's trials
        self.unwritten = 0

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("config", "storage", "worker", "track", "experiment")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("config"), **state)  # type: ignore[misc]

    def run(self, emit: Emit, control: Control) -> None:
        from dlopt_core.runner.plugins import tracking_start

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        trackers: list[Observer] = []
        if self.track:
            tracking_start()
            trackers = tracking_observers(StudyConfig.KIND, experiment=self.experiment)
        run_worker(
            self.config, self.storage, should_stop=control.should_stop,
            observers=[*trackers, Relay(emit, control, trackers)], worker=self.worker,
        )

    def apply(self, event: StudyEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        match event:
            case TrialEnded(row):
                self.trials.append(row)
            case WorkerEnded(summary):
                self.summary = summary
            case TrackingReport(_, errors, unwritten):
                self.tracking_errors, self.unwritten = list(errors), unwritten

    def finish(self, status: Status) -> None:
        self.status = status
        if self.summary is None and status is Status.CANCELLED:
            # Ended hard, before it could report: the storage still knows the study.
            try:
                summary = study_summary(self.config.name, self.storage)
            except (KeyError, ConfigError):  # stopped before the study was made
                return
            self.summary = dataclasses.replace(summary, stopped=True)


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not should_stop():
        time.sleep(min(0.05, seconds))
