"""``python -m dlopt_core compress``, variants as MLflow runs, and stored weights read back safely (issue 9)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from dlopt_core.compression.weights import WeightsError, read_state_dict
from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.experiments.compare import Comparison
from tracking.mlflow_log import MlflowObserver
from tracking.store import settings
from tracking.weights import load_run_weights


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlopt_core", *args], capture_output=True, text=True, timeout=300)


def _main(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """The CLI in this process: the same ``main`` and output, without ~6 s of imports per call
    (the real command line is run once, by the test of the full table)."""
    from dlopt_core.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


class _Payload:
    """Unpickling this would create ``path``: the proof that a crafted file ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _crafted(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"0.weight": _Payload(marker)}, buffer)
    return buffer.getvalue()


def test_help_lists_compress_and_its_options(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        _main(capsys, "compress", "--help")
    assert done.value.code == 0
    out = capsys.readouterr()
    for option in ("--method", "--weights", "--sparsities", "--compile", "--latency-repeats", "--json", "prune_structured"):
        assert option in out.out


def test_compress_prints_one_row_per_variant_and_logs_each_as_a_run() -> None:
    out = _cli(
        "compress", "--dataset", "digits", "--model", "mlp:hidden=64", "--epochs", "2",
        "--method", "prune_structured:sparsity=0.5", "--method", "prune_unstructured:sparsity=0.9",
        "--method", "quantize_int8_dynamic", "--method", "quantize_int8_weight", "--method", "fp16",
        "--method", "distill:student=mlp:hidden=8", "--latency-repeats", "3", "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    rows = result["rows"]
    assert [r["method"] for r in rows] == [
        "baseline", "prune_structured", "prune_unstructured", "quantize_int8_dynamic", "quantize_int8_weight", "fp16",
        "distill", "student_scratch",
    ]
    for r in rows:
        assert {"accuracy", "params", "nonzeros", "bytes", "latency_b1_ms", "latency_b256_ms"} <= r.keys()
        assert r["error"] is None and r["latency_b1_ms"] > 0 and r["accuracy"] == r["val_metric"]
    base, structured, masked = rows[0], rows[1], rows[2]
    assert structured["params"] < base["params"] and structured["bytes"] < base["bytes"]
    assert masked["masked_only"] and masked["params"] == base["params"] and masked["nonzeros"] < 0.2 * base["params"]
    assert masked["sparse_bytes"] is not None and rows[5]["bytes"] < base["bytes"]

    client = MlflowClient(settings().mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("dlopt-compress").experiment_id])
    variants = {r.info.run_id: r for r in runs if "method" in r.data.params}
    assert set(variants) == {r["mlflow_run_id"] for r in rows}
    trained = {r.info.run_name: r for r in runs if "method" not in r.data.params}
    assert sorted(trained) == ["baseline seed=0", "student mlp:hidden=8 distilled seed=0",
                               "student mlp:hidden=8 from scratch seed=0"]
    baseline_id = trained["baseline seed=0"].info.run_id
    for r in variants.values():
        assert r.data.tags["baseline_run_id"] == baseline_id and r.info.status == "FINISHED"
        assert r.data.metrics["bytes"] > 0
    assert variants[rows[1]["mlflow_run_id"]].data.params["method.sparsity"] == "0.5"
    # The baseline trained here stored its weights: a later compression can start from them.
    weights = load_run_weights(baseline_id)
    assert weights.config.model.params["hidden"] == (64,) and set(weights.state) == {"0.weight", "0.bias", "2.weight", "2.bias"}


@pytest.mark.parametrize("args, message", [
    (["--method", "prune_unstructured:sparsity=1"], "error: method.sparsity: '1' is outside the allowed range [0, 1)"),
    (["--method", "prune_structured:sparsity=1.5"], "outside the allowed range [0, 1)"),
    (["--method", "fp16", "--method", "distill:student=mlp:hidden=512"], "more than its teacher's"),
    (["--model", "linear", "--method", "prune_structured"], "no hidden neurons or channels"),
    (["--method", "fp16", "--weights", "/nonexistent/weights.pt"], "cannot read '/nonexistent/weights.pt'"),
    (["--method", "fp16", "--sparsities", "0.5,1"], "sparsities: each must be in [0, 1)"),
])
def test_bad_input_is_one_clear_line_exit_2_and_nothing_logged(args: list[str], message: str, capsys) -> None:
    out = _main(capsys, "compress", "--model", "mlp:hidden=64", "--epochs", "1", *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (settings().home / "mlflow.db").exists()  # validated before MLflow heard of anything


def test_a_crafted_weights_file_is_refused_and_nothing_in_it_runs(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "weights.pt"
    path.write_bytes(_crafted(marker))
    out = _main(capsys, "compress", "--model", "mlp:hidden=64", "--method", "fp16", "--weights", str(path), "--no-track")
    assert out.returncode == 2 and "refused, not loadable with weights_only=True" in out.stderr
    assert "posix.system" in out.stderr and not marker.exists()
    with pytest.raises(WeightsError, match="refused"):
        read_state_dict(_crafted(marker))
    assert not marker.exists()


def test_given_weights_are_the_baseline(tmp_path: Path, capsys) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    out = _main(capsys, "compress", "--model", "mlp:hidden=32", "--method", "bf16", "--weights", str(path), "--no-track",
               "--no-sensitivity", "--latency-repeats", "3", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert [r["method"] for r in rows] == ["baseline", "bf16"] and rows[0]["params"] == 64 * 32 + 32 + 32 * 10 + 10
    wrong = _main(capsys, "compress", "--model", "mlp:hidden=16", "--method", "bf16", "--weights", str(path), "--no-track")
    assert wrong.returncode == 2 and "do not fit the model 'mlp:hidden=16'" in wrong.stderr


def _logged_run(**artifacts: bytes) -> str:
    observer = MlflowObserver(experiment="weights")
    comparison = Comparison(ComparisonConfig.make(epochs=1, optimizers=(OptimizerConfig.make(name="adam"),)))
    comparison.execute(observers=[observer])
    run_id = observer.run_ids[0]
    client = MlflowClient(settings().mlflow_uri)
    for name, data in artifacts.items():
        local = settings().home / name
        local.write_bytes(data)
        client.log_artifact(run_id, str(local))
    return run_id


def test_stored_weights_load_only_as_weights(tmp_path: Path) -> None:
    run_id = _logged_run()
    loaded = load_run_weights(run_id)
    assert loaded.config.optimizer.name == "adam" and loaded.state["0.weight"].shape == (64, 64)

    marker = tmp_path / "ran"
    crafted = _logged_run(**{"state_dict.pt": _crafted(marker)})  # an artifact overwritten by someone
    with pytest.raises(WeightsError, match="refused, not loadable with weights_only=True"):
        load_run_weights(crafted)
    assert not marker.exists()

    not_a_state = io.BytesIO()
    torch.save([torch.zeros(2)], not_a_state)
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_run_weights(_logged_run(**{"state_dict.pt": not_a_state.getvalue()}))
    with pytest.raises(WeightsError, match="not found"):
        load_run_weights("0" * 32)


def test_a_run_without_stored_weights_says_so() -> None:
    observer = MlflowObserver(experiment="weights")
    comparison = Comparison(ComparisonConfig.make(epochs=1, optimizers=(OptimizerConfig.make(name="sgd", lr=1e9),)))
    comparison.execute(observers=[observer])  # diverges: no final weights
    with pytest.raises(WeightsError, match=r"\(diverged at step \d+\): no stored weights"):
        load_run_weights(observer.run_ids[0])
