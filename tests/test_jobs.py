"""The background job registry: attach by key, FIFO cap, cancel, per-run stop, on both launchers."""

import os
import time
from collections.abc import Iterator

import pytest
from work_samples import Counting, Stubborn

from dlopt_core.engine.records import Status
from dlopt_core.runner.jobs import JobRegistry


@pytest.fixture(params=["thread", "process"])
def launcher(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_registry(launcher: str) -> Iterator:
    made = []

    def make(workers: int) -> JobRegistry:
        reg = JobRegistry(max_workers=workers, launcher=launcher)
        made.append(reg)
        assert reg.wait_ready(120)
        return reg

    yield make
    for reg in made:
        reg.shutdown(timeout=5)


def _until(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def test_submitting_an_active_key_attaches_instead_of_starting_again(make_registry) -> None:
    reg = make_registry(1)
    first = reg.submit(Counting("k"))
    second = reg.submit(Counting("k"))
    assert second is first
    first.cancel()
    assert first.wait(30) and first.status is Status.CANCELLED
    third = reg.submit(Counting("k", limit=5))
    assert third is not first and third.wait(30) and third.status is Status.FINISHED
    assert third.work.seen == [0, 1, 2, 3, 4] and third.work.finished_as is Status.FINISHED


def test_events_stream_back_while_the_job_runs_and_stop_cancels(make_registry) -> None:
    reg = make_registry(1)
    job = reg.submit(Counting("k"))
    _until(lambda: len(job.work.seen) > 5, "events arrive while running")
    assert job.status is Status.RUNNING
    job.cancel()
    assert job.wait(30) and job.status is Status.CANCELLED


def test_jobs_beyond_the_cap_wait_their_turn_first_come_first_served(make_registry) -> None:
    reg = make_registry(1)
    first = reg.submit(Counting("a"))
    second = reg.submit(Counting("b", limit=3))
    third = reg.submit(Counting("c", limit=3))
    _until(lambda: first.work.seen, "the first job runs")
    assert second.status is Status.PENDING and third.status is Status.PENDING
    assert reg.running == 1 and reg.queued == 2
    first.cancel()
    assert third.wait(30) and second.status is Status.FINISHED and third.status is Status.FINISHED


def test_a_queued_job_that_is_cancelled_never_starts(make_registry) -> None:
    reg = make_registry(1)
    first = reg.submit(Counting("a"))
    queued = reg.submit(Counting("b", limit=3))
    queued.cancel()
    first.cancel()
    assert queued.wait(30) and queued.status is Status.CANCELLED and queued.work.seen == []


def test_a_failing_job_keeps_its_error_and_the_slot_goes_on(make_registry) -> None:
    reg = make_registry(1)
    job = reg.submit(Counting("k", fail_at=3))
    assert job.wait(30) and job.status is Status.FAILED and "no such file" in job.error
    assert job.work.seen == [0, 1, 2]
    after = reg.submit(Counting("next", limit=2))
    assert after.wait(30) and after.status is Status.FINISHED


def test_per_run_stops_reach_the_running_work(make_registry) -> None:
    reg = make_registry(1)
    job = reg.submit(Counting("k"))
    _until(lambda: job.work.seen, "the job runs")
    job.stop_run(3)
    _until(lambda: 3 in job.work.run_stops, "the per-run stop arrives")
    job.cancel()
    assert job.wait(30)


def test_the_work_writes_where_the_submitting_process_would(make_registry, tmp_path, monkeypatch) -> None:
    reg = make_registry(1)
    monkeypatch.setenv("DLOPT_HOME", str(tmp_path / "elsewhere"))
    job = reg.submit(Counting("k", limit=2))
    assert job.wait(30) and job.work.env["DLOPT_HOME"] == str(tmp_path / "elsewhere")


def test_process_jobs_run_in_other_processes_two_at_once() -> None:
    reg = JobRegistry(max_workers=2, launcher="process")
    try:
        assert reg.wait_ready(120)
        a, b = reg.submit(Counting("a")), reg.submit(Counting("b"))
        _until(lambda: a.work.seen and b.work.seen, "both jobs run at once")
        pids = a.work.pids | b.work.pids
        assert len(pids) == 2 and os.getpid() not in pids
        a.cancel()
        b.cancel()
        assert a.wait(30) and b.wait(30)
    finally:
        reg.shutdown()


def test_a_job_that_ignores_stop_is_ended_hard_and_its_slot_replaced() -> None:
    reg = JobRegistry(max_workers=1, launcher="process")
    try:
        assert reg.wait_ready(120)
        job = reg.submit(Stubborn("k"))
        _until(lambda: job.work.seen, "the stubborn job runs")
        (pid,) = job.work.pids
        job.cancel()
        assert job.wait(30) and job.status is Status.CANCELLED
        _until(lambda: not _alive(pid), "the stubborn worker is gone")
        after = reg.submit(Counting("next", limit=2))
        assert after.wait(60) and after.status is Status.FINISHED and after.work.pids != {pid}
    finally:
        reg.shutdown()


def test_a_job_that_comes_before_the_workers_are_up_runs_here_at_once() -> None:
    reg = JobRegistry(max_workers=1, launcher="process")
    try:
        early = reg.submit(Counting("early", limit=3))
        assert early.wait(60) and early.status is Status.FINISHED
        ready = reg.wait_ready(120)
        later = reg.submit(Counting("later", limit=3))
        assert later.wait(60) and ready
        if early.work.pids == {os.getpid()}:  # it came before the worker: it ran in this process
            assert later.work.pids != {os.getpid()}
        assert os.getpid() not in later.work.pids
    finally:
        reg.shutdown()


def test_shutdown_cancels_running_and_queued_jobs() -> None:
    reg = JobRegistry(max_workers=1, launcher="process")
    assert reg.wait_ready(120)
    running = reg.submit(Counting("a"))
    queued = reg.submit(Counting("b"))
    _until(lambda: running.work.seen, "the first job runs")
    reg.shutdown(timeout=10)
    assert running.status is Status.CANCELLED and queued.status is Status.CANCELLED
    assert queued.work.seen == []
    with pytest.raises(RuntimeError, match="shutting down"):
        reg.submit(Counting("c"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until reaped; its /proc state says Z.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_with_an_owner_is_steered_by_its_owner_only() -> None:
    from dlopt_core.runner.work import Job

    owned = Job(key="k", label="l", work=None, owner="browser-a")  # type: ignore[arg-type]
    assert owned.steerable_by("browser-a") and not owned.steerable_by("browser-b")
    assert not owned.steerable_by(None)
    anyone = Job(key="k", label="l", work=None)  # type: ignore[arg-type]
    assert anyone.steerable_by("browser-b") and anyone.steerable_by(None)


def test_a_stopped_job_whose_worker_must_be_killed_ends_its_runs_as_stopped_not_interrupted() -> None:
    """A worker that misses the Stop's grace and ignores SIGTERM is killed; the run it left
    open is the user's stop (KILLED, "cancelled"), not a crash, and no later start-up of a
    worker (which ends a dead process's runs as interrupted) turns it into one."""
    from mlflow import MlflowClient

    from tracking.reconcile import end_orphaned_runs
    from tracking.store import settings
    from work_samples import StubbornLogger

    reg = JobRegistry(max_workers=1, launcher="process")
    try:
        assert reg.wait_ready(120)
        job = reg.submit(StubbornLogger("k"))
        _until(lambda: getattr(job.work, "run_id", None), "the worker opened its run")
        (pid,) = job.work.pids
        job.cancel()
        assert job.wait(60) and job.status is Status.CANCELLED
        assert not _alive(pid)
        assert end_orphaned_runs() == []  # what the next process that logs does at its start
        run = MlflowClient(settings().mlflow_uri).get_run(job.work.run_id)
        assert run.info.status == "KILLED" and run.data.tags["status"] == "cancelled"
        assert "dlopt.interrupted" not in run.data.tags
    finally:
        reg.shutdown()
