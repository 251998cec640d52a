"""Every registry entry works: optimizers train, schedules have the right shape, data is sound."""

import math
import re

import numpy as np
import pytest
import torch

from dlopt_core.config import RunConfig
from dlopt_core.catalog.datasets import DATASETS, load_dataset
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.schedules import SCHEDULES, Budget, lr_curve
from dlopt_core.engine.loop import run


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_reduces_the_loss(name: str) -> None:
    spec = OPTIMIZERS[name]
    cfg = RunConfig.make(
        data={"name": "breast_cancer"},
        model={"name": "mlp", "params": {"hidden": "16"}},
        optimizer={"name": name},
        epochs=15,
        batch_size=None if spec.full_batch_only else 32,
    )
    evals = [r for r in run(cfg) if r.is_eval]
    assert evals[-1].status == "finished"
    assert evals[-1].train_loss < evals[0].train_loss / 1.5, (evals[0].train_loss, evals[-1].train_loss)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_has_a_usable_registry_entry(name: str) -> None:
    spec = OPTIMIZERS[name]
    low, high = spec.lr_range
    assert 0 < low < spec.default_lr <= high or low <= spec.default_lr <= high
    assert spec.description and spec.tutorial
    for p in spec.hyperparams:
        assert p.check(p.default, field=p.name) == p.default


BUDGET = Budget(epochs=10, steps_per_epoch=5)


def _curve(name: str, **params: object) -> np.ndarray:
    from dlopt_core.catalog.hyperparams import check_params

    spec = SCHEDULES[name]
    return lr_curve(name, check_params(spec.hyperparams, params, prefix="schedule"), 0.1, BUDGET)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_each_schedule_covers_the_budget_with_positive_rates(name: str) -> None:
    curve = _curve(name)
    assert curve.shape == (BUDGET.total_steps,)
    assert np.all(curve >= 0) and np.all(curve <= 0.1 + 1e-12)


def test_schedule_shapes() -> None:
    assert np.all(_curve("constant") == 0.1)
    step = _curve("step", drops=3, gamma=0.5)  # 50 steps: drops at 12.5 -> 12, 25, 37.5 -> 38
    assert step[11] == 0.1 and step[12] == 0.05 and step[24] == 0.05 and step[25] == 0.025
    assert step[37] == 0.025 and step[38] == 0.0125 and step[-1] == 0.0125
    expo = _curve("exponential", gamma=0.5)
    assert np.all(np.diff(expo) < 0) and math.isclose(expo[5], 0.05)
    cos = _curve("cosine", min_factor=0.1)
    assert cos[0] == 0.1 and np.all(np.diff(cos) <= 0) and cos[-1] > 0.01
    warm = _curve("warmup_cosine", warmup=0.2, min_factor=0.0)
    assert np.all(np.diff(warm[:10]) > 0) and warm.argmax() == 9 and np.all(np.diff(warm[10:]) < 0)
    cycle = _curve("one_cycle", pct_start=0.3, div_factor=25, final_div_factor=1e4)
    peak = cycle.argmax()
    assert math.isclose(cycle[0], 0.1 / 25) and peak == 14 and cycle[-1] < cycle[0]  # as torch's OneCycleLR


def test_plateau_cuts_the_rate_when_validation_stalls() -> None:
    from dlopt_core.catalog.schedules import get_schedule

    factor = get_schedule("plateau").make({"factor": 0.5, "patience": 1, "min_factor": 0.1}, BUDGET)
    for loss in (1.0, 0.9, 0.9, 0.9):
        factor.observe(loss)
    assert factor(100) == 0.5
    for _ in range(20):
        factor.observe(0.9)
    assert factor(100) == 0.1


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_dataset_is_split_without_leakage(name: str) -> None:
    spec = DATASETS[name]
    from dlopt_core.catalog.hyperparams import check_params

    options = check_params(spec.hyperparams, {}, prefix="dataset")
    data = load_dataset(name, options, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))
    n_train, n_val = len(data.x_train), len(data.x_val)
    assert data.x_train.shape[1] == data.x_val.shape[1] == data.n_features
    assert len(data.y_train) == n_train and len(data.y_val) == n_val
    assert abs(n_val / (n_train + n_val) - 0.2) < 0.01
    train_rows = {tuple(r) for r in data.x_train.numpy().round(6)}
    assert not any(tuple(r) in train_rows for r in data.x_val.numpy().round(6))
    if spec.standardize and spec.image_shape:
        # Images: one mean and spread per channel (train statistics), so an image stays an image.
        per_channel = data.x_train.reshape(n_train, spec.image_shape[0], -1)
        assert torch.allclose(per_channel.mean(dim=(0, 2)), torch.zeros(spec.image_shape[0]), atol=1e-4)
        assert torch.allclose(per_channel.std(dim=(0, 2)), torch.ones(spec.image_shape[0]), atol=1e-3)
        assert not torch.allclose(data.x_val.mean(), torch.zeros(()), atol=1e-6)
    elif spec.standardize:
        assert torch.allclose(data.x_train.mean(0), torch.zeros(data.n_features), atol=1e-4)
        assert not torch.allclose(data.x_val.mean(0), torch.zeros(data.n_features), atol=1e-6)
    if spec.task == "classification":
        assert data.y_train.dtype == torch.long and data.n_classes >= 2
        assert set(data.y_val.tolist()) <= set(range(data.n_classes))
    else:
        assert data.y_train.dtype == torch.float32 and data.n_outputs == 1
    if spec.image_shape:
        assert math.prod(spec.image_shape) == data.n_features


