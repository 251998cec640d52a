"""Ways to shrink the training data (fewer rows, fewer features, fewer bits), as specs.

A reduction runs on the split NumPy arrays, after standardisation and before tensors, so
the validation set stays the yardstick: only the training set shrinks (PCA, which changes
the feature space, maps validation features with the basis fitted on the training set).
Each result reports the training set's size as it would be stored next to its float32 size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from dlopt_core.catalog.hyperparams import HyperParam, Value, check_params, lookup
from dlopt_core.uploads.parse import Task

# One k-means++ start, what scikit-learn's n_init="auto" picks since 1.4; fixed so a seed
# gives the same centres on versions with another default.
KMEANS_N_INIT = 1
# Rows x centres, summed over classes: k-means costs about that per iteration. Measured
# 35-230 ns per row x centre (2 CPU cores), so the limit keeps a reduction to seconds on a
# shared server. Digits at fraction 1 is ~0.2 M; 200,000 moons at 0.25 would be 3,200 M.
MAX_KMEANS_WORK = 20_000_000
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class Split:
    """The arrays a reduction reads: standardised features, labels as given, and the run's seed."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    seed: int


@dataclass(frozen=True)
class Kept:
    """What a method keeps: what training sees, and the arrays it would store to get there."""

    x_train: np.ndarray  # float32, what training sees
    y_train: np.ndarray
    stored: tuple[np.ndarray, ...]  # the training set at its stored dtypes (labels included)
    note: str
    x_val: np.ndarray | None = None  # set when the feature space changes (PCA)
    extra: tuple[np.ndarray, ...] = ()  # what maps new data into that space (a PCA basis)


@dataclass(frozen=True)
class Reduced:
    """A reduced training set, the validation set in the same feature space, and their sizes."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    stored_bytes: int  # the training set as it would be stored, labels included
    extra_bytes: int  # what a reader needs besides (PCA's basis and mean), 0 for the others
    original_bytes: int  # float32 training features plus labels, before reduction
    note: str  # one line for a table

    @property
    def n_train(self) -> int:
        return len(self.x_train)


Reducer = Callable[[dict[str, Any], Split], Kept]


@dataclass(frozen=True)
class ReductionSpec:
    """A named way to shrink the training set, with its hyperparameters."""

    name: str
    label: str
    reduce: Reducer
    hyperparams: tuple[HyperParam, ...] = ()
    classification_only: bool = False
    description: str = ""
    shows: str = ""  # one line: what training on the reduced set shows


def _take(s: Split, rows: np.ndarray, note: str) -> Kept:
    x = s.x_train[rows].astype(np.float32)
    y = s.y_train[rows]
    return Kept(x, y, stored=(x, y), note=note)


def _budget(fraction: float, n: int) -> int:
    return max(1, round(fraction * n))


def _per_class(counts: np.ndarray | list[int]) -> str:
    low, high = min(counts), max(counts)
    return f"{low} per class" if low == high else f"{low}-{high} per class"


def _subsample(p: dict[str, Any], s: Split) -> Kept:
    n = len(s.x_train)
    m = _budget(p["fraction"], n)
    # Sorted, so the kept rows keep the data set's order.
    rows = np.sort(np.random.default_rng(s.seed).choice(n, m, replace=False))
    return _take(s, rows, f"{n} -> {m} rows, chosen at random")


def _equal_shares(counts: np.ndarray, budget: int) -> np.ndarray:
    """Rows to take per class: ``budget`` in all (or every row), as equal as ``counts`` allow.

    Smallest classes first: one too small for its share gives the rest to the larger ones.
    """
    take = np.zeros_like(counts)
    for done, i in enumerate(np.argsort(counts, kind="stable")):
        take[i] = min(counts[i], budget // (len(counts) - done))
        budget -= take[i]
    return take


def _balanced(p: dict[str, Any], s: Split) -> Kept:
    rng = np.random.default_rng(s.seed)
    classes, counts = np.unique(s.y_train, return_counts=True)
    # At least one row per class: a class missing from training could never be predicted.
    take = _equal_shares(counts, max(len(classes), round(p["fraction"] * len(s.y_train))))
    rows = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(s.y_train == c), k, replace=False) for c, k in zip(classes, take)
    ]))
    return _take(s, rows, f"{len(s.y_train)} -> {len(rows)} rows, {_per_class(take)}")


def _kmeans(p: dict[str, Any], s: Split) -> Kept:
    classes, counts = np.unique(s.y_train, return_counts=True)
    ks = [_budget(p["fraction"], n) for n in counts]
    work = sum(n * k for n, k in zip(counts, ks))
    if work > MAX_KMEANS_WORK:
        raise ValueError(
            f"reduce.fraction: {p['fraction']:g} asks for {sum(ks):,} k-means centres from {len(s.y_train):,} "
            f"rows ({work:,} rows x centres per class, the limit is {MAX_KMEANS_WORK:,}); lower the fraction"
        )
    centres, labels = [], []
    for c, k in zip(classes, ks):
        members = s.x_train[s.y_train == c]
        fit = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=s.seed).fit(members)
        centres.append(fit.cluster_centers_)
        labels.append(np.full(k, c, dtype=s.y_train.dtype))
    x, y = np.concatenate(centres).astype(np.float32), np.concatenate(labels)
    note = f"{len(s.y_train)} rows -> {len(y)} k-means centres, {_per_class(ks)}"
    return Kept(x, y, stored=(x, y), note=note)


def _pca(p: dict[str, Any], s: Split) -> Kept:
    k, (n, d) = p["components"], s.x_train.shape
    if k > d:
        raise ValueError(f"reduce.components: {k} is more than the data set's {d} features")
    if k > n:
        raise ValueError(f"reduce.components: {k} is more than the {n} training rows")
    # svd_solver="full": exact and seed-free (the default may pick a randomized solver).
    pca = PCA(n_components=k, svd_solver="full").fit(s.x_train)
    z = pca.transform(s.x_train).astype(np.float32)
    share = pca.explained_variance_ratio_.sum()
    return Kept(
        z, s.y_train, stored=(z, s.y_train),
        note=f"PCA {d} -> {k} dims, {100 * share:.0f} % of the variance",
        x_val=pca.transform(s.x_val).astype(np.float32),
        extra=(pca.components_.astype(np.float32), pca.mean_.astype(np.float32)),
    )


def _float16(p: dict[str, Any], s: Split) -> Kept:
    largest = float(np.abs(s.x_train).max(initial=0.0))
    if largest > FLOAT16_MAX:
        raise ValueError(f"reduce: float16 holds values up to {FLOAT16_MAX:g}, the features reach {largest:g}")
    x16 = s.x_train.astype(np.float16)
    x = x16.astype(np.float32)
    error = float(np.abs(x - s.x_train).max(initial=0.0))
    return Kept(x, s.y_train, stored=(x16, s.y_train), note=f"float16 features, largest round-off {error:.2g}")


def _int8_params(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(scale, zero_point)`` mapping ``x``'s min..max onto -128..127.

    The range is widened to hold 0, as torch's quantizers do: 0 is then exact and the zero
    point fits in an int8.
    """
    low = np.minimum(x.min(axis=0), 0.0)
    high = np.maximum(x.max(axis=0), 0.0)
    scale = (high - low) / 255
    scale[scale == 0] = 1.0  # a feature that is 0 everywhere: any scale stores it exactly
    scale = scale.astype(np.float32)
    zero_point = np.clip(np.round(-128 - low / scale), -128, 127).astype(np.int8)
    return scale, zero_point


