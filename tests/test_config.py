"""Configs validate with messages that name the field, and round-trip through flat dicts."""

import numpy as np
import pytest

from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import MAX_EPOCHS, ComparisonConfig, OptimizerConfig, RunConfig
from dlopt_core.errors import ConfigError


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optimizer": {"name": "nope"}}, "optimizer: unknown name 'nope'"),
        ({"data": {"name": "imagenet"}}, "dataset: unknown name 'imagenet'"),
        ({"optimizer": {"name": "sgd", "lr": -1}}, "optimizer.lr"),
        ({"optimizer": {"name": "sgd", "lr": 0}}, "optimizer.lr"),
        ({"optimizer": {"name": "sgd", "lr": float("inf")}}, "optimizer.lr"),
        ({"optimizer": {"name": "adam", "params": {"beta1": 1.5}}}, "optimizer.beta1: 1.5 is outside"),
        ({"optimizer": {"name": "adam", "params": {"momentum": 0.9}}}, "optimizer.momentum: unknown"),
        ({"optimizer": {"name": "sgd", "params": {"nesterov": True}}}, "optimizer.nesterov: needs momentum"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 10**7}, "epochs"),
        ({"schedule": {"name": "step", "params": {"step_epochs": 2}}}, "schedule.step_epochs: no longer a setting; use drops"),
        ({"schedule": {"name": "step", "params": {"drops": 0}}}, "schedule.drops"),
        ({"schedule": {"name": "warmup_cosine", "params": {"warmup": 1}}}, "schedule.warmup"),
        ({"optimizer": {"name": "lbfgs"}, "batch_size": 32}, "full batches only"),
        ({"model": {"name": "cnn"}, "data": {"name": "wine"}}, "needs image data"),
        ({"model": {"name": "mlp", "params": {"hidden": "64/x"}}}, "model.hidden"),
    ],
)
def test_bad_values_name_the_field(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        RunConfig.make(**values)
    assert message in str(err.value)


def test_run_config_round_trips_through_mlflow_style_strings() -> None:
    cfg = RunConfig.make(
        data={"name": "moons", "options": {"noise": 0.3}},
        model={"name": "mlp", "params": {"hidden": "32/16", "activation": "tanh"}},
        optimizer={"name": "adam", "lr": 0.003, "params": {"beta1": 0.8}},
        schedule={"name": "cosine", "params": {"min_factor": 0.1}},
        epochs=7, batch_size="full", seed=3,
    )
    flat = {k: str(v) for k, v in cfg.to_dict().items()}
    assert RunConfig.from_dict(flat) == cfg
    assert flat["optimizer.beta1"] == "0.8" and flat["batch_size"] == "full"


def test_optimizer_spec_text_round_trips_and_fills_defaults() -> None:
    opt = OptimizerConfig.parse("sgd:lr=0.1,momentum=0.9")
    assert opt.params["momentum"] == 0.9 and opt.params["nesterov"] is False
    assert OptimizerConfig.parse(opt.to_spec()) == opt
    assert OptimizerConfig.parse("adam").lr == 0.001
    with pytest.raises(ConfigError, match="key=value"):
        OptimizerConfig.parse("sgd:lr")


def test_comparison_expands_runs_and_gives_full_batch_only_optimizers_the_full_batch() -> None:
    cmp = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd"), OptimizerConfig.parse("lbfgs")), seeds="0,1", batch_size=32
    )
    runs = cmp.runs()
    assert [(r.optimizer.name, r.seed, r.batch_size) for r in runs] == [
        ("sgd", 0, 32), ("sgd", 1, 32), ("lbfgs", 0, None), ("lbfgs", 1, None)
    ]
    assert ComparisonConfig.from_dict(cmp.to_dict()) == cmp
    assert cmp.key() == ComparisonConfig.from_dict(cmp.to_dict()).key()
    with pytest.raises(ConfigError, match="seeds"):
        ComparisonConfig.make(optimizers=(OptimizerConfig.parse("sgd"),), seeds="0,0")
    with pytest.raises(ConfigError, match="'SGD lr=0.1' appears twice"):
        ComparisonConfig.make(optimizers=(OptimizerConfig.parse("sgd:lr=0.1"), OptimizerConfig.parse("sgd:lr=0.1")))


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("epochs", [1, 2, 3, 10, MAX_EPOCHS])
def test_every_schedule_default_fits_every_budget(schedule: str, epochs: int) -> None:
    cfg = RunConfig.make(schedule={"name": schedule}, epochs=epochs)
    assert cfg.schedule.name == schedule


def test_step_decay_defaults_drop_within_a_one_epoch_budget() -> None:
    from dlopt_core.catalog.schedules import Budget, lr_curve

    cfg = RunConfig.make(schedule={"name": "step"}, epochs=1)
    curve = lr_curve("step", cfg.schedule.params, 0.1, Budget(1, 40))
    assert curve[0] == 0.1 and np.isclose(curve[-1], 0.1 * 0.1**3)


def test_a_plateau_that_cannot_act_gets_a_note_not_an_error() -> None:
    short = RunConfig.make(schedule={"name": "plateau", "params": {"patience": 2}}, epochs=4)
    assert "cannot drop" in short.schedule_note
    assert RunConfig.make(schedule={"name": "plateau", "params": {"patience": 2}}, epochs=5).schedule_note is None
    assert RunConfig.make(schedule={"name": "cosine"}, epochs=1).schedule_note is None
