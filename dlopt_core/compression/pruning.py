"""Pruning: magnitude masks (``torch.nn.utils.prune``) and structured surgery that removes units.

Unstructured pruning zeroes single weights. The tensor stays dense, so the model is not smaller
or faster until something stores or multiplies it sparsely: its rows say "masked only".

Structured pruning removes whole hidden neurons (rows of a linear layer) or channels (filters of
a convolution) with the lowest L1 or L2 norm, together with the matching inputs of the next
layer, and builds smaller layers: fewer parameters, fewer bytes, the same output shape.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import prune

from dlopt_core.catalog.models import SeededDropout

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)
Scope = Literal["layer", "global"]
Norm = Literal["l1", "l2"]

# What may sit between two weight layers without mixing units: each output unit (or channel)
# of the first still feeds only its own inputs of the next.
_PER_UNIT = (nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.Identity, nn.Dropout, SeededDropout, nn.MaxPool2d, nn.AvgPool2d)


class PruningError(ValueError):
    """A model this pruning cannot handle; the message names the layer and why."""


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every linear and convolution layer, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def prune_unstructured(
    model: nn.Module, sparsity: float, *, scope: Scope = "layer", layers: Sequence[str] | None = None
) -> None:
    """Mask the smallest-magnitude weights so a share ``sparsity`` of them is zero (in place).

    ``scope="layer"``: each layer loses ``round(sparsity * n)`` of its ``n`` weights;
    ``"global"``: the share holds over all the layers together, so a layer of small weights
    loses more. Weights that are zero already count (a second call at a higher sparsity keeps
    the first call's zeros), and the masks stay until :func:`make_permanent`. ``layers``:
    only these (names from :func:`weight_layers`). Biases are never pruned.
    """
    targets = [(m, "weight") for name, m in weight_layers(model) if layers is None or name in layers]
    if not targets:
        raise PruningError("the model has no linear or convolution weights to prune")
    make_permanent(model)  # earlier masks become plain zeros: the smallest magnitudes, taken first
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=sparsity)


def make_permanent(model: nn.Module) -> None:
    """Fold every pruning mask into its weight (zeros stay zeros; the masks' hooks go)."""
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")


def hidden_widths(model: nn.Module) -> list[int]:
    """Units (neurons or channels) of each weight layer but the last: what structured pruning can remove.

    Raises :class:`PruningError` when the model is not a chain this surgery understands.
    """
    return [layer.weight.shape[0] for layer, _ in _chain(model)]


def prune_structured(model: nn.Module, keep: Sequence[int], *, norm: Norm = "l1") -> nn.Sequential:
    """A copy of ``model`` keeping ``keep[i]`` units of hidden layer ``i``, those of largest ``norm``.

    A unit's norm is that of its outgoing weights (a neuron's row, a channel's filter); its bias
    goes with it, and the next layer loses the matching inputs (for a convolution before a
    flatten, the block of features that channel fills).
    """
    chain = _chain(model)
    if len(keep) != len(chain):
        raise ValueError(f"keep: {len(keep)} widths for {len(chain)} hidden layers")
    new = copy.deepcopy(model)
    modules = list(new)
    positions = [i for i, m in enumerate(modules) if isinstance(m, WEIGHT_LAYERS)]
    for layer_index, count in enumerate(keep):
        i, j = positions[layer_index], positions[layer_index + 1]
        layer, consumer = modules[i], modules[j]
        units = layer.weight.shape[0]
        if not 1 <= count <= units:
            raise ValueError(f"keep: layer {i} has {units} units, cannot keep {count}")
        p = 1 if norm == "l1" else 2
        scores = layer.weight.detach().reshape(units, -1).norm(p=p, dim=1)
        kept = torch.sort(torch.topk(scores, count).indices).values  # the kept units in their order
        modules[i] = _take_outputs(layer, kept)
        modules[j] = _take_inputs(consumer, kept, per_unit=consumer.weight.shape[1] // units)
    return nn.Sequential(*modules)


def _chain(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """``(layer, next weight layer)`` pairs of a sequential model, checked for surgery."""
    modules = list(model) if isinstance(model, nn.Sequential) else [model]
    positions = [i for i, m in enumerate(modules) if isinstance(m, WEIGHT_LAYERS)]
    if len(positions) < 2 and all(not list(m.children()) for m in modules):
        raise PruningError(
            "the model has no hidden neurons or channels to remove (only its output layer, which keeps "
            "its shape); use prune_unstructured or a quantization instead"
        )
    if not isinstance(model, nn.Sequential):
        raise PruningError(f"needs a sequential chain of layers, got {type(model).__name__}")
    pairs = []
    for a, b in zip(positions, positions[1:]):
        between = modules[a + 1 : b]
        for m in between:
            if isinstance(m, nn.Flatten) and isinstance(modules[a], nn.Conv2d) and isinstance(modules[b], nn.Linear):
                continue
            if not isinstance(m, _PER_UNIT):
                raise PruningError(
                    f"cannot remove units of layer {a} ({type(modules[a]).__name__}) "
                    f"through a {type(m).__name__} (layer {modules.index(m)}), which mixes them"
                )
        if isinstance(modules[a], nn.Linear) and isinstance(modules[b], nn.Conv2d):
            raise PruningError(f"layer {a} is linear and feeds a convolution ({b})")
        pairs.append((modules[a], modules[b]))
    return pairs


def _take_outputs(layer: nn.Module, kept: torch.Tensor) -> nn.Module:
    weight = layer.weight.detach()[kept]
    bias = layer.bias.detach()[kept] if layer.bias is not None else None
    if isinstance(layer, nn.Linear):
        new: nn.Module = nn.utils.skip_init(nn.Linear, layer.in_features, len(kept), bias=bias is not None,
                                            device=weight.device, dtype=weight.dtype)
    else:
        new = nn.utils.skip_init(
            nn.Conv2d, layer.in_channels, len(kept), layer.kernel_size, stride=layer.stride, padding=layer.padding,
            dilation=layer.dilation, groups=layer.groups, bias=bias is not None, padding_mode=layer.padding_mode,
            device=weight.device, dtype=weight.dtype,
        )
    return _filled(new, weight, bias)


def _take_inputs(layer: nn.Module, kept: torch.Tensor, *, per_unit: int) -> nn.Module:
    # A flattened channel fills per_unit neighbouring features (C-major order); one unit otherwise.
    columns = (kept[:, None] * per_unit + torch.arange(per_unit, device=kept.device)).reshape(-1)
    weight = layer.weight.detach()[:, columns]
    bias = layer.bias.detach() if layer.bias is not None else None
    if isinstance(layer, nn.Linear):
        new: nn.Module = nn.utils.skip_init(nn.Linear, len(columns), layer.out_features, bias=bias is not None,
                                            device=weight.device, dtype=weight.dtype)
    else:
        new = nn.utils.skip_init(
            nn.Conv2d, len(columns), layer.out_channels, layer.kernel_size, stride=layer.stride, padding=layer.padding,
            dilation=layer.dilation, groups=layer.groups, bias=bias is not None, padding_mode=layer.padding_mode,
            device=weight.device, dtype=weight.dtype,
        )
    return _filled(new, weight, bias)


def _filled(new: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new
