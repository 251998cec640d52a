"""Datasets as tensors already on the device: small data needs no DataLoader.

Every set is split train/validation deterministically (by ``split_seed``, not the run seed,
so all runs of a comparison see the same data) and standardised with train statistics only.
Sizes are bounded for a shared server: a generated set holds at most :data:`MAX_VALUES`
numbers, and split arrays are cached up to :data:`CACHE_BYTES`.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn import datasets as skd

from dlopt_core.catalog.hyperparams import HyperParam, check_params, lookup
from dlopt_core.errors import shown
from dlopt_core.uploads.parse import MAX_VALUES, USER_NAME, Arrays, Task
from dlopt_core.uploads.store import read_arrays, read_description, user_datasets_dir

Check = Callable[[dict[str, Any]], str | None]
# Split arrays kept for reuse (least recently used dropped first): 256 MB holds about ten
# sets at MAX_VALUES and every bundled one.
CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: how to make it, its task and its options."""

    name: str
    label: str
    make: Callable[[dict[str, Any]], Arrays]
    task: Task
    hyperparams: tuple[HyperParam, ...] = ()
    check: Check | None = None
    n_samples: int | None = None  # rows of a bundled set; generated sets take options["n_samples"]
    image_shape: tuple[int, int, int] | None = None
    standardize: bool = True
    description: str = ""
    shows: str = ""  # one line: what comparing optimizers on it shows


@dataclass(frozen=True)
class Dataset:
    """Train and validation tensors on one device, ready to index."""

    name: str
    task: Task
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int
    image_shape: tuple[int, int, int] | None

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" else 1


_N = HyperParam("n_samples", 1000, 20, 200_000, kind="int", help="number of samples")
_NOISE = HyperParam("noise", 0.2, 0.0, 10.0, help="standard deviation of added noise")


def _spirals(p: dict[str, Any]) -> Arrays:
    rng = np.random.default_rng(p["seed"])
    n = p["n_samples"]
    first, second = n - n // 2, n // 2  # an odd count puts the extra point on the first arm
    t = np.sqrt(rng.uniform(0.0, 1.0, first)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm[:second]]) + rng.normal(0.0, p["noise"] / 10, (n, 2))
    y = np.concatenate([np.zeros(first, int), np.ones(second, int)])
    return x, y


def _linear(p: dict[str, Any]) -> Arrays:
    # The tutorial's worked example: y = X theta + noise.
    rng = np.random.default_rng(p["seed"])
    x = rng.normal(size=(p["n_samples"], p["n_features"]))
    theta = rng.normal(size=p["n_features"])
    return x, x @ theta + 1.0 + rng.normal(0.0, p["noise"], p["n_samples"])


