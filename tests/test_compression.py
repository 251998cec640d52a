"""Model compression (issue 9): each method does what it says, measured; bad input is refused before anything trains."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from dlopt_core.compression.methods import COMPRESSIONS
from dlopt_core.catalog.models import build_model
from dlopt_core.compression.distillation import distillation_hooks
from dlopt_core.compression.measure import measure_sizes, tensor_bytes
from dlopt_core.compression.pruning import hidden_widths, make_permanent, prune_structured, prune_unstructured, weight_layers
from dlopt_core.compression.quantization import cast_weights, quantize_int8
from dlopt_core.config import ModelConfig, RunConfig
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import load_run_data, run
from dlopt_core.catalog.models import loss_fn
from dlopt_core.experiments.compress.baseline import check_methods, layer_sensitivity, sparsity_curve
from dlopt_core.experiments.compress.config import CompressionConfig, MethodConfig
from dlopt_core.experiments.compress.run import Compression
from dlopt_core.experiments.compress.work import CompressionWork
from dlopt_core.plots.compression import (
    layer_sensitivity_data,
    layer_sensitivity_figure,
    pareto_data,
    pareto_figure,
    sparsity_data,
    sparsity_figure,
)
from dlopt_core.runner.jobs import JobRegistry

MLP = RunConfig.make(model={"name": "mlp", "params": {"hidden": (64,)}}, epochs=4)
CNN = RunConfig.make(model={"name": "cnn", "params": {"channels": (4, 8)}}, epochs=2)


def _trained(config: RunConfig) -> tuple[nn.Module, object]:
    data = load_run_data(config)
    model = build_model(config.model, data, config.seed)
    for _ in run(config, data=data, model=model, train_loss=False):
        pass
    return model.eval(), data


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, object]:
    return _trained(MLP)


@pytest.fixture(scope="module")
def cnn() -> tuple[nn.Module, object]:
    return _trained(CNN)


def _predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x).argmax(dim=1)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.77, 0.95])
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_unstructured_sparsity_per_layer_is_what_was_asked(sparsity: float, which: str, request) -> None:
    model = copy.deepcopy(request.getfixturevalue(which)[0])
    prune_unstructured(model, sparsity, scope="layer")
    make_permanent(model)
    for name, layer in weight_layers(model):
        n = layer.weight.numel()
        zeros = int((layer.weight == 0).sum())
        assert abs(zeros - sparsity * n) <= 1, (name, zeros, n)
        assert not hasattr(layer, "weight_mask")  # folded in: a plain dense tensor with zeros


def test_global_unstructured_sparsity_holds_over_all_layers_and_iterating_keeps_earlier_zeros(mlp) -> None:
    model = copy.deepcopy(mlp[0])
    prune_unstructured(model, 0.4, scope="global")
    first = {name: layer.weight == 0 for name, layer in weight_layers(model)}
    prune_unstructured(model, 0.8, scope="global")
    make_permanent(model)
    total = sum(layer.weight.numel() for _, layer in weight_layers(model))
    zeros = sum(int((layer.weight == 0).sum()) for _, layer in weight_layers(model))
    assert abs(zeros - 0.8 * total) <= 1
    for name, layer in weight_layers(model):
        assert bool((layer.weight[first[name]] == 0).all())


@pytest.mark.parametrize("which", ["mlp", "cnn"])
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_structured_pruning_removes_units_really_smaller_same_output_shape(which: str, sparsity: float, request) -> None:
    model, data = request.getfixturevalue(which)
    widths = hidden_widths(model)
    pruned = prune_structured(model, [max(1, w - round(sparsity * w)) for w in widths], norm="l2")
    for w, kept in zip(widths, hidden_widths(pruned)):
        assert abs((w - kept) - sparsity * w) <= 1
    before, after = measure_sizes(model), measure_sizes(pruned)
    assert after.params < before.params and after.bytes < before.bytes and after.payload_bytes < before.payload_bytes
    x = data.x_val[:32]
    assert pruned(x).shape == model(x).shape


def test_structured_pruning_is_exactly_the_model_with_those_units_switched_off(mlp) -> None:
    model, data = mlp
    pruned = prune_structured(model, [40], norm="l1")
    scores = model[0].weight.abs().sum(dim=1)
    dropped = torch.argsort(scores)[:24]  # the 24 lowest L1 norms
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed[0].weight[dropped] = 0
        zeroed[0].bias[dropped] = 0
    x = data.x_val
    torch.testing.assert_close(pruned(x), zeroed(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("convert", [
    lambda m: quantize_int8(m, "weight")[0], lambda m: quantize_int8(m, "dynamic")[0],
    lambda m: cast_weights(m, torch.float16), lambda m: cast_weights(m, torch.bfloat16),
], ids=["int8_weight", "int8_dynamic", "fp16", "bf16"])
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_quantized_models_agree_with_the_float_model_on_95_percent_of_digits(convert, which: str, request) -> None:
    model, data = request.getfixturevalue(which)
    small = convert(model)
    agree = (_predictions(small, data.x_val) == _predictions(model, data.x_val)).float().mean()
    assert agree >= 0.95
    assert measure_sizes(small).payload_bytes < measure_sizes(model).payload_bytes


def test_int8_quantization_converts_linear_layers_and_says_which(cnn) -> None:
    model, _ = cnn
    quantized, converted = quantize_int8(model, "weight")
    assert converted == 1 and len(weight_layers(model)) == 3
    assert type(quantized[-1].weight).__name__ == "Int8Tensor" and type(quantized[1].weight) is nn.Parameter


def test_distillation_with_alpha_1_is_ordinary_training_bit_for_bit(mlp) -> None:
    teacher, data = mlp
    student = RunConfig.make(model={"name": "mlp", "params": {"hidden": (16,)}}, epochs=2)

    def final_state(hooks) -> dict:
        return next(r for r in run(student, data=data, hooks=hooks) if r.state is not None).state

    plain = final_state(distillation_hooks(teacher, loss_fn(data), temperature=4.0, alpha=1.0, classification=True))
    ordinary = next(r for r in run(student, data=data) if r.state is not None).state
    assert plain.keys() == ordinary.keys()
    assert all((plain[k] == ordinary[k]).all() for k in plain)
    taught = final_state(distillation_hooks(copy.deepcopy(teacher), loss_fn(data), temperature=4.0, alpha=0.5,
                                            classification=True))
    assert any((taught[k] != ordinary[k]).any() for k in taught)  # the soft term acts


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sizes_of_known_tensors_are_measured_exactly() -> None:
    assert tensor_bytes(torch.zeros(1000)) == 4000
    assert tensor_bytes(torch.zeros(1000, dtype=torch.float16)) == 2000
    weight = torch.zeros(4, 5)
    weight[0, 1], weight[3, 4] = 1.0, 2.0
    # CSR: 5 row pointers and 2 column indices (int64) and 2 float32 values.
    assert tensor_bytes(weight.to_sparse_csr()) == 5 * 8 + 2 * 8 + 2 * 4
    layer = nn.Linear(10, 10)
    sizes = measure_sizes(layer)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    assert (sizes.params, sizes.payload_bytes, sizes.bytes) == (110, 440, len(buffer.getvalue()))
    assert sizes.sparse_bytes is None


def test_masked_only_pruning_reports_dense_and_sparse_bytes_side_by_side(mlp) -> None:
    model = copy.deepcopy(mlp[0])
    dense = measure_sizes(model)
    prune_unstructured(model, 0.9)
    make_permanent(model)
    masked = measure_sizes(model, masked=True)
    assert masked.params == dense.params and masked.payload_bytes == dense.payload_bytes  # zeros weigh as much
    assert masked.nonzeros < 0.15 * dense.params
    assert masked.sparse_bytes is not None and masked.sparse_bytes < masked.bytes


def _config(methods: list[str], **values) -> CompressionConfig:
    return CompressionConfig.make(**{**MLP.model_dump(), **values}, methods=tuple(MethodConfig.parse(m) for m in methods),
                                  latency_repeats=3)


@pytest.mark.parametrize("spec, message", [
    ("prune_unstructured:sparsity=1", "outside the allowed range [0, 1)"),
    ("prune_structured:sparsity=-0.1", "outside the allowed range [0, 1)"),
    ("prune_unstructured:sparsity=0.5,steps=3", "set finetune_epochs > 0"),
    ("prune_structured:norm=l3", "unknown 'l3'"),
    ("distill", "needs student=<model>"),
    ("distill:student=mlp:hidden=8,depth=3", "unknown setting"),
    ("fp16:student=mlp", "takes no student"),
    ("quantize_int4", "unknown name 'quantize_int4'"),
])
def test_bad_method_settings_are_refused_with_the_field(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _config([spec])


def test_methods_that_cannot_take_the_model_are_refused_before_anything_trains() -> None:
    linear = _config(["prune_structured:sparsity=0.5"], model={"name": "linear"})
    with pytest.raises(ConfigError, match="no hidden neurons or channels"):
        check_methods(linear)
    larger = _config(["distill:student=mlp:hidden=128"])
    with pytest.raises(ConfigError, match="more than its teacher's"):
        check_methods(larger)
    tabular = _config(["distill:student=cnn"], data={"name": "moons"}, model={"name": "mlp"})
    with pytest.raises(ConfigError, match="needs image data"):
        check_methods(tabular)
    observed = []

    class Observer:
        def __getattr__(self, hook):
            return lambda *args: observed.append(hook)

    with pytest.raises(ConfigError):
        Compression(larger).execute(observers=[Observer()])
    assert observed == []  # nothing reported, so nothing half-logged


def test_baseline_weights_of_another_model_are_refused(mlp) -> None:
    config = _config(["fp16"], model={"name": "mlp", "params": {"hidden": (32,)}})
    with pytest.raises(ConfigError, match="do not fit the model"):
        check_methods(config, baseline_state=mlp[0].state_dict())


def test_methods_round_trip_through_the_flat_form() -> None:
    config = _config(["prune_structured:sparsity=0.5,norm=l2", "distill:student=mlp:hidden=16,activation=tanh,alpha=0.3",
                      "quantize_int8_dynamic"], sparsities="0.25,0.75")
    assert CompressionConfig.from_dict(config.to_dict()) == config
    assert config.methods[1].student == ModelConfig.parse("mlp:hidden=16,activation=tanh")
    assert [v.params.get("sparsity") for v in config.variants()] == [0.5, 0.25, 0.75, None, None]


def test_a_compression_measures_every_variant_from_given_weights(mlp) -> None:
    model, data = mlp
    config = _config(["prune_structured:sparsity=0.5", "prune_unstructured:sparsity=0.8", "quantize_int8_weight",
                      "distill:student=mlp:hidden=8"], sparsities="0.3", epochs=1, sensitivity_sparsity=0.5)
    c = Compression(config, baseline_state=model.state_dict()).execute()
    labels = [r.label for r in c.rows]
    assert labels == [
        "baseline", "prune_structured:sparsity=0.5", "prune_structured:sparsity=0.3", "prune_unstructured:sparsity=0.8",
        "prune_unstructured:sparsity=0.3", "quantize_int8_weight", "distill:student=mlp:hidden=8",
        "student mlp:hidden=8 from scratch",
    ]
    assert all(r.error is None and r.latency_b1_ms > 0 and r.latency_b256_ms > 0 for r in c.rows)
    base = c.rows[0]
    assert base.val_metric == pytest.approx(float((_predictions(model, data.x_val) == data.y_val).float().mean()))
    masked = next(r for r in c.rows if r.label == "prune_unstructured:sparsity=0.8")
    assert masked.masked_only and masked.params == base.params and masked.sparse_bytes is not None
    assert c.progress == 1.0 and [r.name for r in c.runs] == [
        "student mlp:hidden=8 distilled", "student mlp:hidden=8 from scratch"]
    assert [s.layer for s in c.sensitivity] == ["0", "2"]
    assert c.rows[0].compiled_note == "not asked for" and c.rows[0].cuda_b1_ms is None or torch.cuda.is_available()

    pareto = pareto_data(c.rows)
    assert [p.label for p in pareto.points if p.baseline] == ["baseline"] and pareto.front
    assert all(not (q.x <= p.x and q.y >= p.y and (q.x < p.x or q.y > p.y))
               for p in pareto.points if p.on_front for q in pareto.points)
    fig = pareto_figure(pareto)
    assert "Pareto front" in [t.name for t in fig.data] and "baseline" in [t.name for t in fig.data]
    curves = sparsity_data(c.rows)
    assert {line.name: line.sparsity for line in curves.lines} == {
        "prune_structured": [0.3, 0.5],  # only settings off their defaults name a line
        "prune_unstructured": [0.3, 0.8],
    }
    assert len(sparsity_figure(curves).data) == 2
    bars = layer_sensitivity_data(c.sensitivity, baseline=base.val_metric)
    assert len(bars.layers) == 2 and all(q is not None for q in bars.quantized)
    assert len(layer_sensitivity_figure(bars).data) == 2


def test_sensitivity_and_a_quick_sparsity_curve(cnn) -> None:
    model, data = cnn
    layers = layer_sensitivity(model, data, sparsity=0.9)
    assert [(s.layer, s.kind) for s in layers] == [("1", "conv"), ("3", "conv"), ("7", "linear")]
    assert layers[0].quantized_metric is None and layers[2].quantized_metric is not None
    curve = sparsity_curve(model, data, method="prune_structured", sparsities=[0.0, 0.5, 0.9])
    assert [p.sparsity for p in curve] == [0.0, 0.5, 0.9] and curve[0].val_metric > curve[-1].val_metric
    with pytest.raises(ConfigError, match="no sparsity"):
        sparsity_curve(model, data, method="fp16", sparsities=[0.5])


def test_a_failing_variant_is_a_row_with_its_error_not_a_crash(mlp, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = COMPRESSIONS["fp16"]

    def broken(*args):
        raise RuntimeError("no kernel")

    monkeypatch.setitem(COMPRESSIONS, "fp16", type(spec)(**{**vars(spec), "apply": broken}))
    c = Compression(_config(["fp16", "bf16"], sensitivity_sparsity=None), baseline_state=mlp[0].state_dict()).execute()
    assert [(r.label, r.error) for r in c.rows] == [("baseline", None), ("fp16", "RuntimeError: no kernel"), ("bf16", None)]


def test_a_compression_runs_as_background_work_with_progress() -> None:
    config = _config(["prune_structured:sparsity=0.5", "fp16"], epochs=1, sensitivity_sparsity=None)
    registry = JobRegistry(max_workers=1, launcher="thread")
    try:
        job = registry.submit(CompressionWork(config, track=False))
        assert job.wait(120)
        c = job.payload.compression
        assert str(job.status) == "finished" and c.progress == 1.0 and c.phase == "done"
        assert [r.label for r in c.rows] == ["baseline", "prune_structured:sparsity=0.5", "fp16"]
        assert [r.name for r in c.runs] == ["baseline"] and c.runs[0].records[-1].epoch == 1.0
    finally:
        registry.shutdown()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_latency_is_measured_where_there_is_a_gpu(mlp) -> None:
    c = Compression(_config(["fp16"], sensitivity_sparsity=None), baseline_state=mlp[0].state_dict()).execute()
    assert all(r.cuda_b1_ms is not None and r.cuda_b1_ms > 0 for r in c.rows), [r.cuda_note for r in c.rows]
