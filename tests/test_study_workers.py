"""Several worker processes fill one study: against PostgreSQL and against the embedded default.

Real processes (``python -m dlopt_core search``) on one study with a target of 15 finished
trials: they end with exactly 15 and unique numbers; when one is SIGKILLed mid-trial, the
others end its trial (PostgreSQL: heartbeats, with ``DLOPT_OPTUNA_HEARTBEAT=1`` so the grace
period is 5 s; the journal file: the dead worker's pid), run its parameters again, and
still reach 15 with no trial left RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

from dlopt_core.errors import ConfigError
from dlopt_core.engine.records import Status
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.study.store import load_study
from dlopt_core.experiments.study.summary import study_summary
from dlopt_core.experiments.study.worker import StudyWork
from dlopt_core.experiments.study_storage import ENV_HEARTBEAT, WORKER_ATTR, study_storage
from dlopt_core.runner.jobs import JobRegistry

TARGET = 15
# Trials of a few tenths of a second (pruning off, so none is cut short): long enough for three
# workers to overlap and for a kill to land inside a trial.
SETUP = ("--dataset", "digits", "--model", "mlp", "--epochs", "10", "--optimizer", "adam", "--pruner", "none")


@pytest.fixture(params=["postgresql", "embedded"])
def storage_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """A shared PostgreSQL database, or None: the workers' default (a journal under DLOPT_HOME)."""
    monkeypatch.setenv(ENV_HEARTBEAT, "1")  # the workers inherit it; so does this process's reader
    monkeypatch.delenv("DLOPT_OPTUNA_STORAGE", raising=False)
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def _workers(name: str, url: str | None, n: int = 3) -> list[subprocess.Popen]:
    storage = ("--storage", url) if url else ()
    return [
        subprocess.Popen(
            [sys.executable, "-m", "dlopt_core", "search", *SETUP, "--study", name, *storage,
             "--n-trials", str(TARGET), "--worker", str(i), "--json", "--no-track"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(n)
    ]


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def _trials(name: str, url: str | None) -> list[optuna.trial.FrozenTrial]:
    return load_study(name, study_storage(url)).get_trials()


def test_three_workers_fill_one_study_with_exactly_its_trials(storage_url: str | None) -> None:
    name = f"workers-{uuid.uuid4().hex[:8]}"
    results = [_finish(p) for p in _workers(name, storage_url)]
    for status, out, err in results:
        assert status == 0, err
        assert json.loads(out)["finished"] == TARGET
    trials = _trials(name, storage_url)
    finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == TARGET and len({t.number for t in finished}) == TARGET
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    # Only a place two workers took at once ends FAIL, marked surplus; nothing else failed.
    assert all(t.user_attrs.get("surplus") for t in trials if t.state.name == "FAIL")
    workers = {t.user_attrs[WORKER_ATTR]["pid"] for t in finished}
    assert len(workers) >= 2, "the workers did not share the study"


def test_a_worker_killed_mid_trial_leaves_no_trial_running(storage_url: str | None) -> None:
    name = f"killed-{uuid.uuid4().hex[:8]}"
    procs = _workers(name, storage_url)
    victim = procs[0]
    killed = _running_trial_of(victim.pid, name, storage_url)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    results = [_finish(p) for p in procs[1:]]
    for status, out, err in results:
        assert status == 0, err
        assert json.loads(out)["finished"] == TARGET
    trials = {t.number: t for t in _trials(name, storage_url)}
    assert trials[killed].state.name == "FAIL"
    assert not [t for t in trials.values() if t.state.name == "RUNNING"]
    finished = [t for t in trials.values() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == TARGET
    # The killed trial's parameters were run again by another worker.
    retries = [t for t in finished if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == trials[killed].params
    assert study_summary(name, study_storage(storage_url)).counts["running"] == 0


def _running_trial_of(pid: int, name: str, url: str | None) -> int:
    """Poll the storage until worker ``pid`` has just started a trial; its number."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            study = load_study(name, study_storage(url))
        except KeyError:  # not created yet
            time.sleep(0.05)
            continue
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            worker = t.user_attrs.get(WORKER_ATTR)
            # Its lr drawn, no epoch reported yet: the trial's training is still ahead.
            mine = worker and worker["pid"] == pid and worker["trial"] == t.number
            if mine and t.params and not t.intermediate_values:
                return t.number
        time.sleep(0.02)
    raise AssertionError(f"worker {pid} never ran a trial ({os.environ.get('DLOPT_HOME')})")


def test_local_workers_started_as_jobs_fill_a_study_and_stop_cleanly() -> None:
    """How a page runs a study: one StudyWork job per local worker process; Stop ends them."""
    config = StudyConfig.make(data={"name": "wine"}, epochs=3, optimizer={"name": "adam"}, n_trials=6, pruner="none")
    jobs = JobRegistry(2, launcher="process")
    try:
        works = [StudyWork(config, worker=i, track=False) for i in range(2)]
        for job in [jobs.submit(w) for w in works]:
            assert job.wait(240) and job.status is Status.FINISHED, job.error
        assert sum(len(w.trials) for w in works) >= 6  # each worker reported its trials as they ended
        assert all(w.summary is not None and w.summary.done for w in works)
        assert study_summary(config.name).finished == 6

        # A study far too large to finish: stop both workers once a few trials are in.
        big = config.model_copy(update={"n_trials": 10_000, "study_name": "stopped"})
        running = [jobs.submit(StudyWork(big, worker=i, track=False)) for i in range(2)]
        deadline = time.monotonic() + 120
        while _finished("stopped") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        for job in running:
            job.cancel()
        for job in running:
            assert job.wait(60)
        summary = study_summary("stopped")
        assert summary.finished >= 4 and summary.counts["running"] == 0
        assert all(t.note == "cancelled" for t in summary.trials if t.state == "fail")
        assert all(job.work.summary is not None and job.work.summary.stopped for job in running)
    finally:
        jobs.shutdown()


def _finished(name: str) -> int:
    """Finished trials of study ``name`` in the default storage (0 until a worker has made it)."""
    try:
        return study_summary(name).finished
    except (KeyError, ConfigError):  # not there yet, or created and its config not yet written
        return 0


def test_sigterm_cancels_the_running_trial_and_the_worker_exits_143() -> None:
    name = f"sigterm-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "dlopt_core", "search", *SETUP, "--study", name, "--n-trials", "1000", "--json", "--no-track"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    running = _running_trial_of(worker.pid, name, None)
    worker.send_signal(signal.SIGTERM)
    status, out, err = _finish(worker)
    assert status == 128 + signal.SIGTERM, err
    result = json.loads(out)
    assert result["stopped"] and result["counts"]["running"] == 0
    trials = _trials(name, None)
    failed = [t for t in trials if t.state.name == "FAIL"]
    # The trial running at the signal (this one, unless it ended in the moment between) was
    # cancelled, and no trial started after it.
    assert len(failed) == 1 and failed[0].user_attrs["cancelled"] is True
    assert failed[0].number == max(t.number for t in trials) >= running


def test_a_worker_ended_before_it_reported_still_shows_the_study_from_the_storage() -> None:
    """A worker ended hard (its process replaced after the Stop grace) sends no summary; the
    page's mirror reads the study from the storage instead, marked stopped."""
    config = StudyConfig.make(data={"name": "wine"}, epochs=1, optimizer={"name": "adam"}, n_trials=2, pruner="none")
    done = StudyWork(config, worker=0, track=False)
    jobs = JobRegistry(1, launcher="thread")
    try:
        assert jobs.submit(done).wait(240)
    finally:
        jobs.shutdown()
    assert done.summary is not None and done.summary.finished == 2 and not done.summary.stopped

    silent = StudyWork(config, worker=1, track=False)
    silent.finish(Status.CANCELLED)
    assert silent.summary is not None and silent.summary.stopped
    assert silent.summary.finished == 2 and silent.summary.counts["running"] == 0

    never_made = StudyWork(config.model_copy(update={"study_name": "never-made"}), worker=0, track=False)
    never_made.finish(Status.CANCELLED)
    assert never_made.summary is None
    failed = StudyWork(config, worker=2, track=False)
    failed.finish(Status.FAILED)
    assert failed.summary is None  # a failure is not a stop: its error says what happened
