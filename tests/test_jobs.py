"""The background job registry: attach by key, cancel, cap concurrency."""

import threading

from dlopt_core.runner.jobs import Job, JobRegistry


def _blocking(release: threading.Event, started: threading.Event | None = None):
    def work(job: Job) -> None:
        if started:
            started.set()
        while not release.is_set() and not job.stop_requested():
            release.wait(0.01)

    return work


def test_submitting_an_active_key_attaches_instead_of_starting_again() -> None:
    reg = JobRegistry(max_workers=2)
    release = threading.Event()
    first = reg.submit("k", _blocking(release), payload="a")
    second = reg.submit("k", _blocking(release), payload="b")
    assert second is first and second.payload == "a"
    release.set()
    assert first.wait(5) and first.status == "done"
    third = reg.submit("k", _blocking(release))
    assert third is not first and third.wait(5)


def test_cancel_stops_the_job_and_marks_it_cancelled() -> None:
    reg = JobRegistry(max_workers=1)
    started = threading.Event()
    job = reg.submit("k", _blocking(threading.Event(), started))
    assert started.wait(5)
    job.cancel()
    assert job.wait(1.0) and job.status == "cancelled"


def test_jobs_beyond_the_cap_wait_in_the_queue() -> None:
    reg = JobRegistry(max_workers=1)
    release = threading.Event()
    started = threading.Event()
    first = reg.submit("a", _blocking(release, started))
    second = reg.submit("b", _blocking(release))
    assert started.wait(5)
    assert first.status == "running" and second.status == "queued"
    release.set()
    assert second.wait(5) and second.status == "done"


def test_a_failing_job_keeps_its_error() -> None:
    reg = JobRegistry(max_workers=1)

    def boom(job: Job) -> None:
        raise RuntimeError("no such file")

    job = reg.submit("k", boom)
    assert job.wait(5) and job.status == "failed" and "no such file" in job.error