def _int8(p: dict[str, Any], s: Split) -> Kept:
    scale, zero_point = _int8_params(s.x_train)
    q = np.clip(np.round(s.x_train / scale) + zero_point, -128, 127).astype(np.int8)
    x = ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)
    error = float(np.abs(x - s.x_train).max(initial=0.0))
    return Kept(
        x, s.y_train, stored=(q, scale, zero_point, s.y_train),
        note=f"int8 features (scale and zero point per feature), largest error {error:.2g}",
    )


_FRACTION = HyperParam(
    "fraction", 0.25, 0.0, 1.0, low_inclusive=False, help="share of the training set to keep"
)

REDUCTIONS: dict[str, ReductionSpec] = {
    spec.name: spec
    for spec in (
        ReductionSpec(
            "subsample", "Random subsample", _subsample, (_FRACTION,),
            description="Keep a random `fraction` of the training rows.",
            shows="What the data is worth: fewer rows make epochs cheaper, and the validation loss levels off higher and sooner.",
        ),
        ReductionSpec(
            "balanced", "Class-balanced subsample", _balanced, (_FRACTION,), classification_only=True,
            description="Keep `fraction` of the training rows, as many of each class as the budget allows.",
            shows="Against the random subsample at the same size: what equal class counts are worth on a small budget.",
        ),
        ReductionSpec(
            "kmeans", "k-means coreset", _kmeans,
            (HyperParam("fraction", 0.25, 0.0, 1.0, low_inclusive=False, help="centres per class, as a share of its rows"),),
            classification_only=True,
            description="Replace each class by k-means centres, `fraction` of its rows (at least one), labelled with the class.",
            shows="Against the random subsample at the same size: whether a few representative points train as well as many random ones.",
        ),
        ReductionSpec(
            "pca", "PCA", _pca,
            (HyperParam("components", 8, 1, 1000, kind="int", help="dimensions kept (at most the data set's feature count)"),),
            description="Project the features on the training set's first `components` principal axes.",
            shows="A smaller, better-conditioned problem: optimizers converge faster until the dropped directions cost accuracy.",
        ),
        ReductionSpec(
            "float16", "float16 features", _float16,
            description="Store the training features as float16 (half of float32).",
            shows="Half the storage at a relative round-off below 0.05 %: the curves should barely move.",
        ),
        ReductionSpec(
            "int8", "int8 features", _int8,
            description="Quantize each training feature to 256 levels between its min and max (scale and zero point).",
            shows="A quarter of the storage: a small fixed noise on every input, and whether the optimizer notices it.",
        ),
    )
}


def get_reduction(name: str) -> ReductionSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(REDUCTIONS, name, kind="reduce")


def check_reduction(name: str, params: Mapping[str, Any]) -> dict[str, Value]:
    """``params`` checked against the entry's ranges, defaults filled in."""
    return check_params(get_reduction(name).hyperparams, dict(params), prefix="reduce")


def reduce_arrays(
    name: str,
    params: Mapping[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    task: Task,
    seed: int,
) -> Reduced:
    """Shrink the training set with the method ``name``; same ``seed``, same result.

    ``params`` are checked as by :func:`check_reduction`; a ``ValueError`` names the field.
    """
    spec = get_reduction(name)
    checked = check_reduction(name, params)
    if spec.classification_only and task != "classification":
        raise ValueError(f"reduce: {name!r} needs class labels, and this data set's task is {task}")
    kept = spec.reduce(checked, Split(x_train, y_train, x_val, seed))
    return Reduced(
        x_train=kept.x_train,
        y_train=kept.y_train,
        x_val=(x_val if kept.x_val is None else kept.x_val).astype(np.float32),
        y_val=y_val,
        stored_bytes=sum(a.nbytes for a in kept.stored),
        extra_bytes=sum(a.nbytes for a in kept.extra),
        original_bytes=x_train.size * np.dtype(np.float32).itemsize + y_train.nbytes,
        note=kept.note,
    )
