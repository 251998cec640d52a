"""``python -m dlopt_core transfer``, its MLflow runs (a parent, a child per arm x seed tagged with its arm),
and the transfer as background work (issue 20)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from mlflow import MlflowClient

from cli_inprocess import run_main
from dlopt_core.config import ModelConfig
from dlopt_core.experiments.events import RecordMade
from dlopt_core.experiments.transfer import TransferConfig, TransferWork
from dlopt_core.runner.jobs import JobRegistry
from dlopt_core.transfer.arms import ARMS
from tracking.store import settings

SMALL = ["--task", "moons-rotated", "--model", "mlp:hidden=8/8", "--epochs", "2", "--source-epochs", "2",
         "--target-fraction", "0.2"]


def test_help_is_the_real_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "dlopt_core", "transfer", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for flag in ("--task", "--target-fraction", "--arms", "--lora-rank", "--layer-decay", "--unfreeze-every", "--sizes",
                 "--optimizer", "--seeds", "--json", "--no-track"):
        assert flag in done.stdout


def test_json_gives_each_arm_its_accuracies_and_mlflow_holds_a_parent_and_a_tagged_child_per_arm_and_seed() -> None:
    done = run_main("transfer", *SMALL, "--seeds", "0,1", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [r["arm"] for r in out["summary"]] == list(ARMS)
    for row in out["summary"] + out["runs"]:
        assert row["trainable_params"] > 0
        for key in ("target_accuracy", "shifted_accuracy", "source_accuracy"):
            if key == "source_accuracy" and row["arm"] == "scratch":  # it never saw the source
                assert row[key] is None
                continue
            assert 0.0 <= row[key] <= 1.0, (row["arm"], key)
    assert [(r["arm"], r["seed"]) for r in out["runs"]] == [(a, s) for a in ARMS for s in (0, 1)]
    client = MlflowClient(settings().mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("dlopt-transfer").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and parents[0].data.params["task"] == "moons-rotated"
    assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in children) == sorted(
        (a, str(s)) for a in ARMS for s in (0, 1)
    )
    assert {r.info.run_id for r in children} == {r["mlflow_run_id"] for r in out["runs"]}
    # The numbers the CLI prints are the ones MLflow holds.
    by_id = {r.info.run_id: r.data.metrics for r in children}
    for row in out["runs"]:
        logged = by_id[row["mlflow_run_id"]]
        assert logged["shifted_accuracy"] == row["shifted_accuracy"] and logged["trainable_params"] == row["trainable_params"]
        assert logged.get("source_accuracy") == row["source_accuracy"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_the_table_and_a_bad_arm() -> None:
    done = run_main("transfer", *SMALL, "--arms", "scratch,probe", "--seeds", "0", "--no-track")
    assert done.returncode == 0 and "probe" in done.stdout and "source model" in done.stdout
    bad = run_main("transfer", "--arms", "probe,finetune", "--no-track")
    assert bad.returncode == 2 and "arm" in bad.stderr and "finetune" in bad.stderr


def _config(**values) -> TransferConfig:
    base = dict(task="moons-rotated", model=ModelConfig.make(name="mlp", params={"hidden": (8, 8)}), epochs=2,
                source_epochs=2, seeds=(0, 1))
    return TransferConfig.make(**{**base, **values})


def test_transfer_work_in_a_thread_fills_the_mirror() -> None:
    registry = JobRegistry(1, launcher="thread")
    try:
        job = registry.submit(TransferWork(_config(arms=("probe", "lora")), track=False))
        assert job.wait(120) and str(job.status) == "finished"
        t = job.payload.transfer
        assert [(r.arm, r.config.seed, str(r.status)) for r in t.runs] == [
            ("probe", 0, "finished"), ("probe", 1, "finished"), ("lora", 0, "finished"), ("lora", 1, "finished"),
        ]
        assert t.source_accuracy is not None and t.elapsed_s > 0
        for r in t.runs:
            assert len(r.target_accuracies) == len(r.shifted_accuracy) == 3 and r.source_accuracy is not None
            assert all(len(v) == 2 for v in r.layer_change.values()) and all(len(v) == 2 for v in r.layer_lr.values())
    finally:
        registry.shutdown()


class _StopsAtFirstRecord(TransferWork):
    """Cancels its own job when the first record reaches the mirror (no timing involved)."""

    job = None
    ready = threading.Event()

    def apply(self, event) -> None:
        super().apply(event)
        if isinstance(event, RecordMade):
            type(self).ready.wait(60)
            type(self).job.cancel()


def test_transfer_work_stops_when_cancelled() -> None:
    registry = JobRegistry(1, launcher="thread")
    try:
        job = registry.submit(_StopsAtFirstRecord(_config(arms=("full", "probe"), epochs=50), track=False))
        _StopsAtFirstRecord.job = job
        _StopsAtFirstRecord.ready.set()
        assert job.wait(120) and str(job.status) == "cancelled"
        runs = job.payload.transfer.runs
        assert str(runs[0].status) == "cancelled" and runs[0].steps < runs[0].total_steps
        assert all(str(r.status) == "cancelled" and r.steps == 0 for r in runs[1:])
    finally:
        registry.shutdown()


def test_source_weights_from_a_file_replace_pretraining_and_a_misfit_is_refused(tmp_path) -> None:
    import torch

    from dlopt_core.experiments.transfer import pretrain_source

    config = TransferConfig.make(task="moons-rotated", model=ModelConfig.parse("mlp:hidden=8/8"), epochs=2,
                                 source_epochs=2, target_fraction=0.2)
    state = pretrain_source(config)
    path = tmp_path / "source.pt"
    torch.save({k: torch.as_tensor(v) for k, v in state.items()}, path)
    done = run_main("transfer", *SMALL, "--seeds", "0", "--arms", "probe", "--source-weights", str(path), "--json", "--no-track")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # A probe trains the head only: the backbone it keeps is the file's, so it keeps the source task whole.
    assert out["runs"][0]["source_accuracy"] == out["source_model_accuracy"]

    wide = tmp_path / "wide.pt"
    torch.save({k: torch.zeros(v.shape[0] * 2, *v.shape[1:]) for k, v in state.items()}, wide)
    done = run_main("transfer", *SMALL, "--seeds", "0", "--source-weights", str(wide), "--no-track")
    assert done.returncode == 2 and "do not fit" in done.stderr, done.stderr
