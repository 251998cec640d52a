"""The sequential engine: every run is its own iterator, advanced in turn.

It turns K run iterators into one stream of ``(run index, record)``, so every curve grows
together while a comparison is watched live. A batched engine will feed the same stream.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.config import RunConfig
from dlopt_core.engine.loop import run
from dlopt_core.engine.records import Measures, Record, Status
from dlopt_core.engine.step import StepHooks


def failed_record(exc: BaseException | str) -> Record:
    """What a run that raised ``exc`` (or failed for the reason given) reports."""
    error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return Record(0, 0.0, 0, 0.0, 0.0, None, status=Status.FAILED, error=error)


class SequentialEngine:
    """Interleaves per-run iterators; :meth:`stop` ends one run without touching the others."""

    def __init__(
        self, configs: Sequence[RunConfig], *, data: Dataset, hooks: StepHooks = StepHooks(),
        measures: Measures = Measures(),
    ) -> None:
        self._active: dict[int, Iterator[Record]] = {
            i: run(config, data=data, hooks=hooks, train_loss=measures.train_loss, weights=i in measures.weights)
            for i, config in enumerate(configs)
        }

    @property
    def active(self) -> list[int]:
        return list(self._active)

    def stop(self, index: int) -> bool:
        """Close run ``index``; ``False`` if it had already ended."""
        iterator = self._active.pop(index, None)
        if iterator is None:
            return False
        iterator.close()
        return True

    def close(self) -> None:
        for index in self.active:
            self.stop(index)

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        while self._active:
            for index in self.active:
                iterator = self._active.get(index)
                if iterator is None:  # stopped by the consumer meanwhile
                    continue
                try:
                    rec = next(iterator)
                except Exception as exc:  # one crashing run must not take the others down
                    traceback.print_exc()
                    self._active.pop(index, None)
                    yield index, failed_record(exc)
                    continue
                if rec.status.ended:
                    self._active.pop(index, None)
                yield index, rec
