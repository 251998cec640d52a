"""``python -m dlopt_core continual``: JSON per optimizer x strategy with the accuracy matrices, a table,
flags that round-trip, MLflow parent and children with tags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from cli_inprocess import run_main
from dlopt_core.cli import build_parser
from dlopt_core.cli.continual import argv, build_config
from dlopt_core.experiments.continual import ContinualConfig
from tracking.store import settings


def test_continual_json_has_the_matrices_and_measures_and_nests_the_runs_under_one_parent_with_tags() -> None:
    out = run_main("continual", "--optimizer", "sgd:lr=0.1", "--optimizer", "adam:lr=0.01", "--strategies",
                   "naive,replay", "--seeds", "0,1", "--epochs", "1", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["tasks"]) == 5
    pairs = [(r["optimizer"], r["strategy"]) for r in result["results"]]
    assert pairs == [("SGD lr=0.1", "naive"), ("SGD lr=0.1", "replay"), ("Adam lr=0.01", "naive"),
                     ("Adam lr=0.01", "replay")]
    for r in result["results"]:
        assert len(r["matrix"]) == 5 and all(len(row) == 5 for row in r["matrix"])
        assert {"average_accuracy", "forgetting", "bwt", "fwt"} <= set(r) and r["finished"] == 2
        assert [s["seed"] for s in r["runs"]] == [0, 1]
        assert r["forgetting"] == pytest.approx(sum(s["forgetting"] for s in r["runs"]) / 2)
    naive = result["results"][2]
    assert naive["forgetting"] > 0.3 and naive["bwt"] < 0

    client = MlflowClient(settings().mlflow_uri)
    parent = client.get_run(result["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["sequence"] == "split-digits"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=50
    )
    runs = [s for r in result["results"] for s in r["runs"]]
    assert {c.info.run_id for c in children} == {s["mlflow_run_id"] for s in runs}
    assert sorted((c.data.tags["optimizer"], c.data.tags["strategy"], c.data.tags["seed"]) for c in children) == [
        (o, s, seed) for o in ("adam", "sgd") for s in ("naive", "replay") for seed in ("0", "1")
    ]
    child = next(c for c in children if c.info.run_id == result["results"][0]["runs"][0]["mlflow_run_id"])
    assert child.info.status == "FINISHED"
    assert child.data.metrics["forgetting"] == pytest.approx(result["results"][0]["runs"][0]["forgetting"])
    assert {"average_accuracy", "bwt", "fwt", "acc_task4", "anytime_accuracy"} <= set(child.data.metrics)


def test_continual_table_and_flags_round_trip() -> None:
    out = run_main("continual", "--sequence", "permuted-digits", "--strategies", "ewc", "--optimizer", "adam",
                   "--seeds", "0", "--epochs", "1", "--ewc-lambda", "10", "--no-track")
    assert out.returncode == 0, out.stderr
    assert "forgetting" in out.stdout and "ewc" in out.stdout and "permutation 4" in out.stdout
    config = ContinualConfig.make(sequence="rotated-digits", optimizers=("sgd:lr=0.05", "adam"), strategies="replay",
                                  seeds=(4,), epochs=2, replay_size=50, ewc_lambda=3.5, batch_size=16)
    assert build_config(build_parser().parse_args(["continual", *argv(config)])) == config
    assert ContinualConfig.from_dict(config.to_dict()) == config


def test_bad_continual_input_is_one_clear_line() -> None:
    out = run_main("continual", "--strategies", "naive,forget", "--no-track")
    assert out.returncode == 2 and "strategy: unknown name 'forget'" in out.stderr


def test_continual_help_from_a_real_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "dlopt_core", "continual", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--strategies" in out.stdout and "--replay-size" in out.stdout
    assert "--ewc-lambda" in out.stdout and "--sequence" in out.stdout
