"""Tuning each optimizer's learning rate on a landscape, as background work.

A job like every other (:mod:`dlopt_core.runner`): it runs in a worker, survives a reload,
is counted in the sidebar and can be stopped; each optimizer's search reports as it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlopt_core.config import config_hash
from dlopt_core.engine.records import Status
from dlopt_core.experiments.landscape import LandscapeConfig, LrSearch, search_lr
from dlopt_core.runner.work import Control, Emit


def tune_key(config: LandscapeConfig) -> str:
    """The job key of tuning ``config``'s optimizers (the same in every process)."""
    return f"landscape-tune-{config_hash(config)}"


@dataclass(frozen=True)
class LrFound:
    """The search of optimizer ``index`` (in ``config.optimizers``) ended."""

    index: int
    search: LrSearch


class LandscapeTuneWork:
    """:func:`search_lr` for each optimizer of a landscape, one after the other.

    ``found`` maps an optimizer's index in ``config.optimizers`` to its search, filled as each
    ends. It logs nothing to MLflow (``tracking_errors`` and ``unwritten`` stay empty).
    """

    def __init__(self, config: LandscapeConfig) -> None:
        self.config = config
        self.key = tune_key(config)
        self.label = f"tune landscape lrs {self.key.removeprefix('landscape-tune-')}"
        self.found: dict[int, LrSearch] = {}
        self.status = Status.PENDING
        self.tracking_errors: list[str] = []
        self.unwritten = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

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

    def finish(self, status: Status) -> None:
        self.status = status
