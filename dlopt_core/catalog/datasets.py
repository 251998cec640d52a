"""Datasets as tensors already on the device: small data needs no DataLoader.

Every set is split train/validation deterministically (by ``split_seed``, not the run seed,
so all runs of a comparison see the same data) and standardised with train statistics only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from sklearn import datasets as skd

from dlopt_core.catalog.hyperparams import HyperParam, lookup

Task = Literal["classification", "regression"]
Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: how to make it, its task and its options."""

    name: str
    label: str
    make: Callable[[dict[str, Any]], Arrays]
    task: Task
    hyperparams: tuple[HyperParam, ...] = ()
    image_shape: tuple[int, int, int] | None = None
    standardize: bool = True
    description: str = ""


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
    n = p["n_samples"] // 2
    t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0.0, p["noise"] / 10, (2 * n, 2))
    y = np.concatenate([np.zeros(n, int), np.ones(n, int)])
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


_SEED = HyperParam("seed", 0, 0, 2**31 - 1, kind="int", help="seed of the generator")
_FEATURES = HyperParam("n_features", 10, 1, 1000, kind="int")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "digits", "Digits (8x8 images)", _sk(skd.load_digits), "classification",
            image_shape=(1, 8, 8), description="1,797 handwritten digits, 10 classes.",
        ),
        DatasetSpec(
            "breast_cancer", "Breast cancer", _sk(skd.load_breast_cancer), "classification",
            description="569 tumours, 30 features, 2 classes.",
        ),
        DatasetSpec(
            "wine", "Wine", _sk(skd.load_wine), "classification",
            description="178 wines, 13 features, 3 classes.",
        ),
        DatasetSpec(
            "moons", "Two moons",
            lambda p: skd.make_moons(p["n_samples"], noise=p["noise"], random_state=p["seed"]),
            "classification", (_N, _NOISE, _SEED), description="Two interleaved half circles.",
        ),
        DatasetSpec(
            "circles", "Circles",
            lambda p: skd.make_circles(
                p["n_samples"], noise=p["noise"] / 2, factor=0.5, random_state=p["seed"]
            ),
            "classification", (_N, _NOISE, _SEED), description="A ring around a disc.",
        ),
        DatasetSpec(
            "spirals", "Two spirals", _spirals, "classification", (_N, _NOISE, _SEED),
            description="Two interleaved spiral arms: hard for linear models.",
        ),
        DatasetSpec(
            "linear", "Linear regression", _linear, "regression",
            (_N, _FEATURES, HyperParam("noise", 0.5, 0.0, 100.0), _SEED),
            description="The tutorial's y = X theta + noise.",
        ),
        DatasetSpec(
            "ill_conditioned", "Ill-conditioned regression", _ill_conditioned, "regression",
            (
                _N, _FEATURES,
                HyperParam("condition_number", 100.0, 1.0, 1e8, log=True, help="cond(X^T X)"),
                HyperParam("noise", 0.1, 0.0, 100.0), _SEED,
            ),
            standardize=False,
            description="Least squares whose Hessian has a chosen condition number.",
        ),
    )
}


def get_dataset_spec(name: str) -> DatasetSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(DATASETS, name, kind="dataset")


@functools.lru_cache(maxsize=32)
def _split_arrays(
    name: str, options: tuple[tuple[str, Any], ...], val_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    spec = get_dataset_spec(name)
    x, y = spec.make(dict(options))
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    order = np.random.default_rng(split_seed).permutation(len(x))
    n_val = max(1, round(val_fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    x_train, x_val = x[train], x[val]
    if spec.standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    return x_train, y[train], x_val, y[val]


def load_dataset(
    name: str,
    options: dict[str, Any],
    *,
    val_fraction: float,
    split_seed: int,
    device: torch.device,
) -> Dataset:
    """Build (or reuse) a split data set and place it on ``device``."""
    spec = get_dataset_spec(name)
    x_train, y_train, x_val, y_val = _split_arrays(
        name, tuple(sorted(options.items())), val_fraction, split_seed
    )
    if spec.task == "classification":
        y_dtype, n_classes = torch.long, int(max(y_train.max(), y_val.max())) + 1
    else:
        y_dtype, n_classes = torch.float32, 0

    def put(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype).to(device)

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
