"""Continual learning: task sequences made from the digits, strategies (naive, replay, EWC) and
the measures of an accuracy matrix (average accuracy, forgetting, backward and forward transfer)."""

from dlopt_core.continual.measures import (
    anytime_accuracy,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
)
from dlopt_core.continual.sequences import SEQUENCES, SequenceSpec, Task, get_sequence, load_sequence
from dlopt_core.continual.strategies import (
    EWC,
    STRATEGIES,
    Replay,
    ReplayBuffer,
    Strategy,
    StrategySettings,
    StrategySpec,
    fisher_diagonal,
    get_strategy,
)

__all__ = [
    "EWC", "SEQUENCES", "STRATEGIES", "Replay", "ReplayBuffer", "SequenceSpec", "Strategy", "StrategySettings",
    "StrategySpec", "Task", "anytime_accuracy", "average_accuracy", "backward_transfer", "fisher_diagonal",
    "forgetting", "forward_transfer", "get_sequence", "get_strategy", "load_sequence",
]
