"""Models are registry entries: declared hyperparameters, validated, one flat form everywhere."""

import pytest
import torch

from dlopt_core.catalog.datasets import load_dataset
from dlopt_core.catalog.models import MODELS, build_model
from dlopt_core.config import ComparisonConfig, ModelConfig, OptimizerConfig, RunConfig
from dlopt_core.errors import ConfigError


def test_the_cli_form_reads_and_writes_back() -> None:
    model = ModelConfig.parse("mlp:hidden=128/64,activation=tanh,dropout=0.1")
    assert model.params == {"hidden": (128, 64), "activation": "tanh", "dropout": 0.1}
    assert model.to_spec() == "mlp:hidden=128/64,activation=tanh,dropout=0.1"
    assert ModelConfig.parse(model.to_spec()) == model
    assert ModelConfig.parse("mlp") == ModelConfig.make(name="mlp")
    assert ModelConfig.parse("cnn:channels=8/16").params == {"channels": (8, 16), "activation": "relu"}


def test_a_model_round_trips_through_mlflow_strings_and_the_url() -> None:
    run_cfg = RunConfig.make(
        model=ModelConfig.parse("mlp:hidden=32/16,activation=gelu,dropout=0.25"), optimizer={"name": "adam"}
    )
    flat = run_cfg.to_dict()
    assert {k: v for k, v in flat.items() if k.startswith("model")} == {
        "model": "mlp", "model.hidden": "32/16", "model.activation": "gelu", "model.dropout": "0.25",
    }
    assert RunConfig.from_dict({k: str(v) for k, v in flat.items()}) == run_cfg
    cmp = ComparisonConfig.make(
        model={"name": "cnn", "params": {"channels": "4/8/16"}}, optimizers=(OptimizerConfig.make(name="sgd"),)
    )
    query = {k: v if isinstance(v, list) else str(v) for k, v in cmp.to_dict().items()}
    assert ComparisonConfig.from_dict(query) == cmp


def test_only_the_parameters_that_apply_are_logged() -> None:
    flat = RunConfig.make(model={"name": "linear"}, optimizer={"name": "sgd"}).to_dict()
    assert [k for k in flat if k.startswith("model")] == ["model"]
    assert "grad_clip" not in flat


def test_the_cli_takes_a_model_spec() -> None:
    from dlopt_core.cli import build_parser
    from dlopt_core.cli.compare import build_config

    args = build_parser().parse_args(
        ["compare", "--model", "mlp:hidden=16/8,activation=tanh", "--optimizer", "adam", "--precision", "bf16"]
    )
    cfg = build_config(args)
    assert cfg.model.params["hidden"] == (16, 8) and cfg.model.params["activation"] == "tanh"
    assert cfg.precision == "bf16"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mlp:hidden=0", "model.hidden: expected 1 to 8 integers in [1, 4096]"),
        ("mlp:hidden=64/x", "model.hidden: expected integers like 64"),
        ("mlp:activation=swish", "model.activation: unknown 'swish' (allowed: relu, tanh, gelu, sigmoid)"),
        ("mlp:dropout=1", "model.dropout: '1' is outside the allowed range [0, 1)"),
        ("linear:hidden=8", "model.hidden: unknown hyperparameter (allowed: none)"),
        ("transformer", "model: unknown name 'transformer'"),
    ],
)
def test_bad_model_values_name_the_field_and_what_is_allowed(spec: str, message: str) -> None:
    with pytest.raises((ConfigError, ValueError)) as err:
        ModelConfig.parse(spec)
    assert message in str(err.value)


def _edges(p):
    if p.kind == "choice":
        return list(p.choices)
    if p.kind == "ints":
        return [(int(p.low),), tuple([int(min(p.high, 512))] * 2), tuple([int(p.low)] * p.max_items)]
    low = p.low if p.low_inclusive else p.low + 1e-6
    high = p.high if p.high_inclusive else p.high - 1e-6
    return [low, high]


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_builds_and_trains_at_the_ends_of_its_ranges(name: str) -> None:
    spec = MODELS[name]
    data = load_dataset("digits", {}, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))
    for p in spec.hyperparams or [None]:
        for value in _edges(p) if p else [None]:
            params = {} if p is None else {p.name: value}
            cfg = ModelConfig.make(name=name, params=params)
            model = build_model(cfg, data, seed=0)
            out = model(data.x_train[:16])
            assert out.shape == (16, 10) and torch.isfinite(out).all(), (name, params)
            out.sum().backward()
