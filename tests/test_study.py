"""Optuna studies in one process: search, pruning, divergence, resume, samplers, MLflow, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib.metadata import EntryPoint

import optuna
import pytest
from mlflow import MlflowClient

from cli_inprocess import run_main
from dlopt_core.cli import main
from dlopt_core.config import RunConfig
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import run
from dlopt_core.experiments.observer import Observer
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.study.store import load_study, study_config, study_names
from dlopt_core.experiments.study.summary import study_summary
from dlopt_core.experiments.study.worker import run_worker
from tracking.store import settings
from tracking.study_log import EXPERIMENT, StudyLogger

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _config(**values) -> StudyConfig:
    return StudyConfig.make(**{"data": {"name": "wine"}, "epochs": 3, "optimizer": {"name": "adam"}, **values})


def _final_val_loss(config: RunConfig) -> float:
    return [r.val_loss for r in run(config) if r.is_eval][-1]


def test_the_best_trial_beats_the_registry_default_lr() -> None:
    config = _config(n_trials=10)
    summary = run_worker(config, worker=0)
    default = _final_val_loss(config.trial_config({"lr": config.optimizer.lr}))  # adam's registry lr, 1e-3
    assert summary.done and summary.finished == 10
    assert summary.best is not None and summary.best.state == "complete"
    assert summary.best.value < 0.5 * default
    assert summary.best.value == load_study(config.name).best_value
    # The best trial's value is its run's: the trial config reproduces it.
    assert _final_val_loss(config.trial_config(summary.best.params)) == pytest.approx(summary.best.value)


def test_the_median_pruner_stops_poor_trials_early() -> None:
    # A grid from far too small to good: the small rates barely move and fall behind the median.
    config = _config(optimizer={"name": "sgd"}, epochs=6, sampler="grid", pruner="median", n_trials=10,
                     lr_min=1e-6, lr_max=1.0)
    summary = run_worker(config, worker=0)
    pruned = [t for t in summary.trials if t.state == "pruned"]
    assert summary.finished == 10 and pruned
    for t in pruned:
        assert t.diverged_step is None and max(t.intermediate) < config.epochs
    completed_lrs = [t.lr for t in summary.trials if t.state == "complete"]
    assert min(t.lr for t in pruned) < min(completed_lrs)


def test_diverging_lrs_never_crash_a_study_and_never_win() -> None:
    config = _config(optimizer={"name": "sgd"}, sampler="grid", pruner="none", n_trials=8, lr_min=1e-2, lr_max=1e3)
    summary = run_worker(config, worker=0)
    diverged = [t for t in summary.trials if t.diverged_step is not None]
    assert summary.finished == 8 and diverged
    assert all(t.state == "pruned" and t.value is None for t in diverged)
    assert summary.best is not None and summary.best.diverged_step is None
    assert summary.best.lr < min(t.lr for t in diverged)
    # What a diverged trial reported is worse than anything a trial that did not diverge reached.
    worst_ok = max(v for t in summary.trials if t.diverged_step is None for v in t.intermediate.values())
    assert all(max(t.intermediate.values()) > worst_ok and math.isfinite(max(t.intermediate.values())) for t in diverged)


def test_a_study_where_every_trial_diverges_ends_without_a_best() -> None:
    config = _config(optimizer={"name": "sgd"}, sampler="random", n_trials=4, lr_min=1e3, lr_max=1e5)
    summary = run_worker(config, worker=0)
    assert summary.done and summary.counts["pruned"] == 4 and summary.best is None
    assert all(t.diverged_step is not None for t in summary.trials)


def test_a_study_resumes_by_name_and_adds_trials() -> None:
    first = run_worker(_config(n_trials=4, sampler="random"), worker=0)
    second = run_worker(_config(n_trials=7, sampler="random"), worker=1)
    assert first.study_name == second.study_name and study_names() == [first.study_name]
    assert [t.number for t in second.trials] == list(range(7)) and second.finished == 7
    assert [t.lr for t in second.trials[:4]] == [t.lr for t in first.trials]
    assert study_config(load_study(first.study_name)).n_trials == 7


def test_a_name_taken_by_another_setup_is_refused() -> None:
    run_worker(_config(n_trials=1, study_name="shared"), worker=0)
    with pytest.raises(ConfigError, match="study_name: a study named 'shared' exists"):
        run_worker(_config(n_trials=1, study_name="shared", epochs=4), worker=0)


@pytest.mark.parametrize(
    ("sampler", "extra"),
    [("random", {}), ("grid", {}), ("qmc", {"search_hyperparams": True}), ("cmaes", {"search_hyperparams": True})],
)
def test_every_sampler_fills_its_study(sampler: str, extra: dict) -> None:
    config = _config(sampler=sampler, n_trials=5, pruner="none", **extra)
    summary = run_worker(config, worker=0)
    assert summary.finished == 5 and summary.counts["complete"] == 5
    searched = set(config.search_space())
    assert all(set(t.params) == searched for t in summary.trials)
    if sampler == "grid":
        assert sorted(t.lr for t in summary.trials) == pytest.approx(config.lr_grid())
    if extra:
        assert {"lr", "optimizer.beta1", "optimizer.beta2", "optimizer.eps", "optimizer.weight_decay"} <= searched


def test_schedule_and_batch_size_are_searched_as_choices() -> None:
    config = _config(search_schedule=True, search_batch_size=True, sampler="random", n_trials=4, pruner="none")
    summary = run_worker(config, worker=0)
    for t in summary.trials:
        run_config = config.trial_config(t.params)
        assert run_config.schedule.name == t.params["schedule"] and run_config.batch_size == t.params["batch_size"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sampler": "cmaes", "search_schedule": True}, "search_schedule: the cmaes sampler takes continuous parameters only"),
        ({"sampler": "cmaes", "search_batch_size": True}, "search_batch_size: the cmaes sampler"),
        ({"sampler": "grid", "search_hyperparams": True}, "search_hyperparams: the grid sampler searches the learning rate only"),
        ({"lr_min": 1.0, "lr_max": 0.1}, "lr_min: must be below lr_max"),
        ({"study_name": "a b"}, "study_name: letters, digits"),
        ({"optimizer": {"name": "lbfgs"}, "batch_size": "full", "search_batch_size": True},
         "search_batch_size: optimizer 'lbfgs' works on full batches only"),
        ({"sampler": "anneal"}, "sampler"),
        ({"n_trials": 0}, "n_trials"),
    ],
)
def test_bad_study_configs_name_the_field(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(**values)


def test_the_config_round_trips_and_its_key_ignores_the_budget() -> None:
    config = _config(search_hyperparams=True, sampler="qmc", pruner="hyperband", metric="val_metric", seed=3)
    assert StudyConfig.from_dict(config.to_dict()) == config
    assert config.model_copy(update={"n_trials": 99}).key() == config.key()
    assert _config(epochs=4).key() != _config().key()
    # Default range: the registry's (1e-5, 0.1) for Adam, widened 3x at each end.
    assert (config.lr_min, config.lr_max) == (3.33e-06, 0.3) and config.name == f"adam-{config.key()}"


def test_the_metric_can_be_maximised() -> None:
    summary = run_worker(_config(metric="val_metric", n_trials=4, sampler="random"), worker=0)
    assert summary.direction == "maximize"
    assert summary.best.value == max(t.value for t in summary.trials if t.state == "complete")


def test_stop_cancels_the_running_trial_and_starts_no_other() -> None:
    ended: list[int] = []
    calls = {"after_first": 0}

    def stop_during_the_second_trial() -> bool:
        if ended:
            calls["after_first"] += 1
        # After the first trial: the worker asks once before the next trial, then at each record.
        return calls["after_first"] > 2

    class Ended(Observer):
        def trial_ended(self, study, trial):
            ended.append(trial.number)

    summary = run_worker(
        _config(n_trials=10, pruner="none"), should_stop=stop_during_the_second_trial, observers=[Ended()], worker=0,
    )
    assert summary.stopped and not summary.done
    assert summary.counts == {"complete": 1, "pruned": 0, "fail": 1, "running": 0, "waiting": 0}
    assert [t.note for t in summary.trials] == [None, "cancelled"] and ended == [0, 1]
    assert summary.trials[1].intermediate == {}  # stopped at its second record, before any report


def test_each_study_is_a_parent_run_with_a_nested_run_per_trial() -> None:
    config = _config(optimizer={"name": "sgd"}, sampler="grid", pruner="none", n_trials=6, lr_min=1e-2, lr_max=1e3)
    logger = StudyLogger()
    summary = run_worker(config, observers=[logger], worker=0)
    assert summary.errors == [] and logger.unwritten == 0
    client = MlflowClient(settings().mlflow_uri)
    parent = client.get_run(logger.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert {k: parent.data.tags[k] for k in ("optimizer", "dlopt.study", "sampler", "pruner", "storage")} == {
        "optimizer": "sgd", "dlopt.study": config.name, "sampler": "grid", "pruner": "none", "storage": "journal",
    }
    assert parent.data.params["lr_max"] == "1000.0" and "best_value" in parent.data.metrics
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100
    )
    by_trial = {int(c.data.tags["trial_number"]): c for c in children}
    assert sorted(by_trial) == [t.number for t in summary.trials]
    expected = {"complete": ("FINISHED", "COMPLETE"), "pruned": ("KILLED", "PRUNED")}
    for t in summary.trials:
        child = by_trial[t.number]
        assert (child.info.status, child.data.tags["trial_state"]) == expected[t.state]
        assert float(child.data.params["optimizer.lr"]) == t.lr
        assert child.data.tags["status"] == ("diverged" if t.diverged_step is not None else "finished")
        history = client.get_metric_history(child.info.run_id, "val_loss")
        if t.diverged_step is None:
            assert [m.step for m in history] == [0, 1, 2, 3]
            assert history[-1].value == pytest.approx(t.value)
    assert any(t.diverged_step is not None for t in summary.trials)


def test_a_resumed_study_nests_its_new_trials_under_the_same_parent() -> None:
    first, second = StudyLogger(), StudyLogger()
    run_worker(_config(n_trials=2, sampler="random"), observers=[first], worker=0)
    run_worker(_config(n_trials=4, sampler="random"), observers=[second], worker=1)
    assert first.parent_run_id == second.parent_run_id
    client = MlflowClient(settings().mlflow_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{first.parent_run_id}'")
    assert len(children) == 4 and client.get_run(first.parent_run_id).info.status == "FINISHED"


def test_two_parents_created_at_once_settle_on_one() -> None:
    # Two workers of a new study each found no parent and created one before seeing the other's.
    loggers = [StudyLogger(), StudyLogger()]
    client = MlflowClient(settings().mlflow_uri)
    exp = loggers[0]._experiment_id()
    created = [client.create_run(exp, tags={"dlopt.role": "study", "dlopt.study": "race"}) for _ in loggers]
    for logger, made in zip(loggers, created):
        logger._created = made.info.run_id
        logger._settle_parent(client, exp, "race")
    assert loggers[0].parent_run_id == loggers[1].parent_run_id == created[0].info.run_id
    retired = client.get_run(created[1].info.run_id)
    assert retired.data.tags["dlopt.role"] == "duplicate" and retired.info.status == "KILLED"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlopt_core", "search", *args], capture_output=True, text=True, timeout=240)


def test_the_cli_prints_the_study_as_json() -> None:
    out = _cli("--dataset", "wine", "--epochs", "3", "--optimizer", "sgd", "--lr-range", "1e-3:1e3",
               "--n-trials", "6", "--sampler", "grid", "--pruner", "none", "--study", "cli-study", "--json", "--no-track")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["study_name"] == "cli-study" and result["storage"] == "journal"
    assert result["finished"] == 6 and result["counts"]["complete"] + result["counts"]["pruned"] == 6
    assert result["lr_range"] == [1e-3, 1e3]
    trials = result["trials"]
    assert sorted(t["number"] for t in trials) == list(range(6))
    assert {"number", "state", "lr", "value", "diverged_step"} <= set(trials[0])
    diverged = [t for t in trials if t["diverged_step"] is not None]
    assert diverged and all(t["state"] == "pruned" and t["value"] is None for t in diverged)
    best = result["best"]
    assert best["value"] == min(t["value"] for t in trials if t["state"] == "complete")
    assert best["lr"] == best["params"]["lr"]


def test_the_cli_table_names_the_best_trial(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["search", "--dataset", "wine", "--epochs", "2", "--optimizer", "adam", "--n-trials", "3", "--no-track"])
    out = capsys.readouterr().out
    assert status == 0 and "3/3 finished" in out and "best: trial" in out


def test_bad_cli_input_exits_with_status_2_and_one_clear_line() -> None:
    # In this process: test_the_cli_prints_the_study_as_json runs `search` as a real command line.
    out = run_main("search", "--optimizer", "adam", "--lr-range", "1:0.1", "--no-track")
    assert out.returncode == 2 and out.stderr.strip() == "error: lr_min: must be below lr_max, got 1 >= 0.1"
    assert out.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--optimizer", "adam", "--lr-range", "fast"), "lr-range: write LOW:HIGH"),
        (("--optimizer", "adam", "--sampler", "cmaes", "--search-schedule"), "search_schedule: the cmaes sampler"),
        (("--optimizer", "nosuch"), "optimizer: unknown name 'nosuch'"),
        (("--optimizer", "adam", "--storage", "nowhere"), "storage: expected postgresql+psycopg://"),
        (("--optimizer", "lbfgs", "--search-batch-size"), "search_batch_size: optimizer 'lbfgs' works on full batches only"),
    ],
)
def test_bad_cli_input_names_the_problem(args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["search", *args, "--no-track"])
    captured = capsys.readouterr()
    assert status == 2 and message in captured.err and captured.out == ""


def test_the_summary_reads_progress_from_the_storage_by_name() -> None:
    config = _config(n_trials=3, sampler="random")
    run_worker(config, worker=0)
    summary = study_summary(config.name)
    assert summary.finished == 3 and summary.n_trials == 3 and summary.optimizer == "adam"
    assert all(t.worker is not None for t in summary.trials)


def test_an_unreachable_storage_is_one_line_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["search", "--optimizer", "adam", "--storage", "postgresql+psycopg://me:secret@127.0.0.1:1/db", "--no-track"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("error: storage: cannot open postgresql+psycopg://me:***@127.0.0.1:1/db")
    assert "secret" not in err and len(err.strip().splitlines()) == 1


def test_the_cli_logs_the_study_through_the_tracking_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dlopt_core.experiments.observer as observer_module

    # What pyproject registers: tracking's observer factory in the dlopt.tracking group.
    mlflow = EntryPoint("mlflow", "tracking.observers:mlflow_observer", "dlopt.tracking")
    monkeypatch.setattr(observer_module, "entry_points", lambda group: [mlflow] if group == mlflow.group else [])
    status = main(["search", "--dataset", "wine", "--epochs", "2", "--optimizer", "adam", "--n-trials", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0 and result["errors"] == []
    client = MlflowClient(settings().mlflow_uri)
    parent = client.get_run(result["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["dlopt.study"] == result["study_name"]
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == [0, 1, 2]