def _ill_conditioned(p: dict[str, Any]) -> Arrays:
    # Singular values of X spread so that cond(X^T X) equals the chosen condition number.
    rng = np.random.default_rng(p["seed"])
    n, d = p["n_samples"], p["n_features"]
    u, _ = np.linalg.qr(rng.normal(size=(n, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s = np.sqrt(np.geomspace(1.0, p["condition_number"], d)) * np.sqrt(n)
    x = (u * s) @ v.T
    theta = rng.normal(size=d)
    return x, x @ theta + rng.normal(0.0, p["noise"], n)


def _sk(loader: Callable[..., Any]) -> Callable[[dict[str, Any]], Arrays]:
    return lambda p: loader(return_X_y=True)


def _within_max_values(p: dict[str, Any]) -> str | None:
    values = p["n_samples"] * p["n_features"]
    if values > MAX_VALUES:
        return (
            f"dataset.n_samples x dataset.n_features: {p['n_samples']} x {p['n_features']} = "
            f"{values:,} values is over the limit of {MAX_VALUES:,}"
        )
    return None


def _ill_conditioned_check(p: dict[str, Any]) -> str | None:
    if p["n_features"] > p["n_samples"]:
        return (
            f"dataset.n_features: {p['n_features']} is more than n_samples ({p['n_samples']}); "
            "the chosen condition number needs n_features <= n_samples"
        )
    return _within_max_values(p)


_SEED = HyperParam("seed", 0, 0, 2**31 - 1, kind="int", help="seed of the generator")
_FEATURES = HyperParam("n_features", 10, 1, 1000, kind="int")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "digits", "Digits (8x8 images)", _sk(skd.load_digits), "classification",
            n_samples=1797, image_shape=(1, 8, 8), description="1,797 handwritten digits, 10 classes.",
            shows="Small images, the one set for the CNN: a quick, realistic benchmark where schedules and adaptive methods matter.",
        ),
        DatasetSpec(
            "breast_cancer", "Breast cancer", _sk(skd.load_breast_cancer), "classification",
            n_samples=569, description="569 tumours, 30 features, 2 classes.",
            shows="Nearly linearly separable: almost every optimizer gets there, so differences show in speed and stability.",
        ),
        DatasetSpec(
            "wine", "Wine", _sk(skd.load_wine), "classification",
            n_samples=178, description="178 wines, 13 features, 3 classes.",
            shows="Tiny (178 samples): full-batch methods (L-BFGS, Rprop) are cheap here, and mini-batch noise is easy to see.",
        ),
        DatasetSpec(
            "moons", "Two moons",
            lambda p: skd.make_moons(p["n_samples"], noise=p["noise"], random_state=p["seed"]),
            "classification", (_N, _NOISE, _SEED), description="Two interleaved half circles.",
            shows="A curved boundary: a linear model cannot fit it, a small MLP can; watch how fast each optimizer bends it.",
        ),
        DatasetSpec(
            "circles", "Circles",
            lambda p: skd.make_circles(
                p["n_samples"], noise=p["noise"] / 2, factor=0.5, random_state=p["seed"]
            ),
            "classification", (_N, _NOISE, _SEED), description="A ring around a disc.",
            shows="A ring-shaped boundary: linear models stay at chance, and a hidden layer must first learn a radius.",
        ),
        DatasetSpec(
            "spirals", "Two spirals", _spirals, "classification", (_N, _NOISE, _SEED),
            description="Two interleaved spiral arms: hard for linear models.",
            shows="A hard non-convex fit for an MLP: long plateaus separate slow optimizers from fast ones.",
        ),
        DatasetSpec(
            "linear", "Linear regression", _linear, "regression",
            (_N, _FEATURES, HyperParam("noise", 0.5, 0.0, 100.0), _SEED),
            check=_within_max_values,
            description="The tutorial's y = X theta + noise.",
            shows="Convex least squares with a known optimum: every optimizer's gap to the best possible loss is measurable.",
        ),
        DatasetSpec(
            "ill_conditioned", "Ill-conditioned regression", _ill_conditioned, "regression",
            (
                _N, _FEATURES,
                HyperParam("condition_number", 100.0, 1.0, 1e8, log=True, help="cond(X^T X)"),
                HyperParam("noise", 0.1, 0.0, 100.0), _SEED,
            ),
            check=_ill_conditioned_check,
            standardize=False,
            description="Least squares whose Hessian has a chosen condition number.",
            shows="Ill-conditioned: plain SGD crawls along the flat directions, momentum and L-BFGS do not; raise the condition number to widen the gap.",
        ),
    )
}


def get_dataset_spec(name: str) -> DatasetSpec:
    """Look up a registry entry, or an uploaded set stored under ``$DLOPT_HOME/datasets``.

    Any process with the same ``$DLOPT_HOME`` (worker processes inherit it) finds an
    uploaded set by its name. The error lists what is allowed.
    """
    if isinstance(name, str) and USER_NAME.fullmatch(name):
        return user_dataset_spec(name)
    return lookup(DATASETS, name, kind="dataset")


def user_dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of an upload stored under ``$DLOPT_HOME/datasets``.

    Raises:
        ValueError: ``name`` is not an upload's name, or nothing is stored under it.
    """
    meta = read_description(name)
    try:
        rows, features = meta["shape"]
        task, classes, source = meta["task"], tuple(meta["classes"]), meta["source"]
        image_shape = tuple(meta["image_shape"]) if meta["image_shape"] else None
    except (ValueError, KeyError, TypeError) as err:
        meta_path = user_datasets_dir() / f"{name}.json"
        raise ValueError(f"dataset: {name!r}: {meta_path} is unreadable ({shown(str(err))})") from None
    if image_shape:
        what = f"{rows:,} images {'x'.join(map(str, image_shape))}"
    else:
        what = f"{rows:,} rows, {features:,} feature{'s' * (features != 1)}"
    if task == "classification":
        listed = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        kind = f"{len(classes)} classes ({listed})"
    else:
        kind = f"regression on {meta['target']}"
    return DatasetSpec(
        name=name,
        label=f"your data: {source}",
        make=functools.partial(_read_upload, name),
        task=task,
        n_samples=int(rows),
        image_shape=image_shape,  # type: ignore[arg-type]
        description=f"{what}, {kind}. Uploaded from {source}.",
    )


def _read_upload(name: str, options: dict[str, Any]) -> Arrays:
    return read_arrays(name)


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against the data set's ranges and limits, defaults filled in."""
    spec = get_dataset_spec(name)
    checked = check_params(spec.hyperparams, options, prefix="dataset")
    if spec.check and (problem := spec.check(checked)):
        raise ValueError(problem)
    return checked


