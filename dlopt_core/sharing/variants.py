"""The sharing variants as registry entries, in three families that each compare like with like.

- ``tied``: an autoencoder whose decoder is the encoder's transpose, against a free decoder;
- ``depth``: one layer applied L times (ALBERT's cross-layer sharing), against L layers;
- ``multitask``: one trunk with a head per task, against a network per task, and the trunk
  with task A alone.

A variant is built from the data's width, the experiment's ``width`` and ``depth``, and a seed;
the same seed gives the same weights where two variants have the same layers (the multi-task
trunk and head A, the single-task model and the first separate network start equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlopt_core.catalog.hyperparams import lookup
from dlopt_core.catalog.models import INIT_LOCK
from dlopt_core.sharing.models import Autoencoder, DeepMLP, MultiTaskNet, SeparateNets
from dlopt_core.sharing.tasks import get_task

# (input width, width, depth) -> the model
Builder = Callable[[int, int, int], nn.Module]


def _heads(*tasks: str) -> dict[str, int]:
    return {t: get_task(t).outputs for t in tasks}


@dataclass(frozen=True)
class VariantSpec:
    """One variant: how to build it, what it learns, and whether it shares a tensor."""

    name: str
    label: str  # what tables and legends call it
    family: str
    build: Builder
    tasks: tuple[str, ...]  # in the order its outputs are read
    shares: bool  # what the design says; the checks read the built model instead
    description: str = ""


@dataclass(frozen=True)
class FamilySpec:
    """A family of variants compared on the same tasks."""

    name: str
    label: str
    tasks: tuple[str, ...]  # every task any of its variants learns
    variants: tuple[str, ...]
    description: str = ""
    # Tasks share a trunk, so their gradients there can be combined (summed, or by PCGrad).
    combines: bool = False


VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec(
            "tied", "tied", "tied", lambda n, w, d: Autoencoder(n, w, tied=True), ("reconstruct",), True,
            description="Autoencoder whose decoder multiplies by encoder.weight.t() (one weight matrix, two uses).",
        ),
        VariantSpec(
            "untied", "untied", "tied", lambda n, w, d: Autoencoder(n, w, tied=False), ("reconstruct",), False,
            description="The same autoencoder with a decoder weight of its own.",
        ),
        VariantSpec(
            "shared", "shared", "depth",
            lambda n, w, d: DeepMLP(n, w, d, get_task("digit").outputs, shared=True), ("digit",), True,
            description="A residual MLP whose L hidden layers are one layer applied L times (ALBERT-style).",
        ),
        VariantSpec(
            "distinct", "distinct", "depth",
            lambda n, w, d: DeepMLP(n, w, d, get_task("digit").outputs, shared=False), ("digit",), False,
            description="The same MLP with L layers of their own (same width, same depth).",
        ),
        VariantSpec(
            "multitask", "multi-task", "multitask",
            lambda n, w, d: MultiTaskNet(n, w, d, _heads("digit", "high")), ("digit", "high"), True,
            description="One trunk, a head per task (hard parameter sharing).",
        ),
        VariantSpec(
            "separate", "separate", "multitask",
            lambda n, w, d: SeparateNets(n, w, d, _heads("digit", "high")), ("digit", "high"), False,
            description="A whole network per task: twice the trunk, nothing shared.",
        ),
        VariantSpec(
            "single", "single", "multitask",
            lambda n, w, d: MultiTaskNet(n, w, d, _heads("digit")), ("digit",), False,
            description="The trunk with task A alone: what the second task adds or costs.",
        ),
    )
}

FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec(
            "tied", "tied vs untied weights", ("reconstruct",), ("tied", "untied"),
            description="An autoencoder on the digits, 64 -> width -> 64; reconstruction MSE on validation.",
        ),
        FamilySpec(
            "depth", "cross-layer sharing", ("digit",), ("shared", "distinct"),
            description="A deep MLP on the digits: one layer applied depth times vs depth layers; accuracy.",
        ),
        FamilySpec(
            "multitask", "multi-task hard sharing", ("digit", "high"), ("multitask", "separate", "single"),
            description="Task A: which digit; task B: digit >= 5. One trunk vs a network per task vs task A alone.",
            combines=True,
        ),
    )
}


def get_variant(name: str) -> VariantSpec:
    """Look up a variant; the error lists what is allowed."""
    return lookup(VARIANTS, name, kind="variant")


def get_family(name: str) -> FamilySpec:
    """Look up a family; the error lists what is allowed."""
    return lookup(FAMILIES, name, kind="family")


def build_variant(name: str, n_in: int, *, width: int, depth: int, seed: int, device: torch.device) -> nn.Module:
    """Variant ``name`` with weights drawn from ``seed``, on ``device``."""
    spec = get_variant(name)
    # torch's initialisers draw from the process-global RNG, which job threads share.
    with INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(n_in, width, depth)
    return model.to(device)
