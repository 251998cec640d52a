"""The step seam: one function per run, built once, from "here is a batch" to "the weights moved".

Batch transform (augmentation, mixing) -> forward and loss (+ an extra term, e.g.
distillation) under autocast -> backward (scaled for fp16) -> gradient clipping -> optimizer
step (with a closure for L-BFGS). Each technique is an option here, never a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
ExtraLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

AUTOCAST: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class GradEvals:
    """Loss-and-gradient evaluations so far: an L-BFGS step makes several."""

    n: int = 0


@dataclass(frozen=True)
class StepHooks:
    """What techniques plug into a step; every hook is optional.

    ``batch_transform(x, y, generator)`` returns the batch to train on (it may return soft
    targets, which cross-entropy accepts); ``extra_loss(x, output, y)`` is added to the loss.
    """

    batch_transform: BatchTransform | None = None
    extra_loss: ExtraLoss | None = None


def build_step(
    model: torch.nn.Module,
    optimizer: Any,
    criterion: Criterion,
    *,
    needs_closure: bool = False,
    hooks: StepHooks = StepHooks(),
    precision: Precision = "fp32",
    grad_clip: float | None = None,
    device_type: str = "cpu",
    seed: int = 0,
    grad_evals: GradEvals | None = None,
) -> StepFn:
    """``step(x, y) -> loss`` (detached) for one batch; the optimizer has stepped afterwards.

    With a closure, ``grad_evals`` (if given) counts every evaluation the optimizer asks for.
    """
    autocast_dtype = AUTOCAST[precision]
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
    # A combined optimizer (Muon + AdamW) is stepped part by part for the scaler.
    parts = getattr(optimizer, "optimizers", [optimizer])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    transform, extra = hooks.batch_transform, hooks.extra_loss
    # Its own generator, so a transform never shifts the data order or the initial weights.
    transform_gen = torch.Generator().manual_seed(seed + 7919)

    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = model(x)
        loss = criterion(out, y)
        return loss + extra(x, out, y) if extra is not None else loss

    def forward_autocast(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=autocast_dtype):
            out = model(x)
        # The loss in fp32: a low-precision log-softmax loses the small differences late in training.
        loss = criterion(out.float(), y)
        return loss + extra(x, out.float(), y) if extra is not None else loss

    loss_of = forward if autocast_dtype is None else forward_autocast

    def clip() -> None:
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)

    if needs_closure:

        def step_with_closure(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if transform is not None:
                x, y = transform(x, y, transform_gen)

            def closure() -> torch.Tensor:
                if grad_evals is not None:
                    grad_evals.n += 1
                optimizer.zero_grad()
                loss = loss_of(x, y)
                loss.backward()
                clip()
                return loss

            return optimizer.step(closure).detach()

        return step_with_closure

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if transform is not None:
            x, y = transform(x, y, transform_gen)
        optimizer.zero_grad()
        loss = loss_of(x, y)
        if scaler is None:
            loss.backward()
            clip()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                for part in parts:
                    scaler.unscale_(part)
                clip()
            for part in parts:
                scaler.step(part)
            scaler.update()
        return loss.detach()

    return step
