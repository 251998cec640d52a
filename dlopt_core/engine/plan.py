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
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.config import EngineChoice, RunConfig
from dlopt_core.engine.batched import BatchedEngine, why_not_batched
from dlopt_core.engine.budget import step_budget
from dlopt_core.engine.loop import data_key
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
            key = (
                c.model.model_dump_json(), c.batch_size, c.epochs, c.precision, c.grad_clip, c.device, c.deterministic,
                data_key(c),  # a stacked pass trains every member on one data set
            )
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


def build_engine(
    configs: Sequence[RunConfig], *, data: Dataset | Callable[[RunConfig], Dataset], choice: EngineChoice = "auto",
    measures: Measures = Measures(),
) -> MergedEngine:
    """One stream over ``configs``, each group on the engine :func:`plan` chose.

    ``data``: the data set every run trains on, or a function giving each run's (runs whose
    data differ, a reduced training set say, train in separate groups).
    """
    load = data if callable(data) else (lambda _: data)
    parts: list[tuple[str, list[int], Engine]] = []
    for name, planned in plan(configs, choice):
        by_data: dict[str, list[int]] = {}
        for i in planned:
            by_data.setdefault(data_key(configs[i]), []).append(i)
        for members in by_data.values():
            chosen = [configs[i] for i in members]
            part_data = load(chosen[0])
            mine = measures.part(members)
            engine: Engine
            if name == "sequential":
                engine = SequentialEngine(chosen, data=part_data, measures=mine)
            elif (processes := cpu_parts(len(chosen), part_data.x_train.device.type, step_budget(chosen[0], len(part_data.x_train)).total_steps)) > 1:
                engine = SplitEngine(chosen, data=part_data, parts=processes, measures=mine)
            else:
                engine = BatchedEngine(chosen, data=part_data, measures=mine)
            parts.append((name, members, engine))
    return MergedEngine(parts)
