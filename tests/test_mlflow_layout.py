"""What MLflow holds after a comparison, read as a person reads it in the MLflow UI.

One parent run per comparison (its config as params, its figure) with a child run per
optimizer x seed (its own config, curves, weights); metrics named for what they are; only
the params that apply; experiments that MLflow 3 opens in its classic ML view.
"""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from dlopt_core import cli
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import ComparisonConfig, OptimizerConfig, RunConfig, param_text
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.data_demos import AugmentDemoConfig
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.study.worker import run_worker
from dlopt_core.experiments.sweep import SweepConfig
from tracking import MlflowObserver, replay_spool
from tracking.runs import RunFilter, list_entries, load_comparison
from tracking.spool import PARENT_TAG
from tracking.store import CLASSIC_ML, KIND_TAG, client, experiment_id, settings
from tracking.study_log import StudyLogger
from tracking.weights import runs_with_weights

FIGURE = "comparison.html"


def _experiment_runs(name: str) -> tuple[MlflowClient, list]:
    c = MlflowClient(settings().mlflow_uri)
    exp = c.get_experiment_by_name(name)
    assert exp is not None and exp.tags.get(KIND_TAG) == CLASSIC_ML, f"{name}: not tagged for the classic ML view"
    return c, c.search_runs([exp.experiment_id], max_results=1000)


def _family(runs: list) -> tuple:
    """(the one parent, its children); fails unless every run is one or the other."""
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent.info.run_id]
    assert len(children) == len(runs) - 1
    return parent, children


def _artifacts(c: MlflowClient, run) -> list[str]:
    return sorted(a.path for a in c.list_artifacts(run.info.run_id))


