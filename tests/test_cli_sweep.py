"""The CLI's sweep and engine choice: JSON a script can read, and runs nested in MLflow."""

import json
import math
import subprocess
import sys

from mlflow import MlflowClient

from cli_inprocess import run_main
from tracking.store import settings


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlopt_core", *args], capture_output=True, text=True, timeout=240)


def test_sweep_prints_every_point_and_the_best_lr_and_nests_the_runs_under_one_parent() -> None:
    out = _cli(
        "sweep", "--dataset", "wine", "--optimizer", "sgd", "--optimizer", "adam", "--lr-range", "1e-3:3",
        "--points", "5", "--seeds", "0,1", "--epochs", "3", "--json",
    )
    assert out.returncode in (0, 1), out.stderr  # 1: a run at lr=3 may diverge, as it should be allowed to
    result = json.loads(out.stdout)
    assert result["lrs"] == [0.001, 0.0074, 0.0548, 0.405, 3.0]
    assert len(result["runs"]) == 2 * 5 * 2
    assert {(r["optimizer"], r["lr"], r["seed"]) for r in result["runs"]} == {
        (o, lr, s) for o in ("sgd", "adam") for lr in result["lrs"] for s in (0, 1)
    }
    assert set(result["best_lr"]) == {"sgd", "adam"}
    for name, best in result["best_lr"].items():
        mine = [r for r in result["runs"] if r["optimizer"] == name and r["status"] == "finished"]
        means = {}
        for lr in result["lrs"]:
            losses = [r["val_loss"] for r in mine if r["lr"] == lr]
            if len(losses) == 2:
                means[lr] = sum(losses) / 2
        assert best == min(means, key=means.get)
        assert result["best_on_edge"][name] == (best in (result["lrs"][0], result["lrs"][-1]))
    assert all(r["engine"] == "batched" for r in result["runs"])
    assert result["elapsed_s"] > 0
    client = MlflowClient(settings().mlflow_uri)
    parent = client.get_run(result["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and "comparison.html" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100
    )
    assert {c.info.run_id for c in children} == {r["mlflow_run_id"] for r in result["runs"]}
    assert all(c.data.tags["engine"] == "batched" for c in children)


def test_sweep_table_names_the_best_lr_and_warns_on_the_edge() -> None:
    out = run_main("sweep", "--dataset", "wine", "--optimizer", "adam", "--lr-range", "1e-5:1e-4", "--points", "3",
               "--seeds", "0", "--epochs", "2", "--no-track")
    assert out.returncode == 0, out.stderr
    assert "best lr for Adam: 0.0001" in out.stdout and "on the edge of the range" in out.stdout


def test_bad_sweep_input_is_one_clear_line() -> None:
    out = run_main("sweep", "--optimizer", "adam", "--lr-range", "1:0.1", "--no-track")
    assert out.returncode == 2 and "lr_min: must be below lr_max" in out.stderr
    out = run_main("sweep", "--optimizer", "adam", "--lr-range", "fast", "--no-track")
    assert out.returncode == 2 and "LOW:HIGH" in out.stderr
    four = [a for n in ("adam", "sgd", "rmsprop", "adamw") for a in ("--optimizer", n)]
    out = run_main("sweep", *four, "--points", "64", "--seeds", "0,1,2,3,4,5,6,7,8", "--no-track")  # 2,304 runs
    assert out.returncode == 2 and "more than 2048" in out.stderr


def test_compare_engines_give_the_same_curves_and_say_which_trained_each_run() -> None:
    common = ("compare", "--dataset", "wine", "--optimizer", "sgd", "--optimizer", "adam", "--optimizer", "lbfgs",
              "--epochs", "3", "--json", "--no-track")
    batched = json.loads(run_main(*common, "--engine", "auto").stdout)
    sequential = json.loads(run_main(*common, "--engine", "sequential").stdout)
    assert [r["engine"] for r in batched["runs"]] == ["batched", "batched", "sequential"]
    assert [r["engine"] for r in sequential["runs"]] == ["sequential"] * 3
    for a, b in zip(batched["runs"], sequential["runs"]):
        for ea, eb in zip(a["evaluations"], b["evaluations"]):
            assert math.isclose(ea["val_loss"], eb["val_loss"], rel_tol=1e-4)
    assert batched["elapsed_s"] > 0 and sequential["elapsed_s"] > 0
    assert "--engine" in run_main("compare", "--help").stdout and "--lr-range" in run_main("sweep", "--help").stdout
