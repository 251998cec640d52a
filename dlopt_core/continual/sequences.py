"""Task sequences made from the bundled digits (nothing is downloaded), one registry entry each.

A sequence is a tuple of :class:`Task`: each has its own training rows and its own test rows,
and every task keeps the digits' ten labels, so one model with one shared 10-way head learns
them all in turn.

- ``split-digits`` is **class-incremental**: task i holds the digits 2i and 2i+1 (0/1, 2/3, ...),
  labels as they are, and no task id is given at test time: the 10-way head must tell a 0 from
  a 9 after the last task as well. (Task-incremental scoring, masking the head to the task's
  two classes, would hide most of the forgetting this page is about.)
- ``permuted-digits`` and ``rotated-digits`` are domain-incremental: every task has all ten
  classes, its pixels permuted by a fixed permutation (task 0: none) or rotated by a growing
  angle. Their tasks train on disjoint fifths of the training rows; each tests on every
  validation row, permuted or rotated its way.

Everything is drawn from the sequence's ``seed`` (the digits' train/test split, the
permutations, the rows each task trains on), never from a run's seed: every optimizer,
strategy and seed of an experiment sees the same tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from dlopt_core.catalog.datasets import Dataset, load_dataset
from dlopt_core.catalog.hyperparams import lookup

DATASET = "digits"
N_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
VAL_FRACTION = 0.2
ROTATION_STEP = 30.0  # degrees more per task of rotated-digits

Scenario = Literal["class-incremental", "domain-incremental"]
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train x, y; test x, y


@dataclass(frozen=True)
class TaskArrays:
    """One task as NumPy arrays: its own train and test rows."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class SequenceSpec:
    """A task sequence: how its tasks are made from the digits' split, and what it tests."""

    name: str
    label: str
    make: Callable[[Arrays, int], list[TaskArrays]]
    scenario: Scenario
    tasks: tuple[str, ...]  # each task's label, in training order
    description: str = ""

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True)
class Task:
    """One task on a device: ``data``'s validation rows are the task's test rows."""

    index: int
    label: str
    data: Dataset


def _split(arrays: Arrays, seed: int) -> list[TaskArrays]:
    x, y, xt, yt = arrays
    tasks = []
    for i in range(N_CLASSES // 2):
        classes = (2 * i, 2 * i + 1)
        rows, test = np.isin(y, classes), np.isin(yt, classes)
        tasks.append(TaskArrays(x[rows], y[rows], xt[test], yt[test]))
    return tasks


def _fifths(n: int, seed: int, n_tasks: int) -> list[np.ndarray]:
    # Disjoint training rows per task: a task never trains on an image another task saw.
    order = np.random.default_rng([seed, 100]).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_tasks)]


def _permuted(arrays: Arrays, seed: int) -> list[TaskArrays]:
    x, y, xt, yt = arrays
    tasks = []
    for i, rows in enumerate(_fifths(len(x), seed, 5)):
        perm = np.arange(x.shape[1]) if i == 0 else np.random.default_rng([seed, i]).permutation(x.shape[1])
        tasks.append(TaskArrays(x[rows][:, perm], y[rows], xt[:, perm], yt))
    return tasks


def rotate_images(x: np.ndarray, degrees: float) -> np.ndarray:
    """Rows of 8x8 images rotated ``degrees`` counterclockwise about their centre."""
    if not degrees:
        return x
    images = x.reshape(len(x), *IMAGE_SHAPE)
    # The blank background, as standardisation left it, fills the corners a rotation uncovers.
    out = ndimage.rotate(images, degrees, axes=(2, 3), reshape=False, order=1, mode="constant", cval=float(x.min()))
    return out.reshape(len(x), -1)


def _rotated(arrays: Arrays, seed: int) -> list[TaskArrays]:
    x, y, xt, yt = arrays
    tasks = []
    for i, rows in enumerate(_fifths(len(x), seed, 5)):
        degrees = i * ROTATION_STEP
        tasks.append(TaskArrays(rotate_images(x[rows], degrees), y[rows],
                                rotate_images(xt, degrees), yt))
    return tasks


SEQUENCES: dict[str, SequenceSpec] = {
    spec.name: spec
    for spec in (
        SequenceSpec(
            "split-digits", "Split digits (0/1, 2/3, ...)", _split, "class-incremental",
            tuple(f"digits {2 * i}/{2 * i + 1}" for i in range(N_CLASSES // 2)),
            description="Five tasks of two digits each, one shared 10-way head, no task id at test time.",
        ),
        SequenceSpec(
            "permuted-digits", "Permuted digits", _permuted, "domain-incremental",
            ("digits", *(f"permutation {i}" for i in range(1, 5))),
            description="Five tasks of all ten digits, each with its own fixed pixel permutation (task 0: none).",
        ),
        SequenceSpec(
            "rotated-digits", "Rotated digits", _rotated, "domain-incremental",
            tuple(f"rotated {i * ROTATION_STEP:g}°" for i in range(5)),
            description=f"Five tasks of all ten digits, rotated {ROTATION_STEP:g}° more per task (0° to "
            f"{4 * ROTATION_STEP:g}°).",
        ),
    )
}


def get_sequence(name: str) -> SequenceSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(SEQUENCES, name, kind="sequence")


@functools.lru_cache(maxsize=8)
def sequence_arrays(name: str, seed: int) -> tuple[TaskArrays, ...]:
    """Sequence ``name``'s tasks as arrays, made from ``seed`` (cached: every run of an experiment asks)."""
    spec = get_sequence(name)
    base = load_dataset(DATASET, {}, val_fraction=VAL_FRACTION, split_seed=seed, device=torch.device("cpu"))
    arrays = tuple(t.numpy() for t in (base.x_train, base.y_train, base.x_val, base.y_val))
    return tuple(spec.make(arrays, seed))


def load_sequence(name: str, *, seed: int, device: torch.device) -> tuple[Task, ...]:
    """Sequence ``name``'s tasks on ``device``, each a :class:`Dataset` of its train and test rows."""

    def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(a, dtype=dtype, device=device)

    return tuple(
        Task(i, label, Dataset(
            f"{name}:{i}", "classification", tensor(t.x_train, torch.float32), tensor(t.y_train, torch.long),
            tensor(t.x_test, torch.float32), tensor(t.y_test, torch.long), N_CLASSES, IMAGE_SHAPE,
        ))
        for i, (label, t) in enumerate(zip(get_sequence(name).tasks, sequence_arrays(name, seed), strict=True))
    )
