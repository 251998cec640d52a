"""PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning").

For each task i, and each other task j in random order: when ``g_i . g_j < 0`` the two
conflict, and ``g_i`` is projected onto the normal plane of ``g_j``:
``g_i <- g_i - (g_i . g_j / ||g_j||^2) g_j``. The shared parameters then get the sum of the
projected gradients. Projections are against the other tasks' *original* gradients, as in
the paper's Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pcgrad(grads: Sequence[torch.Tensor], *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Each task's flat gradient with its conflicts with the others projected away.

    Args:
        grads: one flat gradient per task, all the same length.
        generator: draws the order of the other tasks (the paper shuffles it each step).

    Returns:
        The projected gradients, in the tasks' order; a gradient that conflicts with no
        other is returned unchanged (as a copy).
    """
    projected = []
    for i, g in enumerate(grads):
        g = g.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            other = grads[j]
            dot = torch.dot(g, other)
            if dot < 0:  # a zero gradient has dot 0: nothing to divide by
                g -= dot / torch.dot(other, other) * other
        projected.append(g)
    return projected


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The cosine between two flat gradients (0 when either is zero)."""
    norms = float(a.norm() * b.norm())
    return float(torch.dot(a, b)) / norms if norms > 0 else 0.0
