"""Every range a registry entry declares is accepted by what it builds, at both ends.

Optimizers take two steps at each end of each hyperparameter (the others at defaults) and at
both ends of the lr range; schedules lay out finite, non-negative factors over budgets that
fit; data sets generate finite data. Exclusive ends are tried just inside.
"""

import math

import pytest
import torch
from optimizer_steps import take_steps, toy_model

from dlopt_core.catalog.datasets import DATASETS, check_options, load_dataset
from dlopt_core.catalog.functions import FUNCTIONS
from dlopt_core.catalog.hyperparams import HyperParam, Value, check_params
from dlopt_core.catalog.optimizers import OPTIMIZERS, OptimizerSpec
from dlopt_core.catalog.schedules import SCHEDULES, Budget


def ends(p: HyperParam) -> list[Value]:
    """The two ends of ``p``'s range (just inside where an end is exclusive)."""
    if p.kind == "bool":
        return [False, True]
    if p.kind == "choice":
        return list(p.choices)
    if p.kind in ("int", "ints"):
        low = int(p.low) if p.low_inclusive else int(p.low) + 1
        high = int(p.high) if p.high_inclusive else int(p.high) - 1
        return [low, high] if p.kind == "int" else [(low,), (high,)]
    low = p.low if p.low_inclusive else math.nextafter(p.low, math.inf)
    high = p.high if p.high_inclusive else math.nextafter(p.high, -math.inf)
    return [low, high]


def end_cases(specs: dict[str, object]) -> list[tuple[str, str, Value]]:
    return [(name, p.name, v) for name, s in specs.items() for p in s.hyperparams for v in ends(p)]


def _ids(cases: list[tuple]) -> list[str]:
    return [f"{c[0]}:{c[1]}={c[2]!r}" for c in cases]


def _two_steps(spec: OptimizerSpec, lr: float, hp: dict[str, Value]) -> None:
    model = toy_model()
    opt = spec.build(list(model.named_parameters()), lr, hp, torch.device("cpu"))
    take_steps(spec, opt, model, steps=2)
    if spec.train_eval_modes:
        opt.eval()  # what evaluation after an epoch does
    assert all(torch.isfinite(p).all() for p in model.parameters())


OPTIMIZER_CASES = end_cases(OPTIMIZERS)


@pytest.mark.parametrize(("name", "key", "value"), OPTIMIZER_CASES, ids=_ids(OPTIMIZER_CASES))
def test_each_optimizer_steps_at_each_end_of_each_hyperparameter(name: str, key: str, value: Value) -> None:
    spec = OPTIMIZERS[name]
    hp = check_params(spec.hyperparams, {key: value}, prefix="optimizer")
    if spec.check and (problem := spec.check(hp)):
        # A combination rule (Nesterov needs momentum) refuses it by name, before torch does.
        assert problem.startswith("optimizer."), problem
        return
    _two_steps(spec, spec.default_lr, hp)


LR_CASES = [(name, "lr", lr) for name, s in OPTIMIZERS.items() for lr in s.lr_range]


@pytest.mark.parametrize(("name", "key", "lr"), LR_CASES, ids=_ids(LR_CASES))
def test_each_optimizer_steps_at_both_ends_of_its_lr_range(name: str, key: str, lr: float) -> None:
    spec = OPTIMIZERS[name]
    _two_steps(spec, lr, check_params(spec.hyperparams, {}, prefix="optimizer"))


SCHEDULE_CASES = end_cases(SCHEDULES)


@pytest.mark.parametrize(("name", "key", "value"), SCHEDULE_CASES, ids=_ids(SCHEDULE_CASES))
def test_each_schedule_gives_finite_non_negative_factors_at_each_end(name: str, key: str, value: Value) -> None:
    spec = SCHEDULES[name]
    params = check_params(spec.hyperparams, {key: value}, prefix="schedule")
    # Lengths are shares of the budget, so the shortest budgets must work too.
    for budget in (Budget(1, 1), Budget(1, 3), Budget(2, 1), Budget(10, 5)):
        factor = spec.make(params, budget)
        for step in range(budget.total_steps):
            if step % budget.steps_per_epoch == 0:
                factor.observe(1.0)  # validation-driven schedules see a stalled loss
            f = factor(step)
            assert math.isfinite(f) and f >= 0, (budget, step, f)


DATASET_CASES = end_cases(DATASETS)


@pytest.mark.parametrize(("name", "key", "value"), DATASET_CASES, ids=_ids(DATASET_CASES))
def test_each_dataset_generates_finite_data_at_each_end(name: str, key: str, value: Value) -> None:
    options = check_options(name, {key: value})
    data = load_dataset(name, options, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))
    for t in (data.x_train, data.y_train, data.x_val, data.y_val):
        assert torch.isfinite(t.float()).all()


def test_ill_conditioned_data_with_more_features_than_samples_is_refused_by_name() -> None:
    options = {"n_samples": 20, "n_features": 30}
    with pytest.raises(ValueError, match=r"dataset\.n_features: 30 is more than n_samples \(20\)"):
        load_dataset("ill_conditioned", options, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))


REGISTRIES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "dataset": DATASETS, "function": FUNCTIONS}
OUTSIDE = [
    (kind, name, p.name, outside)
    for kind, registry in REGISTRIES.items()
    for name, spec in registry.items()
    for p in spec.hyperparams
    if p.kind in ("float", "int")
    for outside in (
        p.low if not p.low_inclusive else math.nextafter(p.low, -math.inf) if p.kind == "float" else p.low - 1,
        p.high if not p.high_inclusive else math.nextafter(p.high, math.inf) if p.kind == "float" else p.high + 1,
    )
]


@pytest.mark.parametrize(("kind", "name", "key", "value"), OUTSIDE, ids=[f"{c[1]}:{c[2]}={c[3]!r}" for c in OUTSIDE])
def test_a_value_just_outside_a_range_is_refused_with_field_value_and_range(
    kind: str, name: str, key: str, value: float
) -> None:
    spec = REGISTRIES[kind][name]
    param = next(p for p in spec.hyperparams if p.name == key)
    with pytest.raises(ValueError) as err:
        check_params(spec.hyperparams, {key: value}, prefix=kind)
    assert str(err.value) == f"{kind}.{key}: {value!r} is outside the allowed range {param.range_text}"
