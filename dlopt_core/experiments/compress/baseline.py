"""Checks before anything trains, and one-shot readings of a model: per-layer sensitivity, a sparsity curve."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.models import build_model
from dlopt_core.compression.methods import get_compression
from dlopt_core.compression.pruning import make_permanent, prune_unstructured, weight_layers
from dlopt_core.compression.quantization import quantize_int8
from dlopt_core.config import ModelConfig
from dlopt_core.engine.loop import evaluate, load_run_data
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.compress.config import CompressionConfig, MethodConfig
from dlopt_core.experiments.compress.rows import LayerSensitivity, SparsityPoint


def check_methods(
    config: CompressionConfig, *, data: Dataset | None = None, baseline_state: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Raise :class:`ConfigError` for every method that cannot take this model (and for baseline
    weights that do not fit it), before anything trains or is logged; return the baseline model
    (the given weights loaded, or untrained)."""
    data = data if data is not None else load_run_data(config.baseline_config())
    model = build_model(config.model, data, config.seed)
    if baseline_state is not None:
        load_baseline(model, baseline_state, config.model)
    problems = []
    for m in config.variants():
        spec = get_compression(m.name)
        if spec.fits is not None and (problem := spec.fits(m.params, m.student, model, data)):
            problems.append(f"{m.to_spec()}: {problem}")
    if problems:
        raise ConfigError("; ".join(problems))
    return model


def load_baseline(model: nn.Module, state: Mapping[str, Any], model_config: ModelConfig) -> None:
    """Load ``state`` into ``model``; :class:`ConfigError` when it is another architecture."""
    tensors = {k: torch.as_tensor(v) for k, v in state.items()}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise ConfigError(f"baseline weights: they do not fit the model {model_config.to_spec()!r}: {detail}") from None


def layer_sensitivity(model: nn.Module, data: Dataset, *, sparsity: float) -> list[LayerSensitivity]:
    """For each weight layer alone: the validation metric pruned (magnitude, ``sparsity``) and int8-quantized."""
    out = []
    for name, layer in weight_layers(model):
        pruned = copy.deepcopy(model)
        prune_unstructured(pruned, sparsity, layers=[name])
        make_permanent(pruned)
        quantized = None
        if isinstance(layer, nn.Linear):
            quantized = _metric(quantize_int8(model, "weight", layers={name})[0], data)
        out.append(LayerSensitivity(
            name, "linear" if isinstance(layer, nn.Linear) else "conv", sum(p.numel() for p in layer.parameters()),
            sparsity, _metric(pruned, data), quantized,
        ))
    return out


def sparsity_curve(
    model: nn.Module, data: Dataset, *, method: str = "prune_unstructured", sparsities: Sequence[float],
    params: Mapping[str, Any] | None = None,
) -> list[SparsityPoint]:
    """The validation metric of ``method`` applied one-shot (no fine-tuning) at each sparsity: a quick curve."""
    spec = get_compression(method)
    if not spec.sweeps_sparsity:
        raise ConfigError(f"method: {method!r} has no sparsity to sweep")
    out = []
    for s in sparsities:
        cfg = MethodConfig.make(name=method, params={**(params or {}), "sparsity": s, "finetune_epochs": 0, "steps": 1})
        ctx = _OneShot(model, data)
        out.append(SparsityPoint(float(s), _metric(spec.apply(cfg.params, None, ctx)[0].model, data)))
    return out


@dataclass
class _OneShot:
    baseline: nn.Module
    data: Dataset
    config: Any = None

    def train(self, config: Any, **kwargs: Any) -> nn.Module:
        raise RuntimeError("a one-shot curve trains nothing")


def _metric(model: nn.Module, data: Dataset) -> float:
    model.eval()
    return evaluate(model, data, data.x_val, data.y_val)[1]
