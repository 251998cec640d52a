"""Continual-learning measures read from an accuracy matrix, as the papers define them.

``R[i][j]`` is the test accuracy on task j after training task i (every j, the tasks to come
included). A run's matrix grows a row per finished task; each measure is taken after the last
row there is (k rows: "after task k"), so a page can show them while the run goes on. ``b[j]``
is task j's accuracy at the model's random initialisation.

- average accuracy (Chaudhry et al. 2018): A_k = 1/k Σ_{j<k} R[k-1][j], the tasks seen so far;
- forgetting (Chaudhry et al. 2018, "Riemannian walk"): F_k = 1/(k-1) Σ_{j<k-1} max_{l<k-1} R[l][j] − R[k-1][j];
- backward transfer (Lopez-Paz & Ranzato 2017, GEM): BWT = 1/(k-1) Σ_{j<k-1} R[k-1][j] − R[j][j];
- forward transfer (ibid.): FWT = 1/(k-1) Σ_{0<j<k} R[j-1][j] − b[j];
- anytime accuracy: A_i after each task i, the curve of average accuracy over the sequence.

With k = T rows these are the papers' final numbers. Forgetting, BWT and FWT need two rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Matrix = Sequence[Sequence[float]]


def average_accuracy(R: Matrix) -> float | None:
    """Mean accuracy over the tasks trained so far, after the last of them."""
    k = len(R)
    return statistics.fmean(R[k - 1][:k]) if k else None


def forgetting(R: Matrix) -> float | None:
    """Mean over the earlier tasks of their best accuracy before the last task less their accuracy after it."""
    k = len(R)
    if k < 2:
        return None
    return statistics.fmean(max(R[l][j] for l in range(k - 1)) - R[k - 1][j] for j in range(k - 1))


def backward_transfer(R: Matrix) -> float | None:
    """Mean change of each earlier task's accuracy from just after it trained to after the last task."""
    k = len(R)
    if k < 2:
        return None
    return statistics.fmean(R[k - 1][j] - R[j][j] for j in range(k - 1))


def forward_transfer(R: Matrix, b: Sequence[float]) -> float | None:
    """Mean accuracy on each task before it trained (after the task before) less its random-init accuracy."""
    k = len(R)
    if k < 2:
        return None
    return statistics.fmean(R[j - 1][j] - b[j] for j in range(1, k))


def anytime_accuracy(R: Matrix) -> list[float]:
    """After each task i, the mean accuracy on tasks 0..i."""
    return [statistics.fmean(R[i][: i + 1]) for i in range(len(R))]
