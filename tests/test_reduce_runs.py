"""A reduced training set in a run: its config, its size in the loop, and its errors."""

from __future__ import annotations

import math

import pytest

from dlopt_core.config import ComparisonConfig, RunConfig
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import load_run_data, reduced_split, run
from dlopt_core.experiments.compare import Comparison


def test_a_reduced_run_steps_through_the_reduced_set_only() -> None:
    config = RunConfig.make(epochs=2, batch_size=32, reduce={"name": "subsample", "params": {"fraction": 0.1}})
    data = load_run_data(config)
    full = load_run_data(RunConfig.make())
    assert len(data.x_train) == reduced_split(config).n_train == round(0.1 * len(full.x_train))
    assert len(data.x_val) == len(full.x_val)  # the validation set stays the yardstick
    records = list(run(config))
    assert records[-1].step == 2 * math.ceil(len(data.x_train) / 32)
    comparison = Comparison(ComparisonConfig.make(
        optimizers=[{"name": "adam"}], epochs=2, batch_size=32, reduce={"name": "subsample", "params": {"fraction": 0.1}},
    ))
    assert comparison.runs[0].total_steps == records[-1].step


def test_pca_changes_the_features_and_leaves_no_image() -> None:
    data = load_run_data(RunConfig.make(reduce={"name": "pca", "params": {"components": 8}}))
    assert data.n_features == 8 and data.image_shape is None


def test_the_reduction_is_in_the_flat_form() -> None:
    config = RunConfig.make(reduce={"name": "kmeans", "params": {"fraction": 0.2}})
    flat = config.to_dict()
    assert flat["reduce"] == "kmeans" and flat["reduce.fraction"] == "0.2"
    assert RunConfig.from_dict(flat) == config
    assert "reduce" not in RunConfig.make().to_dict()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"data": {"name": "linear"}, "reduce": {"name": "balanced"}}, "needs class labels"),
        ({"model": {"name": "cnn"}, "reduce": {"name": "pca"}}, "'pca' turns images"),
        ({"reduce": {"name": "subsample", "params": {"fraction": 0}}}, "reduce.fraction"),
        ({"reduce": {"name": "zip"}}, "unknown name"),
    ],
)
def test_bad_reductions_name_the_problem(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.make(**values)
