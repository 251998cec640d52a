"""The arms of a transfer experiment: how a model pretrained on the source task is fine-tuned.

An arm is one registry entry: its name, label, description and the function that prepares
the model (the source's backbone with a new head, or fresh weights) and its parameter groups
(:class:`~dlopt_core.catalog.optimizers.ParamGroup`). Freezing, layer-wise lr decay and gradual
unfreezing are all groups: a multiplier and the epoch each group starts to train.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlopt_core.catalog.hyperparams import lookup
from dlopt_core.catalog.optimizers import ParamGroup
from dlopt_core.transfer.lora import LoRALinear, add_lora

LAYER_TYPES = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class ArmSettings:
    """What an arm's preparation reads: the budget and the arms' own settings."""

    epochs: int
    seed: int
    lora_rank: int = 4
    layer_decay: float = 0.5
    unfreeze_every: int = 1


@dataclass
class Prepared:
    """A model ready to fine-tune, its groups (None: every parameter trains at the config's lr)
    and its layers (bottom first, the head last) with their parameters' names."""

    model: nn.Module
    groups: tuple[ParamGroup, ...] | None
    layers: dict[str, tuple[str, ...]]

    @property
    def head(self) -> str:
        return list(self.layers)[-1]

    @property
    def trainable_params(self) -> int:
        """Numbers the arm ever trains (a gradually unfrozen layer counts)."""
        return self.trainable_within(None)

    def trainable_within(self, epochs: int | None) -> int:
        """Numbers the arm trains within ``epochs`` (None: ever): a layer gradual unfreezing
        reaches only after the budget ends does not count."""
        params = dict(self.model.named_parameters())
        if self.groups is None:
            return sum(p.numel() for p in params.values())
        return sum(
            params[n].numel() for g in self.groups
            if g.trainable_from is not None and (epochs is None or g.trainable_from < epochs) for n in g.params
        )

    def layer_lr(self, lr: float, epoch: int) -> dict[str, float]:
        """The lr each layer trains with during ``epoch`` (0-based; 0 while frozen): ``lr`` times
        the largest multiplier of its groups that train then."""
        if self.groups is None:
            return {layer: lr for layer in self.layers}
        owner = {n: g for g in self.groups for n in g.params}
        return {
            layer: lr * max((owner[n].lr_mult for n in names if owner[n].trainable_at(epoch)), default=0.0)
            for layer, names in self.layers.items()
        }


Prepare = Callable[[nn.Module, Mapping[str, Any] | None, ArmSettings], Prepared]


@dataclass(frozen=True)
class ArmSpec:
    """One way to train on the target task."""

    name: str
    label: str
    prepare: Prepare
    uses_source: bool = True
    per_layer_lr: bool = False  # layers train at different rates (an optimizer with one lr cannot)
    description: str = ""


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the modules that hold weights (Linear, Conv2d; a LoRA-wrapped one by its own name), bottom first."""
    wrapped = {n for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    return [
        n for n, m in model.named_modules()
        if isinstance(m, (*LAYER_TYPES, LoRALinear)) and not any(n.startswith(f"{w}.") for w in wrapped)
    ]


def layer_params(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Each weight layer's parameter names, bottom first, the head last."""
    names = [n for n, _ in model.named_parameters()]
    return {layer: tuple(n for n in names if n.startswith(f"{layer}.")) for layer in weight_layers(model)}


def load_backbone(model: nn.Module, source_state: Mapping[str, Any]) -> None:
    """Load every source weight but the head's into ``model`` (whose head stays as initialised)."""
    head = weight_layers(model)[-1]
    state = {k: torch.as_tensor(v) for k, v in source_state.items() if not k.startswith(f"{head}.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    wrong = [k for k in missing if not k.startswith(f"{head}.")] + list(unexpected)
    if wrong:
        raise ValueError(f"source weights: they do not fit the model ({', '.join(wrong[:5])})")


def _groups(layers: dict[str, tuple[str, ...]], mult: Callable[[int], float], start: Callable[[int], int | None]) -> tuple[ParamGroup, ...]:
    """One group per layer; layer ``i`` of ``L`` backbone layers (the head is ``L``)."""
    return tuple(ParamGroup(layer, names, mult(i), start(i)) for i, (layer, names) in enumerate(layers.items()))


def _scratch(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    # No groups: exactly the ordinary loop's run from the seed's weights.
    return Prepared(model, None, layer_params(model))


def _with_source(model: nn.Module, source: Mapping[str, Any] | None) -> tuple[nn.Module, dict[str, tuple[str, ...]], int]:
    assert source is not None
    load_backbone(model, source)
    layers = layer_params(model)
    return model, layers, len(layers) - 1


def _probe(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    model, layers, top = _with_source(model, source)
    return Prepared(model, _groups(layers, lambda i: 1.0, lambda i: 0 if i == top else None), layers)


def _full(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    model, layers, _ = _with_source(model, source)
    return Prepared(model, _groups(layers, lambda i: 1.0, lambda i: 0), layers)


def _lp_ft(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    model, layers, top = _with_source(model, source)
    half = max(1, s.epochs // 2)
    return Prepared(model, _groups(layers, lambda i: 1.0, lambda i: 0 if i == top else half), layers)


def _layer_decay(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    model, layers, top = _with_source(model, source)
    # timm's rule with the head as layer L: layer i of L gets lr * decay**(L - i), the head lr.
    return Prepared(model, _groups(layers, lambda i: s.layer_decay ** (top - i), lambda i: 0), layers)


def _gradual(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    model, layers, top = _with_source(model, source)
    # The head first; one more layer from the top every ``unfreeze_every`` epochs.
    return Prepared(model, _groups(layers, lambda i: 1.0, lambda i: (top - i) * s.unfreeze_every), layers)


def _lora(model: nn.Module, source: Mapping[str, Any] | None, s: ArmSettings) -> Prepared:
    model, layers, _ = _with_source(model, source)
    head = list(layers)[-1]
    add_lora(model, s.lora_rank, skip={head}, seed=s.seed)
    layers = layer_params(model)
    adapter = ("lora_a", "lora_b")
    groups = [ParamGroup(head, layers[head])]
    for layer, names in list(layers.items())[:-1]:
        trained = tuple(n for n in names if n.rpartition(".")[2] in adapter)
        frozen = tuple(n for n in names if n not in trained)
        groups += [ParamGroup(layer, trained), ParamGroup(f"{layer} (frozen)", frozen, trainable_from=None)]
    return Prepared(model, tuple(g for g in groups if g.params), layers)


ARMS: dict[str, ArmSpec] = {
    spec.name: spec
    for spec in (
        ArmSpec("scratch", "From scratch", _scratch, uses_source=False,
                description="Fresh weights from the seed, trained on the target only: the baseline transfer must beat."),
        ArmSpec("probe", "Linear probe", _probe,
                description="The source backbone frozen; only a new head trains."),
        ArmSpec("full", "Full fine-tune", _full,
                description="The source weights with a new head; every layer trains at the same lr."),
        ArmSpec("lp-ft", "LP-FT", _lp_ft,
                description="A linear probe for half the epochs, then a full fine-tune (Kumar et al. 2022): "
                "the head is fitted before it can distort the backbone's features."),
        ArmSpec("layer-decay", "Layer-wise lr decay", _layer_decay, per_layer_lr=True,
                description="Full fine-tune where layer i of L gets lr * decay^(L - i), the head lr (timm's rule)."),
        ArmSpec("lora", "LoRA", _lora,
                description="The backbone frozen; each of its Linear layers gets a trainable rank-r update B A; "
                "the new head trains."),
        ArmSpec("gradual", "Gradual unfreezing", _gradual,
                description="The head first, then one more layer from the top every k epochs (ULMFiT)."),
    )
}


def get_arm(name: str) -> ArmSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(ARMS, name, kind="arm")