def _n_val(n: int, val_fraction: float) -> int:
    return max(1, round(val_fraction * n))


def split_sizes(name: str, options: dict[str, Any], val_fraction: float) -> tuple[int, int]:
    """``(n_train, n_val)`` of :func:`load_dataset`'s split, without making or loading the data."""
    spec = get_dataset_spec(name)
    n = spec.n_samples if spec.n_samples is not None else int(check_options(name, options)["n_samples"])
    n_val = _n_val(n, val_fraction)
    return n - n_val, n_val


class ArrayCache:
    """Arrays by key, at most ``max_bytes`` in all, least recently used dropped first.

    Thread-safe: runs of a comparison and pages served at once share it. Two threads asking
    for a missing key may both compute it; the second ``put`` replaces the first.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[tuple[np.ndarray, ...], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> tuple[np.ndarray, ...] | None:
        """The arrays under ``key`` (now the most recently used), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, arrays: tuple[np.ndarray, ...]) -> None:
        """Keep ``arrays`` read-only under ``key``, dropping old entries to stay in budget.

        A value larger than the whole budget is not kept.
        """
        size = sum(a.nbytes for a in arrays)
        for a in arrays:
            a.setflags(write=False)  # shared by every later caller
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return
            self._items[key] = (arrays, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, freed) = self._items.popitem(last=False)
                self._bytes -= freed


SPLIT_CACHE = ArrayCache(CACHE_BYTES)


def _split_arrays(
    name: str, options: tuple[tuple[str, Any], ...], val_fraction: float, split_seed: int
) -> tuple[np.ndarray, ...]:
    key = (name, options, val_fraction, split_seed)
    if (cached := SPLIT_CACHE.get(key)) is not None:
        return cached
    spec = get_dataset_spec(name)
    x, y = spec.make(dict(options))
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    order = np.random.default_rng(split_seed).permutation(len(x))
    n_val = _n_val(len(x), val_fraction)
    val, train = order[:n_val], order[n_val:]
    x_train, x_val = x[train], x[val]
    if spec.standardize and spec.image_shape is not None:
        # Per channel, not per pixel: a pixel standardised with its own statistics takes them
        # along when an image is flipped or shifted (and a corner pixel that is always blank
        # would be scaled by a made-up 1). One mean and spread per channel keeps an image an image.
        channels = spec.image_shape[0]
        by_channel = x_train.reshape(len(x_train), channels, -1)
        mean = by_channel.mean(axis=(0, 2)).repeat(by_channel.shape[2])
        std = by_channel.std(axis=(0, 2)).repeat(by_channel.shape[2])
        std[std == 0] = 1.0
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    elif spec.standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    arrays = (x_train, y[train], x_val, y[val])
    SPLIT_CACHE.put(key, arrays)
    return arrays


def load_dataset(
    name: str,
    options: dict[str, Any],
    *,
    val_fraction: float,
    split_seed: int,
    device: torch.device,
) -> Dataset:
    """Build (or reuse) a split data set and place it on ``device``.

    ``options`` are checked as by :func:`check_options` (a ``ValueError`` names the field).
    """
    spec = get_dataset_spec(name)
    options = check_options(name, options)
    x_train, y_train, x_val, y_val = _split_arrays(
        name, tuple(sorted(options.items())), val_fraction, split_seed
    )
    if spec.task == "classification":
        y_dtype, n_classes = torch.long, int(max(y_train.max(), y_val.max())) + 1
    else:
        y_dtype, n_classes = torch.float32, 0

    def put(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        # torch.tensor copies: the cached arrays stay untouched whatever the run does.
        return torch.tensor(a, dtype=dtype, device=device)

    return Dataset(
        name=name,
        task=spec.task,
        x_train=put(x_train, torch.float32),
        y_train=put(y_train, y_dtype),
        x_val=put(x_val, torch.float32),
        y_val=put(y_val, y_dtype),
        n_classes=n_classes,
        image_shape=spec.image_shape,
    )
