"""Source and target tasks made from the bundled data sets (nothing is downloaded), one entry each.

A task splits a bundled set's training rows into a source half and a target pool, and its
validation rows the same way; the target side is shifted (other classes, a rotation, noise).
A *shifted* test set (the target's validation rows shifted further) measures robustness.
Everything is drawn from the data's split seed, never a run's seed: every arm and seed of a
transfer experiment sees the same data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from dlopt_core.catalog.datasets import Dataset, load_dataset
from dlopt_core.catalog.hyperparams import lookup

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Shift:
    """How a side of a task changes the base data: which classes (relabelled from 0), a rotation, noise."""

    classes: tuple[int, ...] | None = None  # None: every class, labels as they are
    degrees: float = 0.0
    noise: float = 0.0  # standard deviation, in standardised units


@dataclass(frozen=True)
class TaskSpec:
    """A transfer task: the bundled data set it is made from, and its source, target and shifted test."""

    name: str
    label: str
    dataset: str
    source: Shift
    target: Shift
    shifted: Shift  # the target's validation rows, shifted further
    description: str = ""


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "digits-rotated", "Digits -> rotated digits", "digits",
            Shift(), Shift(degrees=30.0), Shift(degrees=45.0),
            description="Pretrain on upright digits; fine-tune on digits rotated 30 degrees; test robustness at 45.",
        ),
        TaskSpec(
            "digits-split", "Digits 0-4 -> digits 5-9", "digits",
            Shift(classes=(0, 1, 2, 3, 4)), Shift(classes=(5, 6, 7, 8, 9)), Shift(classes=(5, 6, 7, 8, 9), degrees=20.0),
            description="Pretrain on digits 0-4; fine-tune on digits 5-9 (relabelled 0-4); test on 5-9 rotated 20 degrees.",
        ),
        TaskSpec(
            "digits-noisy", "Digits -> noisy digits", "digits",
            Shift(), Shift(noise=0.5), Shift(noise=1.0),
            description="Pretrain on clean digits; fine-tune on digits with noise (sd 0.5); test with noise sd 1.0.",
        ),
        TaskSpec(
            "moons-rotated", "Moons -> rotated moons", "moons",
            Shift(), Shift(degrees=40.0), Shift(degrees=70.0),
            description="Pretrain on two moons; fine-tune on the moons rotated 40 degrees; test at 70.",
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(TASKS, name, kind="task")


@dataclass(frozen=True)
class TaskData:
    """A task's data on one device: the source set, the target set (its training rows drawn to
    the fraction) and the shifted target test."""

    source: Dataset
    target: Dataset
    x_shifted: torch.Tensor
    y_shifted: torch.Tensor
    target_pool: int  # the target's training rows at fraction 1.0


def load_task(
    name: str, options: dict, *, val_fraction: float, split_seed: int, target_fraction: float, device: torch.device,
) -> TaskData:
    """Task ``name`` made from its bundled data set (``options``: that set's, e.g. moons' noise)."""
    if not 0.0 < target_fraction <= 1.0:
        raise ValueError(f"target_fraction: must be in (0, 1], got {target_fraction!r}")
    key = tuple(sorted(options.items()))
    (xs, ys, xsv, ysv), (xt, yt, xtv, ytv), (xh, yh), shape = _arrays(name, key, val_fraction, split_seed)
    # The fraction's rows: a prefix of one permutation, so a larger fraction holds every smaller one.
    order = np.random.default_rng([split_seed, 1]).permutation(len(xt))
    n = min(len(xt), max(2, round(target_fraction * len(xt))))
    keep = np.sort(order[:n])
    n_classes = int(max(ys.max(), yt.max())) + 1

    def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(a, dtype=dtype, device=device)

    def dataset(side: str, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> Dataset:
        return Dataset(
            f"{name}:{side}", "classification", tensor(x, torch.float32), tensor(y, torch.long),
            tensor(xv, torch.float32), tensor(yv, torch.long), n_classes, shape,
        )

    return TaskData(
        dataset("source", xs, ys, xsv, ysv), dataset("target", xt[keep], yt[keep], xtv, ytv),
        tensor(xh, torch.float32), tensor(yh, torch.long), len(xt),
    )


@functools.lru_cache(maxsize=16)
def _arrays(name: str, options: tuple, val_fraction: float, split_seed: int) -> tuple:
    # Cached: every arm and seed asks, and rotating a thousand images takes ~0.1 s.
    spec = get_task(name)
    base = load_dataset(
        spec.dataset, dict(options), val_fraction=val_fraction, split_seed=split_seed, device=torch.device("cpu")
    )
    if base.task != "classification":
        raise ValueError(f"task: {name!r} needs a classification data set, {spec.dataset!r} is not one")
    x, y, xv, yv = (t.numpy() for t in (base.x_train, base.y_train, base.x_val, base.y_val))
    halves = np.random.default_rng([split_seed, 0])
    # Disjoint rows: the target never holds an image the source model was trained on.
    train_src, train_tgt = _halves(len(x), halves, split=spec.source.classes is None)
    val_src, val_tgt = _halves(len(xv), halves, split=spec.source.classes is None)
    shape = base.image_shape
    noise = np.random.default_rng([split_seed, 2])
    source = (*_shifted(x[train_src], y[train_src], spec.source, shape, noise),
              *_shifted(xv[val_src], yv[val_src], spec.source, shape, noise))
    target = (*_shifted(x[train_tgt], y[train_tgt], spec.target, shape, noise),
              *_shifted(xv[val_tgt], yv[val_tgt], spec.target, shape, noise))
    shifted = _shifted(xv[val_tgt], yv[val_tgt], spec.shifted, shape, noise)
    return source, target, shifted, shape


def _halves(n: int, rng: np.random.Generator, *, split: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of ``n`` rows; every row to both when the classes already split them."""
    if not split:
        return np.arange(n), np.arange(n)
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def _shifted(
    x: np.ndarray, y: np.ndarray, shift: Shift, shape: tuple[int, int, int] | None, rng: np.random.Generator,
) -> Arrays:
    if shift.classes is not None:
        rows = np.isin(y, shift.classes)
        relabel = {c: i for i, c in enumerate(shift.classes)}
        x, y = x[rows], np.array([relabel[int(c)] for c in y[rows]], dtype=np.int64)
    if shift.degrees:
        x = _rotate(x, shift.degrees, shape)
    if shift.noise:
        x = x + rng.normal(0.0, shift.noise, x.shape)
    return x.astype(np.float64), y


def _rotate(x: np.ndarray, degrees: float, shape: tuple[int, int, int] | None) -> np.ndarray:
    """Rows rotated by ``degrees`` counterclockwise: 2-D points about the origin, or images about their centre."""
    if shape is None:
        if x.shape[1] != 2:
            raise ValueError(f"task: a rotation needs 2-D points or images, got {x.shape[1]} features")
        a = math.radians(degrees)
        turn = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        return x @ turn
    images = x.reshape(len(x), *shape)
    # The blank background, as standardisation left it, fills the corners a rotation uncovers.
    background = float(x.min())
    out = ndimage.rotate(images, degrees, axes=(2, 3), reshape=False, order=1, mode="constant", cval=background)
    return out.reshape(len(x), -1)

