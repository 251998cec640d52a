"""Runs survive faults: processes racing on a new store, a killed trainer, a lost server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.observer import Observer
from mlflow_server import MlflowServer
from tracking import MlflowObserver, end_orphaned_runs, recover, replay_spool
from tracking.reconcile import HOST_TAG, INTERRUPTED_TAG, INTERRUPTED_TEXT, PID_START_TAG, process_start, run_identity_tags
from tracking.spool import RunSpool
from tracking.store import EXPERIMENT, TEMPLATE_ENV, client, experiment_id, settings

DEADLINE = 120.0  # seconds; generous: a loaded machine is slow, never wrong


def _cli(home: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "DLOPT_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-m", "dlopt_core", "compare", "--dataset", "wine", "--model", "linear",
         "--optimizer", "sgd", *args],
        env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True,
    )


def _runs(uri: str | None = None, experiment: str = EXPERIMENT) -> list:
    c = MlflowClient(uri or settings().mlflow_uri)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])


def _children(runs: list) -> list:
    """The training runs (a comparison's parent holds them)."""
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_processes_started_together_on_a_new_home_keep_every_run(dlopt_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEMPLATE_ENV)  # the race is in MLflow's migrations of a new store: no ready-made copy
    assert not dlopt_home.exists()
    procs = [_cli(dlopt_home, "--epochs", "2", "--json") for _ in range(4)]
    outs = [p.communicate(timeout=DEADLINE) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert json.loads(out)["tracking_errors"] == []
    logged = {json.loads(out)["runs"][0]["mlflow_run_id"] for out, _ in outs}
    runs = _runs()
    assert {r.info.run_id for r in _children(runs)} == logged and len(runs) == 8  # a parent each
    assert {r.info.status for r in runs} == {"FINISHED"}

    later = MlflowObserver()
    Comparison(_config(epochs=1)).execute(observers=[later])
    assert later.errors == [] and later.unwritten == 0 and len(_runs()) == 11


def test_a_killed_trainer_has_its_run_ended_and_a_live_one_is_left_alone(dlopt_home: Path, tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = _cli(dlopt_home, "--epochs", "5000", log=log)
    try:
        deadline = time.monotonic() + DEADLINE
        while len(runs := _runs()) < 2:  # the comparison's parent and its one run
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the child's run never appeared"
            time.sleep(0.1)
        assert {r.info.status for r in runs} == {"RUNNING"}
        assert end_orphaned_runs() == []  # its process is alive: never touched
        assert {client().get_run(r.info.run_id).info.status for r in runs} == {"RUNNING"}
    finally:
        child.kill()
        child.wait(timeout=DEADLINE)
    assert sorted(end_orphaned_runs()) == sorted(r.info.run_id for r in runs)
    for run in runs:
        ended = client().get_run(run.info.run_id)
        assert ended.info.status == "FAILED"
        assert ended.data.tags[INTERRUPTED_TAG] == "true" and ended.data.tags["status"] == INTERRUPTED_TEXT
    assert end_orphaned_runs() == []


def test_only_runs_whose_process_is_gone_are_ended_in_every_experiment() -> None:
    c = client()
    mine = run_identity_tags()
    assert mine[PID_START_TAG] == process_start(os.getpid())
    live = c.create_run(experiment_id(), tags=mine)
    # This pid, but a process started at another time: the kernel reused the pid.
    reused = c.create_run(experiment_id("dlopt-other"), tags={**mine, PID_START_TAG: "1"})
    elsewhere = c.create_run(experiment_id(), tags={**mine, HOST_TAG: "another-host", PID_START_TAG: "1"})
    untagged = c.create_run(experiment_id())
    assert end_orphaned_runs() == [reused.info.run_id]
    status = {r.info.run_id: c.get_run(r.info.run_id).info.status for r in (live, reused, elsewhere, untagged)}
    assert status == {
        live.info.run_id: "RUNNING",
        reused.info.run_id: "FAILED",
        elsewhere.info.run_id: "RUNNING",
        untagged.info.run_id: "RUNNING",
    }


def test_a_zombie_process_counts_as_ended() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    assert process_start(proc.pid) is not None
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + DEADLINE
    while process_start(proc.pid) is not None:  # ended, not yet reaped: a zombie
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.wait(timeout=DEADLINE)


def test_a_spool_in_use_is_left_alone_and_a_torn_last_line_is_skipped(dlopt_home: Path) -> None:
    store = settings()
    create = {"op": "create", "experiment": EXPERIMENT, "run_name": "spooled", "tags": {"seed": "0"}, "start_time": 1}
    spool = RunSpool(store, "test-0", None)
    for op in (
        create,
        {"op": "params", "params": {"epochs": "2"}},
        {"op": "metrics", "metrics": [["val_loss", 0.5, 2, 0], ["val_loss", float("nan"), 3, 5]]},
        {"op": "no-such-op"},  # malformed: dropped, not retried forever
        {"op": "end", "status": "FINISHED", "end_time": 4},
    ):
        spool.append(op)
    assert replay_spool().pending == 5 and _runs() == []  # its owner still holds it
    spool.close()
    with open(spool.path, "ab") as f:
        f.write(b'{"op":"tags","ta')  # a crash in the middle of a write
    result = replay_spool()
    assert (result.written, result.pending, result.dropped) == (4, 0, 1)
    (run,) = _runs()
    assert run.info.status == "FINISHED" and run.data.params == {"epochs": "2"}
    assert [m.step for m in client().get_metric_history(run.info.run_id, "val_loss")] == [0, 5]
    assert list(store.spool_dir.iterdir()) == []


def _config(epochs: int) -> ComparisonConfig:
    return ComparisonConfig.make(
        data={"name": "wine"}, model={"name": "linear"}, epochs=epochs, seeds="0",
        optimizers=(OptimizerConfig.parse("sgd"), OptimizerConfig.parse("adam")),
    )


class _StopServerAt(Observer):
    """Ends the server from the training thread once run 0 reaches ``step``: not time based."""

    def __init__(self, server: MlflowServer, step: int) -> None:
        self.server, self.step, self.stopped = server, step, False

    def record(self, run, rec) -> None:
        if not self.stopped and run.index == 0 and rec.step >= self.step:
            self.server.stop()
            self.stopped = True


def test_writes_a_lost_server_missed_are_kept_and_replayed_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        observer = MlflowObserver(flush_seconds=0)
        stopper = _StopServerAt(server, step=9)
        lost_mid_run = Comparison(_config(epochs=6))
        lost_mid_run.execute(observers=[observer, stopper])
        assert stopper.stopped and sorted(observer.run_ids) == [-1, 0, 1]  # all created before the loss
        assert [r.status for r in lost_mid_run.runs] == ["finished", "finished"]
        assert observer.errors and observer.unwritten > 0
        assert not observer.describe().startswith("logged")
        unwritten, first_run_id = observer.unwritten, observer.run_ids[0]

        # The same observer (a worker runs comparisons one after another), the server still
        # away: it tries again, and even its runs' creation waits in the spool.
        never_seen = Comparison(_config(epochs=1))
        never_seen.execute(observers=[observer])
        assert observer.run_ids == {} and observer.unwritten > 0
        unwritten += observer.unwritten
        spool = settings().spool_dir
        assert len(list(spool.glob("*.jsonl"))) == 6  # each comparison's parent and two runs
        assert recover().replay.pending == unwritten  # still away: nothing lost

        server.start()
        result = replay_spool()
        assert (result.written, result.pending, result.dropped) == (unwritten, 0, 0)
        assert list(spool.iterdir()) == []

        c = MlflowClient(server.url)
        stored = _runs(server.url)
        runs = {(r.data.tags["comparison_id"], r.data.tags["optimizer"]): r for r in _children(stored)}
        parents = {r.data.tags["comparison_id"]: r for r in stored if "mlflow.parentRunId" not in r.data.tags}
        assert len(runs) == 4 and len(stored) == 6
        for comparison in (lost_mid_run, never_seen):
            # The parent (created before the loss, or itself replayed) holds its runs and the figure.
            parent = parents[comparison.id]
            assert parent.info.status == "FINISHED" and parent.data.tags["status"] == "finished"
            assert ComparisonConfig.from_dict(parent.data.params) == comparison.config
            assert [a.path for a in c.list_artifacts(parent.info.run_id)] == ["comparison.html"]
            for r in comparison.runs:
                logged = runs[(comparison.id, r.config.optimizer.name)]
                assert logged.info.status == "FINISHED" and logged.data.tags["status"] == "finished"
                history = c.get_metric_history(logged.info.run_id, "val_loss")
                assert [m.step for m in history] == [rec.step for rec in r.records if rec.is_eval]
                assert logged.data.tags["mlflow.parentRunId"] == parent.info.run_id
                # The final weights on every finished run, replayed from the spool like the rest.
                assert sorted(a.path for a in c.list_artifacts(logged.info.run_id)) == ["curve.csv", "state_dict.pt"]
        assert runs[(lost_mid_run.id, "sgd")].info.run_id == first_run_id
    finally:
        server.stop()
