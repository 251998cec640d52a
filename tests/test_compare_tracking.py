"""Comparisons logged to a real SQLite MLflow store in a temporary folder."""

import threading

import pytest
from mlflow import MlflowClient

from dlopt_core.experiments.compare import Comparison, summary_rows
from dlopt_core.experiments.observer import Observer
from dlopt_core.config import ComparisonConfig, OptimizerConfig
from tracking import MlflowObserver
from tracking.store import EXPERIMENT, settings


def _config(*specs: str, **values) -> ComparisonConfig:
    return ComparisonConfig.make(
        optimizers=tuple(OptimizerConfig.parse(s) for s in specs),
        **{"epochs": 2, "seeds": "0", **values},
    )


def _runs(client: MlflowClient) -> list:
    """Every run of the experiment: each comparison's parent and its runs."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id])


def _children(client: MlflowClient) -> list:
    return [r for r in _runs(client) if "mlflow.parentRunId" in r.data.tags]


def test_every_run_lands_in_mlflow_with_params_metrics_and_status(dlopt_home) -> None:
    cfg = _config("momentum:lr=0.05", "sgd:lr=1e6", seeds="0,1", target_loss=0.5)
    comparison = Comparison(cfg)
    observer = MlflowObserver()
    comparison.execute(observers=[observer])
    assert observer.errors == []
    client = MlflowClient(settings().mlflow_uri)
    assert settings().mlflow_uri == f"sqlite:///{dlopt_home / 'mlflow.db'}"
    runs = {(r.data.tags["optimizer"], r.data.tags["seed"]): r for r in _children(client)}
    assert len(runs) == 4 and len(_runs(client)) == 5
    parent = client.get_run(observer.run_ids[-1])
    assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}
    assert ComparisonConfig.from_dict(parent.data.params) == cfg
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["comparison.html"]

    good = runs[("momentum", "0")]
    assert good.info.status == "FINISHED"
    assert good.data.tags["comparison_id"] == comparison.id
    assert good.data.tags["determinism"] == "deterministic"
    assert good.data.params == {k: str(v) for k, v in cfg.runs()[0].to_dict().items()}
    history = client.get_metric_history(good.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 23, 46]
    assert history[-1].value < history[0].value
    # digits is a classification: its validation metric is its accuracy.
    assert [m.step for m in client.get_metric_history(good.info.run_id, "val_accuracy")] == [0, 23, 46]
    assert "val_metric" not in good.data.metrics
    # The train loss on the whole set at every evaluation; the running batch loss from the first epoch on.
    assert [m.step for m in client.get_metric_history(good.info.run_id, "train_loss")] == [0, 23, 46]
    assert [m.step for m in client.get_metric_history(good.info.run_id, "running_loss")] == [23, 46]
    artifacts = {a.path for a in client.list_artifacts(good.info.run_id)}
    assert artifacts == {"curve.csv", "state_dict.pt"}  # the figure is on the parent only

    bad = runs[("sgd", "1")]
    assert bad.info.status == "FAILED"
    step = int(bad.data.tags["diverged_step"])
    assert bad.data.tags["status"] == f"diverged at step {step}"
    rows = {r["optimizer"]: r for r in summary_rows(comparison)}
    assert rows["SGD lr=1e+06"]["status"].startswith("diverged at step")
    assert rows["SGD + momentum lr=0.05"]["status"] == "finished"
    assert rows["SGD + momentum lr=0.05"]["steps to loss ≤ 0.5"] is not None


def test_a_cancelled_comparison_marks_its_runs_killed() -> None:
    comparison = Comparison(_config("adam", "sgd", epochs=500))
    stop = threading.Event()
    seen = []

    class StopAfterTen(Observer):
        def record(self, run, rec):
            seen.append(rec)
            if len(seen) >= 10:
                stop.set()

    comparison.execute(observers=[StopAfterTen(), MlflowObserver()], should_stop=stop.is_set)
    assert comparison.cancelled and {r.status for r in comparison.runs} == {"cancelled"}
    runs = _runs(MlflowClient(settings().mlflow_uri))
    assert len(runs) == 3 and {r.info.status for r in runs} == {"KILLED"}  # the parent too


def test_an_unreachable_server_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    comparison = Comparison(_config("adam", epochs=1))
    observer = MlflowObserver()
    comparison.execute(observers=[observer])
    assert comparison.runs[0].status == "finished"
    assert observer.errors and "127.0.0.1:9" in " ".join(observer.errors) or observer.errors
