"""A comparison as background work: trained in a worker process, mirrored live in this one."""

import time

import pytest
from mlflow import MlflowClient

from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.engine.records import Status
from dlopt_core.experiments.compare import Comparison, ComparisonWork
from dlopt_core.runner.jobs import JobRegistry
from tracking.store import EXPERIMENT, settings


@pytest.fixture(scope="module")
def registry():
    reg = JobRegistry(max_workers=2, launcher="process")
    yield reg
    reg.shutdown()


def _config(**values) -> ComparisonConfig:
    base = {
        "optimizers": (OptimizerConfig.parse("momentum:lr=0.05"), OptimizerConfig.parse("adam:lr=0.001")),
        "data": {"name": "wine"}, "epochs": 3, "seeds": "0,1",
    }
    return ComparisonConfig.make(**{**base, **values})


def _curves(comparison: Comparison) -> list:
    return [[(r.step, r.train_loss, r.val_loss, r.val_metric, r.status) for r in run.records] for run in comparison.runs]


def test_the_mirror_equals_a_comparison_run_here_and_every_run_is_logged(registry) -> None:
    config = _config()
    job = registry.submit(ComparisonWork(config))
    assert job.wait(120) and job.status is Status.FINISHED, job.error
    here = Comparison(config).execute()
    assert _curves(job.work.comparison) == _curves(here)
    assert all(r.status is Status.FINISHED for r in job.work.comparison.runs)
    assert job.work.comparison.progress == 1.0
    client = MlflowClient(settings().mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert {r.info.run_id for r in runs} == set(job.work.run_ids.values()) and len(runs) == 5  # 4 and their parent
    assert all(r.info.status == "FINISHED" for r in runs)
    assert job.work.tracking_errors == [] and job.work.unwritten == 0


def test_one_run_stops_alone_and_the_others_finish(registry) -> None:
    config = _config(epochs=400, data={"name": "wine"})
    job = registry.submit(ComparisonWork(config))
    runs = job.work.comparison.runs
    deadline = time.monotonic() + 120
    while not all(r.records for r in runs):
        assert time.monotonic() < deadline and job.active
        time.sleep(0.01)
    job.stop_run(1)
    while not runs[1].status.ended:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert runs[1].status is Status.CANCELLED and runs[1].status_text.startswith("cancelled at step")
    job.cancel()
    assert job.wait(60) and job.status is Status.CANCELLED
    client = MlflowClient(settings().mlflow_uri)
    status = {rid: client.get_run(rid).info.status for rid in job.work.run_ids.values()}
    assert set(status.values()) == {"KILLED"}
    assert 0 < job.work.comparison.progress < 1


def test_a_stopped_comparison_of_a_hundred_batched_runs_ends_every_run_as_stopped(registry) -> None:
    """Issue 26: a Stop of ~30 or more batched runs once ended them FAILED "interrupted" (the
    worker missed the grace while it wrote their ends). Whatever the worker does, every run
    and the parent are the user's stop: KILLED, "cancelled"."""
    optimizers = tuple(OptimizerConfig.parse(o) for o in ("sgd:lr=0.05", "momentum:lr=0.05", "adam:lr=0.01",
                                                          "rmsprop:lr=0.001", "adagrad:lr=0.05"))
    config = _config(optimizers=optimizers, seeds=",".join(map(str, range(20))), epochs=5000, engine="batched")
    job = registry.submit(ComparisonWork(config))
    runs = job.work.comparison.runs
    assert len(runs) == 100
    deadline = time.monotonic() + 180
    while not (all(r.records for r in runs) and len(job.work.run_ids) == 101):  # every run and the parent logged
        assert time.monotonic() < deadline and job.active, job.error
        time.sleep(0.05)
    job.cancel()
    assert job.wait(120) and job.status is Status.CANCELLED
    client = MlflowClient(settings().mlflow_uri)
    ended = [client.get_run(rid) for rid in job.work.run_ids.values()]
    assert {(r.info.status, r.data.tags.get("status", "").split(" ")[0]) for r in ended} == {("KILLED", "cancelled")}