def test_ill_conditioned_data_has_the_chosen_condition_number() -> None:
    data = load_dataset(
        "ill_conditioned", {"n_samples": 2000, "n_features": 8, "condition_number": 1000.0, "noise": 0.0, "seed": 0},
        val_fraction=0.2, split_seed=0, device=torch.device("cpu"),
    )
    x = data.x_train.double()
    cond = torch.linalg.cond(x.T @ x).item()
    assert 500 < cond < 2000  # the train split keeps it near the requested 1000


def test_convex_optimum_is_below_what_training_reaches() -> None:
    from dlopt_core.catalog.models import convex_optimum

    cfg = RunConfig.make(data={"name": "linear"}, model={"name": "linear"}, optimizer={"name": "sgd", "lr": 0.3},
                         epochs=60, batch_size=None)
    evals = [r for r in run(cfg) if r.is_eval]
    from dlopt_core.engine.loop import load_run_data

    optimum = convex_optimum(load_run_data(cfg))
    assert optimum <= evals[-1].train_loss + 1e-6
    assert evals[-1].train_loss < optimum * 1.05  # full-batch GD converges on least squares


def _balanced(latex: str) -> bool:
    """Braces (not the escaped ``\\{ \\}``) and ``\\left``/``\\right`` pairs close in order."""
    depth = 0
    for i, ch in enumerate(latex):
        if ch in "{}" and i and latex[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    # \left( opens a pair, \leftarrow does not
    return depth == 0 and len(re.findall(r"\\left(?![a-z])", latex)) == len(re.findall(r"\\right(?![a-z])", latex))


_EXPLAINED = [
    *((f"optimizer {n}", s.update_rule, s.shines) for n, s in OPTIMIZERS.items()),
    *((f"schedule {n}", s.formula, s.shines) for n, s in SCHEDULES.items()),
]


@pytest.mark.parametrize(("entry", "lines", "shines"), _EXPLAINED, ids=[e[0] for e in _EXPLAINED])
def test_each_optimizer_and_schedule_explains_itself_in_latex_that_parses(
    entry: str, lines: tuple[str, ...], shines: str
) -> None:
    # matplotlib (installed with mlflow) has a LaTeX subset parser: a line it reads uses only
    # common commands, which KaTeX in the browser reads too.
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    assert lines and shines.strip() and "\n" not in shines
    for line in lines:
        assert line.strip() and _balanced(line), line
        # The page stacks the lines itself: a line holds one equation, no $, & or \\ breaks.
        assert not any(mark in line for mark in ("$", "&", "\\\\")), line
        parser.parse(f"${line}$")


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_dataset_says_what_it_shows(name: str) -> None:
    shows = DATASETS[name].shows
    assert shows.strip() and "\n" not in shows and shows != DATASETS[name].description


def test_the_latex_check_catches_unbalanced_and_unknown_commands() -> None:
    from matplotlib.mathtext import MathTextParser

    assert _balanced(r"\left(\frac{a}{b}\right) \{x\}")
    assert _balanced(r"x \leftarrow y \rightarrow z")
    assert not _balanced(r"\frac{a}{b") and not _balanced(r"a}{") and not _balanced(r"\left( a")
    with pytest.raises(ValueError):
        MathTextParser("path").parse(r"$\notacommand{x}$")
