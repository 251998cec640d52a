"""What a run yields, and the one status vocabulary used from the core to MLflow and the page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple


class Status(StrEnum):
    """Where a run (or a job) is. The same words on the page, in the CLI and in MLflow tags."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        # Asked several times per step: a set lookup, not enum member lookups (0.3 us each).
        return self in _ENDED

    @property
    def completed(self) -> bool:
        """It ran its whole budget or stopped for a reason of its own (not stopped from outside)."""
        return self in _COMPLETED


# A loss this many times the run's starting loss has diverged, finite or not: SGD at lr=3 on
# digits climbs to 1e21 without overflowing, and "finished" would tell a student it trained.
DIVERGENCE_FACTOR = 1e6


def divergence_limit(initial_loss: float) -> float:
    """The loss above which a run that started at ``initial_loss`` counts as diverged."""
    return DIVERGENCE_FACTOR * initial_loss if initial_loss > 0 and initial_loss < float("inf") else float("inf")


_ENDED = frozenset({Status.FINISHED, Status.DIVERGED, Status.PRUNED, Status.CANCELLED, Status.FAILED})
_COMPLETED = frozenset({Status.FINISHED, Status.DIVERGED})


class Record(NamedTuple):
    """One point of a run. Evaluation records also carry train/validation metrics.

    ``train_loss`` is the loss on the whole train set, measured like ``val_loss`` (eval mode,
    at the evaluation's step); ``running_loss`` is the sample-weighted mean mini-batch loss
    since the previous evaluation, while the weights moved (train mode: dropout on); at
    step 0 there is none. ``val_metric`` is accuracy or R^2. ``grad_evals`` counts loss and
    gradient evaluations so far where an optimizer takes more than one per step (L-BFGS);
    otherwise it is ``None`` (one per step). ``wall_time`` is the run's own training time:
    evaluation excluded. A NamedTuple because one is made every step: several times cheaper
    than a dataclass.
    """

    step: int
    epoch: float
    samples: int
    wall_time: float
    lr: float
    batch_loss: float | None
    train_loss: float | None = None
    val_loss: float | None = None
    val_metric: float | None = None
    status: Status = Status.RUNNING
    error: str | None = None
    running_loss: float | None = None
    grad_evals: int | None = None
    # At evaluations of a 2-D classification run: the model's weights (name -> numpy array),
    # so a page can draw its decision boundary live. Tiny for such models; None elsewhere.
    weights: dict[str, Any] | None = None
    # On a finished run's last record: its final weights (state_dict names -> NumPy arrays), so
    # a tracking observer can store them; None on every other record.
    state: dict[str, Any] | None = None

    @property
    def is_eval(self) -> bool:
        return self.val_loss is not None


@dataclass(frozen=True)
class Measures:
    """What evaluations measure beside the validation set.

    ``train_loss``: the whole train set at each evaluation (a sweep of thousands of runs
    reads only validation losses and skips it: it cost 1.8x there). ``weights``: indices of
    the runs whose evaluations carry their weights (2-D classification, small models only),
    for a page's decision-boundary view.
    """

    train_loss: bool = True
    weights: frozenset[int] = frozenset()

    def part(self, members: Sequence[int]) -> Measures:
        """The same measures for an engine that sees ``members`` as its runs 0, 1, ..."""
        return Measures(self.train_loss, frozenset(j for j, i in enumerate(members) if i in self.weights))
