"""Knowledge distillation as a term of the training step (Hinton et al., 2015).

The student's loss is ``alpha * hard + (1 - alpha) * soft``: ``hard`` is the ordinary loss on
the labels; ``soft`` is ``T^2 * KL(teacher_T || student_T)`` between the softened output
distributions (for regression, the squared distance to the teacher's output). The ``T^2``
keeps the soft gradients' scale independent of the temperature. The step seam adds an extra
term to the hard loss, so the term here is ``(1 - alpha) * (soft - hard)``; at ``alpha = 1``
there is no term at all and the step is the ordinary one, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dlopt_core.engine.step import Criterion, StepHooks


def distillation_hooks(
    teacher: nn.Module, criterion: Criterion, *, temperature: float, alpha: float, classification: bool
) -> StepHooks:
    """Step hooks that add the soft-target term for ``teacher`` (kept in eval mode, never trained)."""
    if alpha >= 1.0:
        return StepHooks()
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    t = temperature

    def extra(x: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(x).float()
        if classification:
            soft = F.kl_div(
                F.log_softmax(out / t, dim=1), F.log_softmax(target / t, dim=1), log_target=True, reduction="batchmean"
            ) * (t * t)
        else:
            soft = F.mse_loss(out, target)
        return (1.0 - alpha) * (soft - criterion(out, y))

    return StepHooks(extra_loss=extra)
