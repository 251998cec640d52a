"""The transfer lab's core (issue 20): parameter groups in the engine, the arms, the mirror and its figures."""

from __future__ import annotations

import pytest
import torch

from dlopt_core.catalog.models import build_model
from dlopt_core.catalog.optimizers import ParamGroup, get_optimizer
from dlopt_core.config import ModelConfig, OptimizerConfig
from dlopt_core.engine.loop import run
from dlopt_core.engine.records import Status
from dlopt_core.engine.step import build_step
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.observer import Observer
from dlopt_core.experiments.transfer import Transfer, TransferConfig, load_config_task, pretrain_source, size_sweep
from dlopt_core.plots.transfer import (
    accuracy_curves_data,
    accuracy_curves_figure,
    forgetting_data,
    forgetting_figure,
    layer_change_data,
    layer_change_figure,
    layer_lr_data,
    layer_lr_figure,
    size_curve_data,
    size_curve_figure,
    trainable_params_data,
    trainable_params_figure,
)
from dlopt_core.transfer.arms import ARMS, get_arm
from dlopt_core.transfer.lora import LoRALinear
from dlopt_core.transfer.tasks import TASKS

CPU = torch.device("cpu")


def _config(**values) -> TransferConfig:
    base = dict(
        task="digits-split", model=ModelConfig.make(name="mlp", params={"hidden": (16, 16)}), epochs=3,
        seeds=(0,), source_epochs=2, target_fraction=0.3,
    )
    return TransferConfig.make(**{**base, **values})


def _prepared(arm: str, config: TransferConfig, seed: int = 0):
    task = load_config_task(config, config.target_fraction, CPU)
    model = build_model(config.model, task.target, seed)
    return get_arm(arm).prepare(model, pretrain_source(config), config.settings(seed)), task


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", TASKS)
def test_every_task_has_source_target_and_a_shifted_test_drawn_by_the_split_seed(name: str) -> None:
    config = TransferConfig.make(task=name)
    small, full = (load_config_task(config, f, CPU) for f in (0.1, 1.0))
    assert len(full.target.x_train) == full.target_pool and len(small.target.x_train) == round(0.1 * full.target_pool)
    assert small.source.n_classes == small.target.n_classes and len(small.x_shifted) == len(small.target.x_val)
    assert not torch.equal(small.x_shifted, small.target.x_val)  # shifted further than the target
    again = load_config_task(config.model_copy(update={"seeds": (5, 6)}), 0.1, CPU)
    assert torch.equal(again.target.x_train, small.target.x_train)  # the split seed's draw, not a run's


def test_a_linear_probe_leaves_every_backbone_weight_bit_identical_and_gives_frozen_tensors_no_adam_state() -> None:
    config = _config()
    prepared, task = _prepared("probe", config)
    before = _params(prepared.model)
    records = list(run(config.run_config(0), data=task.target, model=prepared.model, groups=prepared.groups))
    assert records[-1].status is Status.FINISHED
    after = _params(prepared.model)
    head = prepared.head
    for name in before:
        same = torch.equal(before[name], after[name])
        assert same != name.startswith(f"{head}."), name
    # The optimizer the loop builds: the frozen tensors are not in it and have no state after a step.
    model = prepared.model
    opt = get_optimizer("adam").build(list(model.named_parameters()), 1e-2, {**OptimizerConfig.make(name="adam").params}, CPU,
                                      groups=prepared.groups)
    step = build_step(model, opt, torch.nn.functional.cross_entropy)
    step(task.target.x_train, task.target.y_train)
    frozen = [p for n, p in model.named_parameters() if not n.startswith(f"{head}.")]
    assert opt.state and all(p not in opt.state for p in frozen)
    assert all(p in opt.state for n, p in model.named_parameters() if n.startswith(f"{head}."))


def test_a_group_frozen_until_later_is_in_the_optimizer_but_gets_no_state_while_frozen() -> None:
    config = _config()
    prepared, task = _prepared("gradual", config)
    model, groups = prepared.model, prepared.groups
    opt = get_optimizer("adam").build(list(model.named_parameters()), 1e-2, dict(OptimizerConfig.make(name="adam").params),
                                      CPU, groups=groups)
    params = dict(model.named_parameters())
    for g in groups:  # epoch 0, as the loop sets it
        for n in g.params:
            params[n].requires_grad_(g.trainable_at(0))
    build_step(model, opt, torch.nn.functional.cross_entropy)(task.target.x_train, task.target.y_train)
    for g in groups:
        assert all((params[n] in opt.state) == (g.trainable_from == 0) for n in g.params), g.name