@pytest.mark.parametrize(("dataset", "metric", "other"), [("wine", "val_accuracy", "val_r2"), ("linear", "val_r2", "val_accuracy")])
def test_a_cli_comparison_is_one_parent_with_a_child_per_optimizer_and_seed(
    capsys: pytest.CaptureFixture[str], dataset: str, metric: str, other: str,
) -> None:
    argv = ["compare", "--dataset", dataset, "--model", "linear", "--optimizer", "sgd:lr=0.05", "--optimizer", "adam",
            "--epochs", "2", "--seeds", "0,1", "--json"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    config = ComparisonConfig.from_dict(result["config"])
    c, runs = _experiment_runs("dlopt-compare")
    parent, children = _family(runs)
    assert len(children) == 4
    assert {r.info.run_id for r in children} == {r["mlflow_run_id"] for r in result["runs"]}

    # The parent: the config once (the flat form the URL uses), the figure once, the comparison's end.
    assert parent.data.params == {k: param_text(v) for k, v in config.to_dict().items()}
    assert ComparisonConfig.from_dict(parent.data.params) == config
    assert parent.info.run_name == f"SGD lr=0.05 vs Adam lr=0.001 on {dataset} (linear), 2 seeds"
    assert parent.data.tags["comparison_id"] == result["comparison_id"] and parent.data.tags["status"] == "finished"
    assert parent.info.status == "FINISHED" and parent.data.metrics["elapsed_s"] > 0
    assert _artifacts(c, parent) == [FIGURE]

    for child in children:
        assert child.info.status == "FINISHED"
        assert _artifacts(c, child) == ["curve.csv", "state_dict.pt"]  # no copy of the figure
        assert metric in child.data.metrics and other not in child.data.metrics and "val_metric" not in child.data.metrics
        evaluations = next(r["evaluations"] for r in result["runs"] if r["mlflow_run_id"] == child.info.run_id)
        assert [m.step for m in c.get_metric_history(child.info.run_id, metric)] == [e["step"] for e in evaluations]
        # A linear model has no widths, activation or dropout; only this run's optimizer's settings.
        params = child.data.params
        assert not [k for k in params if k.startswith("model.")]
        name = params["optimizer"]
        assert {k.split(".", 1)[1] for k in params if k.startswith("optimizer.")} == {
            "lr", *(p.name for p in OPTIMIZERS[name].hyperparams)
        }
        assert not [k for k in params if k.startswith(("augment", "reduce", "grad_clip", "target_loss", "seeds"))]
        assert RunConfig.from_dict(params) in config.runs()

    # The Compression page's picker of finished runs with weights reads the metric by its new name.
    picked = {w.run_id: w.metric for w in runs_with_weights()}
    assert picked == {r.info.run_id: r.data.metrics[metric] for r in children}


def test_the_runs_browser_lists_the_parent_once_and_reopens_it(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "--dataset", "moons", "--optimizer", "sgd:lr=0.1", "--optimizer", "adam", "--epochs", "2",
            "--seeds", "0,1", "--json"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    (entry,) = list_entries().entries
    assert entry.comparison_id == result["comparison_id"] and entry.openable and entry.n_runs == 4
    assert entry.optimizers == ("sgd", "adam") and (entry.dataset, entry.model) == ("moons", "mlp")
    assert [e.ref for e in list_entries(RunFilter(optimizer="adam", dataset="moons", model="mlp")).entries] == [entry.ref]
    assert list_entries(RunFilter(optimizer="adamw")).entries == []
    stored = load_comparison(entry.ref)
    assert stored.config == ComparisonConfig.from_dict(result["config"])
    assert stored.parent_run_id is not None and sorted(stored.run_ids) == [-1, 0, 1, 2, 3]
    assert [r.status for r in stored.comparison.runs] == ["finished"] * 4


def test_sweep_and_data_page_parents_log_their_own_config() -> None:
    setup = {"data": {"name": "wine"}, "model": {"name": "linear"}, "epochs": 1}
    sweep = SweepConfig.make(**setup, optimizers=[{"name": "sgd"}], lr_min=0.01, lr_max=0.1, points=2, seeds=(0,))
    augment = AugmentDemoConfig.make(**setup, augment=[{"name": "noise"}], subset=0.5)
    for config, experiment in ((sweep, "dlopt-sweep"), (augment, "dlopt-data")):
        Comparison(config).execute(observers=[MlflowObserver(experiment=experiment, parent=config.parent_name())])
        c, runs = _experiment_runs(experiment)
        parent, children = _family(runs)
        assert parent.info.run_name == config.parent_name()
        assert type(config).from_dict(parent.data.params) == config
        assert len(children) == len(config.runs()) and _artifacts(c, parent) == [FIGURE]
        assert all("val_accuracy" in r.data.metrics for r in children)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_logs_only_its_own_settings_and_reads_back(model: str) -> None:
    config = RunConfig.make(data={"name": "digits"}, model={"name": model})
    params = {k: param_text(v) for k, v in config.to_dict().items()}  # what MLflow stores: text
    assert {k.split(".", 1)[1] for k in params if k.startswith("model.")} == {p.name for p in MODELS[model].hyperparams}
    assert RunConfig.from_dict(params) == config


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_logs_only_its_own_settings_and_reads_back(optimizer: str) -> None:
    batch = "full" if OPTIMIZERS[optimizer].full_batch_only else 32
    config = RunConfig.make(data={"name": "wine"}, optimizer=OptimizerConfig.make(name=optimizer), batch_size=batch)
    params = {k: param_text(v) for k, v in config.to_dict().items()}
    assert {k.split(".", 1)[1] for k in params if k.startswith("optimizer.")} == {
        "lr", *(p.name for p in OPTIMIZERS[optimizer].hyperparams)
    }
    assert RunConfig.from_dict(params) == config


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_every_schedule_logs_only_its_own_settings_and_reads_back(schedule: str) -> None:
    config = RunConfig.make(data={"name": "wine"}, schedule={"name": schedule})
    params = {k: param_text(v) for k, v in config.to_dict().items()}
    assert {k.split(".", 1)[1] for k in params if k.startswith("schedule.")} == {
        p.name for p in SCHEDULES[schedule].hyperparams
    }
    assert RunConfig.from_dict(params) == config


def test_an_experiment_made_before_is_tagged_on_first_use_and_a_chosen_kind_is_kept() -> None:
    c = client()
    old = c.create_experiment("dlopt-old")
    chosen = c.create_experiment("dlopt-chosen", tags={KIND_TAG: "genai_development"})
    assert experiment_id("dlopt-old") == old and experiment_id("dlopt-chosen") == chosen
    assert c.get_experiment(old).tags[KIND_TAG] == CLASSIC_ML
    assert c.get_experiment(chosen).tags[KIND_TAG] == "genai_development"


class _Down(ConnectionError):
    pass


def test_a_comparison_logged_while_the_store_is_down_is_replayed_as_parent_and_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(*args: object, **kwargs: object) -> MlflowClient:
        raise _Down("the store does not answer")

    config = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd"), OptimizerConfig.parse("adam")), data={"name": "wine"},
        model={"name": "linear"}, epochs=1, seeds=(0, 1),
    )
    observer = MlflowObserver()
    # The observer and its end-of-comparison replay find the store down; a later start finds it back.
    with monkeypatch.context() as down_now:
        down_now.setattr("tracking.mlflow_log.client", down)
        down_now.setattr("tracking.spool.client", down)
        comparison = Comparison(config).execute(observers=[observer])
    assert observer.run_ids == {} and observer.unwritten > 0 and observer.errors
    assert len(list(settings().spool_dir.glob("*.jsonl"))) == 5  # the parent and four children

    result = replay_spool()
    assert (result.pending, result.dropped, result.errors) == (0, 0, []), result
    assert result.written > 0, result
    c, runs = _experiment_runs("dlopt-compare")
    parent, children = _family(runs)
    assert len(children) == 4 and ComparisonConfig.from_dict(parent.data.params) == config
    assert parent.info.status == "FINISHED" and _artifacts(c, parent) == [FIGURE]
    assert all(_artifacts(c, r) == ["curve.csv", "state_dict.pt"] for r in children)
    stored = load_comparison(comparison.id)
    assert stored.config == config and sorted(stored.run_ids) == [-1, 0, 1, 2, 3]


@pytest.mark.parametrize(("dataset", "metric"), [("wine", "val_accuracy"), ("linear", "val_r2")])
def test_a_study_logs_each_trial_under_its_parent_with_the_metric_named_by_task(dataset: str, metric: str) -> None:
    config = StudyConfig.make(data={"name": dataset}, model={"name": "linear"}, epochs=2, n_trials=2, sampler="random")
    logger = StudyLogger()
    run_worker(config, observers=[logger], worker=0)
    c, runs = _experiment_runs("dlopt-search")
    parent, children = _family(runs)
    assert parent.info.run_id == logger.parent_run_id and len(children) == 2
    for child in children:
        assert [m.step for m in c.get_metric_history(child.info.run_id, metric)] == [0, 1, 2]
        assert "val_metric" not in child.data.metrics
