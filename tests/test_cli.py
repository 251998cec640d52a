"""The headless CLI: same engine, a results table or JSON, and the same MLflow store."""

import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from cli_inprocess import run_main
from tracking.store import EXPERIMENT, settings


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlopt_core", *args], capture_output=True, text=True, timeout=240)


def test_help_lists_the_subcommands_and_options() -> None:
    top = run_main("--help")
    assert top.returncode == 0 and "compare" in top.stdout and "list" in top.stdout
    sub = run_main("compare", "--help")
    for option in ("--dataset", "--optimizer", "--epochs", "--seeds", "--json", "--batch-size", "--schedule"):
        assert option in sub.stdout


def test_compare_prints_json_and_logs_every_run() -> None:
    out = _cli(
        "compare", "--dataset", "digits", "--model", "mlp",
        "--optimizer", "sgd:lr=0.1,momentum=0.9", "--optimizer", "adam:lr=0.001",
        "--epochs", "2", "--seeds", "0,1", "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["optimizer"] for r in result["summary"]] == ["SGD lr=0.1 momentum=0.9", "Adam lr=0.001"]
    assert len(result["runs"]) == 4 and all(r["status"] == "finished" for r in result["runs"])
    assert result["runs"][0]["evaluations"][-1]["step"] == 46
    client = MlflowClient(settings().mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # one parent run holds them
    assert {r.info.run_id for r in children} == {r["mlflow_run_id"] for r in result["runs"]} and len(runs) == 5
    assert all(r.data.tags["comparison_id"] == result["comparison_id"] for r in runs)


def test_compare_prints_a_table_and_reports_divergence() -> None:
    out = run_main("compare", "--optimizer", "sgd:lr=1e6", "--optimizer", "adam", "--epochs", "1", "--no-track")
    assert out.returncode == 0, out.stderr
    assert "diverged at step" in out.stdout and "finished" in out.stdout


def test_bad_input_is_one_clear_line_and_exit_status_2() -> None:
    out = run_main("compare", "--optimizer", "sgd:lr=-1", "--no-track")
    assert out.returncode == 2 and out.stderr.strip() == "error: optimizer.lr: must be a finite number > 0 and <= 1e9, got -1.0"
    out = run_main("compare", "--optimizer", "adam", "--dataset", "imagenet", "--no-track")
    assert out.returncode == 2 and "unknown name 'imagenet'" in out.stderr


def test_landscape_prints_every_trajectory_as_json() -> None:
    out = run_main(
        "landscape", "--function", "rosenbrock", "--start=-1.5,2", "--optimizer", "adam:lr=0.05",
        "--optimizer", "sgd:lr=0.001", "--steps", "300", "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    adam, sgd = result["trajectories"]
    assert adam["optimizer"] == "adam:lr=0.05" and len(adam["points"]) == len(adam["values"]) == 301
    assert adam["points"][0] == [-1.5, 2.0] and adam["status"] == "finished"
    assert adam["values"][-1] < adam["values"][0]
    assert result["minima"] == [[1.0, 1.0]]


def test_landscape_table_and_bad_start() -> None:
    out = run_main("landscape", "--function", "saddle", "--optimizer", "adam:lr=0.1", "--steps", "200")
    assert out.returncode == 0 and "left the window at step" in out.stdout
    out = run_main("landscape", "--optimizer", "adam", "--start=9,9")
    assert out.returncode == 2 and "outside Rosenbrock's window" in out.stderr


@pytest.mark.parametrize(("args", "said"), [
    (["--batch-size="], "argument --batch-size: empty value"),  # it trained full batch
    (["--seeds="], "argument --seeds: empty value"),
    (["--optimizer", "adam:lr="], "optimizer: lr= has no value in 'adam:lr='"),  # it used the default lr
    (["--seeds=0,,1"], "seeds: an empty item in '0,,1'"),  # it became 0,1
    (["--optimizer", "adam:lr=1_000"], "optimizer.lr: write '1_000' without '_' (as 1000)"),  # it trained at 1000
    (["--optimizer", "adam:beta1=0_9"], "optimizer.beta1: write '0_9' without '_'"),
    (["--epochs", "1_0"], "argument --epochs: write '1_0' without '_' (as 10)"),
    (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
])
def test_a_bad_value_is_one_line_that_names_the_field(args: list[str], said: str) -> None:
    """Issue 26: empty and digit-grouped values passed silently, and 12 errors printed a 20-27
    line usage block before the one line that matters."""
    out = run_main("compare", "--optimizer", "sgd", "--epochs", "1", "--no-track", *args)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert said in lines[0] and "usage:" not in out.stderr


@pytest.mark.parametrize("storage", ["sqlite:////proc/no-such-dir/s.db", "journal:/proc/no-such-dir/s.journal", "journal:/tmp"])
def test_an_unusable_study_storage_is_one_line_not_a_traceback(storage: str) -> None:
    out = run_main("search", "--optimizer", "sgd", "--n-trials", "1", "--epochs", "1", "--no-track", "--storage", storage)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: storage: "), out.stderr