def test_lora_trains_r_times_in_plus_out_per_adapted_layer_plus_the_head_and_never_moves_the_frozen_weights() -> None:
    rank = 3
    config = _config(lora_rank=rank)
    prepared, task = _prepared("lora", config)
    model = prepared.model
    adapted = [m for m in model.modules() if isinstance(m, LoRALinear)]
    head = model.get_submodule(prepared.head)
    assert len(adapted) == 2 and isinstance(head, torch.nn.Linear)
    expected = sum(rank * (m.base.in_features + m.base.out_features) for m in adapted) + sum(p.numel() for p in head.parameters())
    assert prepared.trainable_params == expected
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if ".base." in n}
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_b" in n}
    records = list(run(config.run_config(0), data=task.target, model=model, groups=prepared.groups))
    assert records[-1].status is Status.FINISHED
    now = dict(model.named_parameters())
    assert all(torch.equal(frozen[n], now[n]) for n in frozen)
    assert all(not torch.equal(adapters[n], now[n]) for n in adapters)


def test_layer_decay_gives_each_layer_the_rule_s_lr_and_the_schedule_keeps_it() -> None:
    config = _config(model=ModelConfig.make(name="mlp", params={"hidden": (8, 8, 8)}), layer_decay=0.3)
    prepared, _ = _prepared("layer-decay", config)
    lr = 0.02
    opt = get_optimizer("adamw").build(list(prepared.model.named_parameters()), lr,
                                       dict(OptimizerConfig.make(name="adamw").params), CPU, groups=prepared.groups)
    layers = list(prepared.layers)  # '0', '2', '4', '6' (head)
    top = len(layers) - 1
    expected = {layer: lr * 0.3 ** (top - i) for i, layer in enumerate(layers)}  # timm: head lr, below it decay**depth
    assert expected[layers[-1]] == lr and expected[layers[0]] == pytest.approx(lr * 0.027)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for layer, names in prepared.layers.items():
        params = dict(prepared.model.named_parameters())
        assert all(lr_of[id(params[n])] == pytest.approx(expected[layer], rel=1e-12) for n in names), layer
    for g in opt.param_groups:  # what the loop's schedule does each step
        g["lr"] = g["initial_lr"] * 0.5
    assert sorted({round(g["lr"] / lr, 9) for g in opt.param_groups}) == sorted(round(0.5 * 0.3 ** k, 9) for k in range(4))
    assert prepared.layer_lr(lr, 0) == pytest.approx(expected)


class _Records(Observer):
    def __init__(self) -> None:
        self.records = []

    def record(self, run, rec) -> None:
        self.records.append(rec)


def test_from_scratch_with_the_same_seed_equals_an_ordinary_loop_run_bit_for_bit() -> None:
    config = _config(arms=("scratch",), seeds=(4,))
    seen = _Records()
    Transfer(config).execute(observers=[seen])
    task = load_config_task(config, config.target_fraction, CPU)
    plain = list(run(config.run_config(4), data=task.target))
    assert len(seen.records) == len(plain)
    for a, b in zip(seen.records, plain):
        assert a._replace(wall_time=0.0, state=None) == b._replace(wall_time=0.0, state=None)
    assert plain[-1].state is not None and seen.records[-1].state.keys() == plain[-1].state.keys()
    assert all((seen.records[-1].state[k] == plain[-1].state[k]).all() for k in plain[-1].state)


def test_a_layer_gradual_unfreezing_reaches_only_after_the_budget_is_not_counted_as_trained() -> None:
    t = Transfer(_config(arms=("gradual", "probe"), seeds=(0,), epochs=2, unfreeze_every=5)).execute()
    gradual, probe = t.runs
    # Two epochs, a layer every five: only the head trains, as in the probe.
    assert gradual.trainable_params == probe.trainable_params
    assert all(lr == 0.0 for layer in gradual.layers[:-1] for lr in gradual.layer_lr[layer])


def test_gradual_unfreezing_unfreezes_one_layer_from_the_top_on_schedule_and_lp_ft_at_half_time() -> None:
    config = _config(arms=("gradual", "lp-ft"), epochs=4, unfreeze_every=1)
    t = Transfer(config).execute()
    gradual, lp_ft = t.runs
    lr = config.optimizer.lr
    # Layers bottom first ('0', '2', head '4'): the head from epoch 1, '2' from 2, '0' from 3.
    assert gradual.layer_lr == {"0": [0.0, 0.0, lr, lr], "2": [0.0, lr, lr, lr], "4": [lr, lr, lr, lr]}
    assert gradual.layer_change["0"][:2] == [0.0, 0.0] and gradual.layer_change["0"][2] > 0
    assert gradual.layer_change["2"][0] == 0.0 and gradual.layer_change["2"][1] > 0
    assert lp_ft.layer_lr["0"] == [0.0, 0.0, lr, lr] and lp_ft.layer_lr["4"] == [lr] * 4


