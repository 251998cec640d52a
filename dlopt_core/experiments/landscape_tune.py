"""Tuning each optimizer's learning rate on a landscape, as background work.

A job like every other (:mod:`dlopt_core.runner`): it runs in a worker, survives a reload,
is counted in the sidebar and can be stopped; each optimizer's search reports as it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlopt_core.config import config_hash
from dlopt_core.experiments.landscape import LandscapeConfig, LrSearch, search_lr
from dlopt_core.runner.work import ConfigWork, Control, Emit


def tune_key(config: LandscapeConfig) -> str:
    """The job key of tuning ``config``'s optimizers (the same in every process)."""
    return f"landscape-tune-{config_hash(config)}"


@dataclass(frozen=True)
class LrFound:
    """The search of optimizer ``index`` (in ``config.optimizers``) ended."""

    index: int
    search: LrSearch


class LandscapeTuneWork(ConfigWork):
    """:func:`search_lr` for each optimizer of a landscape, one after the other.

    ``found`` maps an optimizer's index in ``config.optimizers`` to its search, filled as each
    ends. It logs nothing to MLflow.
    """

    config: LandscapeConfig

    def __init__(self, config: LandscapeConfig) -> None:
        super().__init__(config)
        self.key = tune_key(config)
        self.label = f"tune landscape lrs {self.key.removeprefix('landscape-tune-')}"
        self.found: dict[int, LrSearch] = {}

    @property
    def progress(self) -> float:
        return len(self.found) / len(self.config.optimizers)

    def run(self, emit: Emit, control: Control) -> None:
        c = self.config
        for index, opt in enumerate(c.optimizers):
            if control.should_stop():
                return
            found = search_lr(
                c.test_function, opt, start=c.start_point, steps=c.steps, noise=c.noise, seed=c.seed, params=c.params,
            )
            emit(LrFound(index, found), urgent=True)

    def apply(self, event: LrFound) -> None:
        """Take one event of :meth:`run` (in the server)."""
        match event:
            case LrFound(index, search):
                self.found[index] = search
