"""Which engine trains which runs of a comparison, and one stream over all of them.

``auto`` batches every group of two or more runs that can share a stacked model and trains
the rest on their own; ``batched`` batches every run that can be (even alone); and
``sequential`` batches nothing. On a CPU with several cores a batched group is split over
forked processes, one per core (:mod:`dlopt_core.engine.split`). Runs that cannot be
batched (L-BFGS, Muon, a CNN, fp16) always fall back to the sequential engine, inside the
same stream.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from typing import Protocol

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.config import EngineChoice, RunConfig
from dlopt_core.engine.batched import BatchedEngine, why_not_batched
from dlopt_core.engine.loop import steps_per_epoch
from dlopt_core.engine.records import Measures, Record
from dlopt_core.engine.sequential import SequentialEngine, failed_record
from dlopt_core.engine.split import SplitEngine, cpu_parts

ENGINES: tuple[EngineChoice, ...] = ("auto", "batched", "sequential")


class Engine(Protocol):
    """A stream of ``(run index, record)`` in which one run can be stopped alone."""

    @property
    def active(self) -> list[int]: ...

    def stop(self, index: int) -> bool: ...

    def close(self) -> None: ...

    def __iter__(self) -> Iterator[tuple[int, Record]]: ...


def plan(configs: Sequence[RunConfig], choice: EngineChoice = "auto") -> list[tuple[str, list[int]]]:
    """Groups of run indices, each with the engine that trains it (``batched``/``sequential``)."""
    groups: dict[tuple[object, ...], list[int]] = {}
    alone: list[int] = []
    for i, c in enumerate(configs):
        if choice == "sequential" or why_not_batched(c) is not None:
            alone.append(i)
        else:
            key = (c.model.model_dump_json(), c.batch_size, c.epochs, c.precision, c.grad_clip, c.device, c.deterministic)
            groups.setdefault(key, []).append(i)
    out: list[tuple[str, list[int]]] = []
    for members in groups.values():
        if choice == "auto" and len(members) < 2:  # a stack of one gains nothing
            alone.extend(members)
        else:
            out.append(("batched", members))
    if alone:
        out.append(("sequential", sorted(alone)))
    return out


class MergedEngine:
    """Several engines as one stream, advanced in turn; indices are the comparison's."""

    def __init__(self, parts: Sequence[tuple[str, list[int], Engine]]) -> None:
        self.parts = list(parts)
        self.engine_of = {i: name for name, members, _ in parts for i in members}

    @property
    def active(self) -> list[int]:
        return sorted(members[j] for _, members, e in self.parts for j in e.active)

    def stop(self, index: int) -> bool:
        for _, members, engine in self.parts:
            if index in members:
                return engine.stop(members.index(index))
        return False

    def close(self) -> None:
        for _, _, engine in self.parts:
            engine.close()

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        streams = {n: iter(engine) for n, (_, _, engine) in enumerate(self.parts)}
        while streams:
            for n in list(streams):
                members, engine = self.parts[n][1], self.parts[n][2]
                try:
                    local, rec = next(streams[n])
                except StopIteration:
                    del streams[n]
                    continue
                except Exception as exc:  # a crashing batch fails its own runs, not the others'
                    traceback.print_exc()
                    del streams[n]
                    for local in engine.active:
                        engine.stop(local)
                        yield members[local], failed_record(exc)
                    continue
                yield members[local], rec


def _steps(config: RunConfig, data: Dataset) -> int:
    return config.epochs * steps_per_epoch(config, len(data.x_train))


def build_engine(
    configs: Sequence[RunConfig], *, data: Dataset, choice: EngineChoice = "auto", measures: Measures = Measures()
) -> MergedEngine:
    """One stream over ``configs``, each group on the engine :func:`plan` chose."""
    parts: list[tuple[str, list[int], Engine]] = []
    for name, members in plan(configs, choice):
        chosen = [configs[i] for i in members]
        mine = measures.part(members)
        engine: Engine
        if name == "sequential":
            engine = SequentialEngine(chosen, data=data, measures=mine)
        elif (processes := cpu_parts(len(chosen), data.x_train.device.type, _steps(chosen[0], data))) > 1:
            engine = SplitEngine(chosen, data=data, parts=processes, measures=mine)
        else:
            engine = BatchedEngine(chosen, data=data, measures=mine)
        parts.append((name, members, engine))
    return MergedEngine(parts)
