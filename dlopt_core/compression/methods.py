"""Ways to make a trained model smaller or faster (pruning, quantization, distillation): the registry.

Each entry declares its hyperparameters (ranges, defaults), what kind of saving it makes (its
badge), a check of the model it is given (a method that cannot handle an architecture says so
before anything trains), and ``apply``, which returns the compressed model(s). Training that a
method needs (fine-tuning between pruning steps, a student) goes through the
:class:`CompressionContext` it is given, so progress and curves are the experiment's business.
Adding a method is one entry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.hyperparams import HyperParam, lookup
from dlopt_core.catalog.models import build_model, get_model_spec, loss_fn
from dlopt_core.compression.distillation import distillation_hooks
from dlopt_core.compression.pruning import (
    PruningError,
    hidden_widths,
    make_permanent,
    prune_structured,
    prune_unstructured,
    weight_layers,
)
from dlopt_core.compression.quantization import cast_weights, quantize_int8
from dlopt_core.config import ModelConfig, RunConfig
from dlopt_core.engine.step import StepHooks

Kind = Literal["prune", "quantize", "cast", "distill"]
Params = dict[str, Any]


@dataclass(frozen=True)
class Compressed:
    """One compressed model and how its row names it."""

    model: nn.Module
    method: str  # the registry name, or a companion row's own (``student_scratch``)
    label: str  # the method with its settings, as the table shows it
    badge: str  # what kind of saving: "masked only", "smaller", "int8 weights", ...
    masked: bool = False  # zeros in dense tensors: not smaller until stored or multiplied sparsely
    note: str = ""


class CompressionContext(Protocol):
    """What a method may use: the trained baseline (never modified), the data, the setup, and training."""

    baseline: nn.Module
    data: Dataset
    config: RunConfig  # the baseline's setup

    def train(self, config: RunConfig, *, model: nn.Module | None = None, hooks: StepHooks = StepHooks(), label: str) -> nn.Module:
        """Train ``model`` (or a fresh ``config.model`` from ``config.seed``) with ``config``; return it trained."""
        ...


Apply = Callable[[Params, Any, CompressionContext], list[Compressed]]
# (params, student, the baseline model, data) -> why the method cannot take this model, or None.
Check = Callable[[Params, Any, nn.Module, Dataset], str | None]


@dataclass(frozen=True)
class CompressionSpec:
    """A named compression method, its hyperparameters and what it can handle."""

    name: str
    label: str
    kind: Kind
    apply: Apply
    badge: str
    hyperparams: tuple[HyperParam, ...] = ()
    check: Callable[[Params], str | None] | None = None  # settings that do not go together
    fits: Check | None = None
    needs_student: bool = False
    description: str = ""

    @property
    def sweeps_sparsity(self) -> bool:
        """Whether the method has a ``sparsity`` to sweep (the accuracy-vs-sparsity curves)."""
        return any(p.name == "sparsity" for p in self.hyperparams)


def _iterative_check(p: Params) -> str | None:
    if p["steps"] > 1 and p["finetune_epochs"] == 0:
        return (
            f"steps: {p['steps']} pruning steps without fine-tuning between them prune exactly as one step does; "
            "set finetune_epochs > 0 or steps=1"
        )
    return None


def _label(name: str, p: Params, specs: tuple[HyperParam, ...]) -> str:
    changed = [f"{s.name}={s.text(p[s.name])}" for s in specs if s.name == "sparsity" or p[s.name] != s.default]
    return f"{name}:{','.join(changed)}" if changed else name


def _finetune(ctx: CompressionContext, p: Params, model: nn.Module, step: int, what: str) -> nn.Module:
    if p["finetune_epochs"] == 0:
        return model
    config = ctx.config.model_copy(update={"epochs": p["finetune_epochs"]})
    return ctx.train(config, model=model, label=f"{what}: fine-tuning after step {step} of {p['steps']}")


def _prune_unstructured(p: Params, student: Any, ctx: CompressionContext) -> list[Compressed]:
    model = copy.deepcopy(ctx.baseline)
    label = _label("prune_unstructured", p, _UNSTRUCTURED)
    for k in range(1, p["steps"] + 1):
        prune_unstructured(model, p["sparsity"] * k / p["steps"], scope=p["scope"])
        model = _finetune(ctx, p, model, k, label)
    make_permanent(model)
    return [Compressed(model, "prune_unstructured", label, "masked only", masked=True,
                       note="zeros in dense tensors: no fewer bytes or faster until stored or multiplied sparsely")]


def _prune_structured(p: Params, student: Any, ctx: CompressionContext) -> list[Compressed]:
    model, widths = ctx.baseline, hidden_widths(ctx.baseline)
    label = _label("prune_structured", p, _STRUCTURED)
    for k in range(1, p["steps"] + 1):
        share = p["sparsity"] * k / p["steps"]
        keep = [max(1, w - round(share * w)) for w in widths]
        model = _finetune(ctx, p, prune_structured(model, keep, norm=p["norm"]), k, label)
    kept = "/".join(str(w) for w in hidden_widths(model))
    return [Compressed(model, "prune_structured", label, "smaller",
                       note=f"hidden units {'/'.join(map(str, widths))} -> {kept}")]


def _structured_fits(p: Params, student: Any, model: nn.Module, data: Dataset) -> str | None:
    try:
        hidden_widths(model)
    except PruningError as err:
        return str(err)
    return None


def _quantized(mode: Literal["weight", "dynamic"], name: str, badge: str) -> Apply:
    def apply(p: Params, student: Any, ctx: CompressionContext) -> list[Compressed]:
        model, converted = quantize_int8(ctx.baseline, mode)
        total = len(weight_layers(ctx.baseline))
        note = "" if converted == total else (
            f"linear layers only: {converted} of {total} weight layers in int8, the convolutions stay float32"
        )
        return [Compressed(model, name, name, badge, note=note)]

    return apply


def _has_linear(p: Params, student: Any, model: nn.Module, data: Dataset) -> str | None:
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        return "quantize: torchao's quantize_ converts linear layers, and this model has none"
    return None


def _cast(dtype: torch.dtype, name: str) -> Apply:
    def apply(p: Params, student: Any, ctx: CompressionContext) -> list[Compressed]:
        return [Compressed(cast_weights(ctx.baseline, dtype), name, name, f"{name} weights",
                           note="inputs cast on the way in, outputs back to float32")]

    return apply


def _distill(p: Params, student: Any, ctx: CompressionContext) -> list[Compressed]:
    config = student_config(ctx.config, student)
    hooks = distillation_hooks(
        copy.deepcopy(ctx.baseline), loss_fn(ctx.data), temperature=p["temperature"], alpha=p["alpha"],
        classification=ctx.data.task == "classification",
    )
    shown = student.to_spec()
    label = f"distill:student={shown}" + "".join(f",{x}" for x in _changed(p, _DISTILL))
    distilled = ctx.train(config, hooks=hooks, label=f"student {shown} distilled")
    # The same student, budget and seed without a teacher: what the teacher's soft targets add.
    scratch = ctx.train(config, label=f"student {shown} from scratch")
    return [
        Compressed(distilled, "distill", label, "smaller student"),
        Compressed(scratch, "student_scratch", f"student {shown} from scratch", "smaller student",
                   note="the same student, budget and seed without the teacher"),
    ]


def _changed(p: Params, specs: tuple[HyperParam, ...]) -> list[str]:
    return [f"{s.name}={s.text(p[s.name])}" for s in specs if p[s.name] != s.default]


def student_config(config: RunConfig, student: ModelConfig) -> RunConfig:
    """The baseline's setup (optimizer, budget, seed, data) with the student's model."""
    return RunConfig.make(**{**config.model_dump(include=set(RunConfig.model_fields)), "model": student.model_dump()})


def _student_fits(p: Params, student: Any, model: nn.Module, data: Dataset) -> str | None:
    spec = get_model_spec(student.name)
    if spec.needs_images and data.image_shape is None:
        return f"distill.student: {student.name!r} needs image data; {data.name!r} has none"
    size = sum(t.numel() for t in build_model(student, data, 0).parameters())
    teacher = sum(t.numel() for t in model.parameters())
    if size > teacher:
        return (
            f"distill.student: {student.to_spec()!r} has {size:,} parameters, more than its teacher's {teacher:,}; "
            "a student must not be larger than the teacher"
        )
    return None


_SPARSITY = HyperParam(
    "sparsity", 0.5, 0.0, 1.0, high_inclusive=False, help="share of the weights (unstructured) or units (structured) removed",
)
_STEPS = HyperParam("steps", 1, 1, 20, kind="int", help="pruning steps up to the sparsity (iterative when > 1)")
_FINETUNE = HyperParam("finetune_epochs", 0, 0, 1000, kind="int", help="epochs of fine-tuning after each step")
_UNSTRUCTURED = (
    _SPARSITY,
    HyperParam("scope", "layer", kind="choice", choices=("layer", "global"),
               help="layer: each layer loses the same share; global: the smallest weights over all layers"),
    _STEPS, _FINETUNE,
)
_STRUCTURED = (
    _SPARSITY,
    HyperParam("norm", "l1", kind="choice", choices=("l1", "l2"), help="which units count as smallest"),
    _STEPS, _FINETUNE,
)
_DISTILL = (
    HyperParam("temperature", 4.0, 0.0, 100.0, low_inclusive=False, help="softens both output distributions"),
    HyperParam("alpha", 0.5, 0.0, 1.0, help="weight of the hard-label loss (1: ordinary training, no teacher)"),
)

COMPRESSIONS: dict[str, CompressionSpec] = {
    spec.name: spec
    for spec in (
        CompressionSpec(
            "prune_unstructured", "Unstructured magnitude pruning", "prune", _prune_unstructured, "masked only",
            _UNSTRUCTURED, check=_iterative_check,
            description="Zero the smallest-magnitude weights (per layer or globally); dense tensors keep their size.",
        ),
        CompressionSpec(
            "prune_structured", "Structured pruning (neurons / channels)", "prune", _prune_structured, "smaller",
            _STRUCTURED, check=_iterative_check, fits=_structured_fits,
            description="Remove the hidden neurons or channels of lowest L1/L2 norm: a really smaller model.",
        ),
        CompressionSpec(
            "quantize_int8_weight", "int8 weight-only (torchao)", "quantize",
            _quantized("weight", "quantize_int8_weight", "int8 weights"), "int8 weights", fits=_has_linear,
            description="torchao quantize_ with Int8WeightOnlyConfig: int8 linear weights, per-channel scales.",
        ),
        CompressionSpec(
            "quantize_int8_dynamic", "int8 dynamic activations + int8 weights (torchao)", "quantize",
            _quantized("dynamic", "quantize_int8_dynamic", "int8 weights + activations"), "int8 weights + activations",
            fits=_has_linear,
            description="torchao quantize_ with Int8DynamicActivationInt8WeightConfig: activations quantized per token at run time.",
        ),
        CompressionSpec(
            "fp16", "float16 weights", "cast", _cast(torch.float16, "fp16"), "fp16 weights",
            description="Cast every weight to float16 (half the bytes); inputs are cast on the way in.",
        ),
        CompressionSpec(
            "bf16", "bfloat16 weights", "cast", _cast(torch.bfloat16, "bf16"), "bf16 weights",
            description="Cast every weight to bfloat16 (half the bytes, float32's range, fewer mantissa bits).",
        ),
        CompressionSpec(
            "distill", "Knowledge distillation", "distill", _distill, "smaller student", _DISTILL,
            fits=_student_fits, needs_student=True,
            description="Train a smaller student on the baseline's soft targets, beside the same student trained without them.",
        ),
    )
}


def get_compression(name: str) -> CompressionSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(COMPRESSIONS, name, kind="method")