def test_the_mirror_holds_every_measure_and_the_figures_draw_it() -> None:
    config = _config(arms=tuple(ARMS), seeds=(0, 1), epochs=2)
    t = Transfer(config).execute()
    assert t.status is Status.FINISHED and t.source_accuracy is not None and t.source_accuracy > 0.5
    for r in t.runs:
        assert r.status is Status.FINISHED and len(r.target_accuracies) == len(r.shifted_accuracy) == 3
        # Scratch never saw the source: it has no kept source accuracy, nor a place on the Pareto chart.
        assert (r.source_accuracy is None) == (r.arm == "scratch") and r.trainable_params > 0
        assert set(r.layer_change) == set(r.layers) and all(len(v) == 2 for v in r.layer_lr.values())
    probe = next(r for r in t.runs if r.arm == "probe")
    assert probe.source_accuracy == pytest.approx(t.source_accuracy)  # a frozen backbone forgets nothing
    curves = accuracy_curves_data(t)
    assert [b.arm for b in curves.target] == list(ARMS) and curves.target[0].seeds == [2, 2, 2]
    assert len(accuracy_curves_figure(curves).data) == 4 * len(ARMS)
    params = trainable_params_data(t)
    assert params.params[params.arms.index("probe")] < params.params[params.arms.index("full")]
    assert trainable_params_figure(params).layout.yaxis.type == "log"
    forgetting = forgetting_data(t)
    assert {p.arm for p in forgetting.points} == set(ARMS) - {"scratch"} and any(p.on_front for p in forgetting.points)
    assert len(forgetting_figure(forgetting).data) == len(ARMS)  # the front and every arm but scratch
    change = layer_change_data(t, "probe")
    assert change.layers[-1].startswith("head (") and change.z[0] == [0.0, 0.0] and change.z[-1][-1] > 0
    assert layer_change_figure(change).data[0].type == "heatmap"
    lrs = layer_lr_data(t, "layer-decay")
    assert lrs.z[-1][0] == config.optimizer.lr and lrs.z[0][0] == pytest.approx(config.optimizer.lr * 0.25)
    assert "learning rate" in layer_lr_figure(lrs).layout.title.text


def test_a_diverged_run_is_left_out_of_the_bands_and_named() -> None:
    config = _config(arms=("full",), seeds=(0, 1), optimizer=OptimizerConfig.make(name="sgd", lr=1e6))
    # Given source weights (this lr would diverge pretraining too).
    t = Transfer(config, source_state=pretrain_source(_config())).execute()
    assert {r.status for r in t.runs} == {Status.DIVERGED}
    data = accuracy_curves_data(t)
    assert data.diverged == ["full seed=0", "full seed=1"] and data.target[0].x == []
    assert forgetting_data(t).left_out == ["full"]


def test_a_size_sweep_trains_scratch_and_one_arm_at_every_fraction() -> None:
    config = size_sweep(_config(epochs=1, arms=("probe",)), arm="probe", sizes=(0.1, 0.5))
    assert config.arms == ("scratch", "probe") and config.fractions() == (0.1, 0.5)
    t = Transfer(config).execute()
    assert [(r.arm, r.fraction) for r in t.runs] == [("scratch", 0.1), ("probe", 0.1), ("scratch", 0.5), ("probe", 0.5)]
    data = size_curve_data(t)
    assert [line.fractions for line in data.lines] == [[0.1, 0.5], [0.1, 0.5]] and data.best_transfer == "probe"
    assert size_curve_figure(data).layout.xaxis.type == "log"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"arms": "probe,finetune"}, "arm"),
        ({"task": "cifar"}, "task"),
        ({"data": {"name": "wine"}}, "dataset"),
        ({"target_fraction": 0.001}, "target_fraction"),
        ({"reduce": {"name": "subsample"}}, "reduce"),
        ({"model": {"name": "linear"}}, "no hidden layer"),
        ({"arms": "lp-ft", "epochs": 1}, "at least 2"),
        ({"arms": "probe,layer-decay", "optimizer": {"name": "lbfgs"}}, "one per layer"),
    ],
)
def test_a_bad_config_names_its_field(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TransferConfig.make(**values)


def test_the_config_travels_as_flat_keys_and_its_data_follows_the_task() -> None:
    config = TransferConfig.make(task="moons-rotated", arms="probe,lora", sizes="0.5,0.1", lora_rank=2)
    assert config.data.name == "moons" and config.arms == ("probe", "lora") and config.sizes == (0.1, 0.5)
    assert TransferConfig.from_dict(config.to_dict()) == config
    assert config.key() != TransferConfig.make(task="moons-rotated").key()
    assert ParamGroup("x", ("w",), trainable_from=None).trainable_at(10) is False
