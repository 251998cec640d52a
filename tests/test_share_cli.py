"""``python -m dlopt_core share``: JSON per variant x seed with the checks, a table, MLflow parent and children."""

from __future__ import annotations

import json
import subprocess
import sys

from mlflow import MlflowClient

from cli_inprocess import run_main
from dlopt_core.cli.share import argv, build_config
from dlopt_core.cli import build_parser
from dlopt_core.experiments.share import ShareConfig
from tracking.store import settings


def test_share_json_has_a_row_per_variant_and_seed_and_nests_the_runs_under_one_parent_with_tags() -> None:
    out = run_main("share", "--family", "tied", "--epochs", "2", "--seeds", "0,1", "--width", "8", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [(r["variant"], r["seed"], r["status"]) for r in result["runs"]] == [
        ("tied", 0, "finished"), ("tied", 1, "finished"), ("untied", 0, "finished"), ("untied", 1, "finished"),
    ]
    tied, untied = result["summary"]
    assert tied["variant"] == "tied" and tied["shares_storage"] is True and untied["shares_storage"] is False
    assert tied["params"] == 64 * 8 + 8 + 64 and untied["params"] == tied["params"] + 64 * 8
    assert all(r["reconstruct_mse"] > 0 and r["grad_is_sum_of_uses"] is True for r in result["runs"])
    assert result["checks"]["tied"]["optimizer_states"] == 3

    client = MlflowClient(settings().mlflow_uri)
    parent = client.get_run(result["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["family"] == "tied"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=50
    )
    assert {c.info.run_id for c in children} == {r["mlflow_run_id"] for r in result["runs"]}
    assert sorted((c.data.tags["variant"], c.data.tags["seed"]) for c in children) == [
        ("tied", "0"), ("tied", "1"), ("untied", "0"), ("untied", "1"),
    ]
    assert all(c.data.tags["family"] == "tied" and c.info.status == "FINISHED" for c in children)
    tied_child = next(c for c in children if c.data.tags["variant"] == "tied")
    assert tied_child.data.tags["check.shares_storage"] == "true" and "val_reconstruct_mse" in tied_child.data.metrics


def test_share_table_and_flags_round_trip() -> None:
    out = run_main("share", "--family", "multitask", "--variants", "multitask,single", "--epochs", "1",
                   "--seeds", "0", "--width", "8", "--depth", "1", "--combine", "pcgrad", "--no-track")
    assert out.returncode == 0, out.stderr
    assert "multi-task" in out.stdout and "single" in out.stdout and "high_accuracy" in out.stdout
    config = ShareConfig.make(family="depth", variants=("shared",), epochs=3, seeds=(4,), depth=6)
    assert build_config(build_parser().parse_args(["share", *argv(config)])) == config
    assert ShareConfig.from_dict(config.to_dict()) == config


def test_bad_share_input_is_one_clear_line() -> None:
    out = run_main("share", "--family", "tied", "--variants", "shared", "--no-track")
    assert out.returncode == 2 and "variants: 'shared' is not of the 'tied' family" in out.stderr


def test_share_help_from_a_real_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "dlopt_core", "share", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--family" in out.stdout and "--combine" in out.stdout
