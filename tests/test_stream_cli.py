"""``python -m dlopt_core stream``: JSON with drifts, curves, recovery and detector scores; MLflow parent and children."""

from __future__ import annotations

import json
import subprocess
import sys

from cli_inprocess import run_main
from mlflow import MlflowClient

from dlopt_core.cli import build_parser
from dlopt_core.cli.stream import argv, build_config
from dlopt_core.experiments.stream import StreamConfig
from tracking.store import settings

ARGS = ("stream", "--stream", "sea", "--learners", "sgd:lr=0.1", "--learners", "adam:lr=0.01,policy=reset",
        "--seeds", "0,1", "--batch-size", "45")


def test_stream_json_has_drifts_curves_recovery_and_scores_and_nests_runs_under_one_parent() -> None:
    out = run_main(*ARGS, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["drifts"] == [[33, 33], [66, 66]] and result["n_steps"] == 100
    sgd, adam = result["learners"]
    assert (sgd["optimizer"], sgd["policy"], adam["policy"]) == ("sgd", "constant", "reset")
    assert len(sgd["curve"]) == 100 and all(0 <= v <= 1 for v in sgd["curve"])
    assert len(sgd["recover_steps"]) == 2 and [r["seed"] for r in sgd["runs"]] == [0, 1]
    for name in ("adwin", "page_hinkley", "kswin"):
        scores = result["detectors"][name]
        assert set(scores) >= {"precision", "recall", "mean_time_to_detect", "false_per_1000", "always", "never"}
        assert scores["always"]["recall"] == 1.0 and scores["never"]["recall"] == 0.0

    client = MlflowClient(settings().mlflow_uri)
    parent = client.get_run(result["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["stream"] == "sea"
    assert "always_false_per_1000" in parent.data.metrics and parent.data.tags["drift_steps"] == "33-33 66-66"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=50
    )
    assert {c.info.run_id for c in children} == {r["mlflow_run_id"] for lr in result["learners"] for r in lr["runs"]}
    assert sorted((c.data.tags["optimizer"], c.data.tags["policy"], c.data.tags["seed"]) for c in children) == [
        ("adam", "reset", "0"), ("adam", "reset", "1"), ("sgd", "constant", "0"), ("sgd", "constant", "1"),
    ]
    for c in children:
        assert c.info.status == "FINISHED" and {"final_accuracy", "average_accuracy", "accuracy"} <= set(c.data.metrics)


def test_stream_table_and_flags_round_trip() -> None:
    out = run_main(*ARGS, "--no-track")
    assert out.returncode == 0, out.stderr
    assert "true drifts (steps): 33, 66" in out.stdout and "recover_1" in out.stdout and "always_precision" in out.stdout
    config = StreamConfig.make(stream="hyperplane", learners=("adam:lr=0.003,policy=decay",), seeds=(4,), window=7,
                               hidden=(8, 8), reset_detector="kswin")
    assert build_config(build_parser().parse_args(["stream", *argv(config)])) == config


def test_bad_stream_input_is_one_clear_line() -> None:
    out = run_main("stream", "--learners", "adam:policy=often", "--no-track")
    assert out.returncode == 2 and "policy" in out.stderr


def test_stream_help_runs_as_a_program() -> None:
    done = subprocess.run([sys.executable, "-m", "dlopt_core", "stream", "--help"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0 and "--learners" in done.stdout and "--window" in done.stdout
