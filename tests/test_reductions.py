"""Every reduction shrinks the training set to the asked size, stays seeded and counts its bytes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from dlopt_core.catalog.reductions import (
    REDUCTIONS,
    Reduced,
    check_reduction,
    get_reduction,
    reduce_arrays,
)

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Arrays:
    """Digits split 80/20 and standardised with train statistics, as the app loads it."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    val, train = order[:359], order[359:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std[std == 0] = 1.0
    return (x[train] - mean) / std, y[train], (x[val] - mean) / std, y[val]


def _reduce(name: str, data: Arrays, seed: int = 0, **params: object) -> Reduced:
    return reduce_arrays(name, params, *data, task="classification", seed=seed)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_each_reduction_has_an_entry_and_runs_on_digits(name: str, digits: Arrays) -> None:
    spec = REDUCTIONS[name]
    assert spec.label and spec.description and spec.shows
    assert get_reduction(name) is spec
    for p in spec.hyperparams:
        assert p.help and p.check(p.default, field=p.name) == p.default
    r = _reduce(name, digits)
    assert r.x_train.dtype == np.float32 and r.x_val.dtype == np.float32
    assert len(r.y_train) == r.n_train == len(r.x_train) and r.x_train.shape[1] == r.x_val.shape[1]
    assert r.y_val is digits[3] and r.y_train.dtype == digits[1].dtype
    assert np.all(np.isfinite(r.x_train)) and np.all(np.isfinite(r.x_val))
    assert r.original_bytes == 1438 * 64 * 4 + 1438 * 8
    assert 0 < r.stored_bytes < r.original_bytes
    assert r.note and "\n" not in r.note


@pytest.mark.parametrize("name", ["subsample", "balanced", "kmeans"])
@pytest.mark.parametrize("fraction", [0.05, 0.25, 1.0])
def test_row_methods_keep_the_asked_fraction(name: str, fraction: float, digits: Arrays) -> None:
    r = _reduce(name, digits, fraction=fraction)
    assert abs(r.n_train - fraction * len(digits[0])) <= 10  # within one row per class
    assert r.x_train.shape[1] == 64 and set(np.unique(r.y_train)) <= set(range(10))


@pytest.mark.parametrize("name", ["subsample", "balanced"])
def test_subsamples_are_rows_of_the_training_set(name: str, digits: Arrays) -> None:
    x, y = digits[0].astype(np.float32), digits[1]
    r = _reduce(name, digits)
    rows = {row.tobytes(): label for row, label in zip(x, y)}
    assert all(rows[row.tobytes()] == label for row, label in zip(r.x_train, r.y_train))
    assert len({row.tobytes() for row in r.x_train}) == r.n_train  # no row twice


def test_balanced_gives_equal_class_counts_when_possible(digits: Arrays) -> None:
    counts = np.bincount(_reduce("balanced", digits, fraction=0.25).y_train)
    assert counts.max() - counts.min() <= 1 and counts.sum() == round(0.25 * 1438)
    assert np.all(np.bincount(_reduce("balanced", digits, fraction=500 / 1438).y_train) == 50)


def test_balanced_fills_the_budget_from_larger_classes_when_one_is_short() -> None:
    y = np.repeat([0, 1, 2], [2, 40, 40])
    x = np.arange(len(y), dtype=float)[:, None]
    r = reduce_arrays("balanced", {"fraction": 0.5}, x, y, x, y, task="classification", seed=0)
    assert np.bincount(r.y_train).tolist() == [2, 19, 20]  # 41 rows: class 0 gives all it has


def test_kmeans_centres_carry_their_class() -> None:
    # Three classes in boxes that do not overlap: a centre is a mean of its class's rows, so
    # it lies inside that class's box, and only there.
    rng = np.random.default_rng(0)
    y = np.repeat([2, 0, 1], 30)
    x = rng.uniform(0, 1, (90, 3)) + 10 * y[:, None]
    r = reduce_arrays("kmeans", {"fraction": 0.2}, x, y, x, y, task="classification", seed=0)
    assert np.bincount(r.y_train).tolist() == [6, 6, 6]
    box = np.floor(r.x_train / 10).astype(int)
    assert np.all(box == r.y_train[:, None])


def test_kmeans_coreset_classifies_digits(digits: Arrays) -> None:
    r = _reduce("kmeans", digits, fraction=0.1)
    for c in range(10):
        assert np.sum(r.y_train == c) == max(1, round(0.1 * np.sum(digits[1] == c)))
    distances = ((digits[2][:, None, :] - r.x_train[None]) ** 2).sum(axis=2)
    assert np.mean(r.y_train[distances.argmin(axis=1)] == digits[3]) > 0.9  # nearest centre's class
    tiny = _reduce("kmeans", digits, fraction=0.001)
    assert np.bincount(tiny.y_train).tolist() == [1] * 10  # at least one centre per class


def test_kmeans_refuses_work_beyond_its_limit() -> None:
    y = np.repeat([0, 1], 10_000)
    x = np.zeros((len(y), 1))
    # 2 classes x 10,000 rows x 2,500 centres = 50 M rows x centres, over the 20 M limit.
    with pytest.raises(ValueError, match=r"^reduce\.fraction: 0\.25 asks for 5,000 k-means centres .* lower the fraction"):
        reduce_arrays("kmeans", {}, x, y, x, y, task="classification", seed=0)


def test_pca_keeps_the_asked_components(digits: Arrays) -> None:
    r = _reduce("pca", digits, components=5)
    assert r.x_train.shape == (1438, 5) and r.x_val.shape == (359, 5)
    assert r.note.startswith("PCA 64 -> 5 dims, ") and r.note.endswith(" % of the variance")


def test_pca_is_fitted_on_the_training_set_only(digits: Arrays) -> None:
    x_train, y_train, x_val, y_val = digits
    r = _reduce("pca", digits, components=8)
    reference = PCA(n_components=8, svd_solver="full").fit(x_train)
    np.testing.assert_allclose(r.x_train, reference.transform(x_train), atol=1e-4)
    np.testing.assert_allclose(r.x_val, reference.transform(x_val), atol=1e-4)
    other = _reduce("pca", (x_train, y_train, x_val * 10 + 3, y_val), components=8)
    assert np.array_equal(other.x_train, r.x_train)


@pytest.mark.parametrize("name", ["subsample", "balanced", "kmeans"])
def test_a_seed_picks_the_same_rows_and_another_seed_others(name: str, digits: Arrays) -> None:
    first, again, other = (_reduce(name, digits, seed=s) for s in (1, 1, 2))
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_train, other.x_train)


def test_float16_round_trip_is_within_half_an_ulp(digits: Arrays) -> None:
    x = digits[0]
    r = _reduce("float16", digits)
    assert r.x_train.shape == x.shape and np.array_equal(r.x_val, digits[2].astype(np.float32))
    # Round to nearest: at most 2^-11 relative for normal numbers, 2^-25 absolute below them.
    assert np.all(np.abs(r.x_train - x) <= np.abs(x) * 2.0**-11 + 2.0**-25)
    assert np.array_equal(r.x_train, x.astype(np.float16).astype(np.float32))


def test_int8_round_trip_is_within_half_a_step_per_feature(digits: Arrays) -> None:
    x = digits[0]
    r = _reduce("int8", digits)
    assert np.array_equal(r.x_val, digits[2].astype(np.float32))  # validation is not quantized
    step = (np.maximum(x.max(axis=0), 0) - np.minimum(x.min(axis=0), 0)) / 255
    assert np.all(np.abs(r.x_train - x) <= 0.5 * step * (1 + 1e-5) + 1e-6)
    assert not np.array_equal(r.x_train, x.astype(np.float32))
    for j in range(x.shape[1]):
        assert len(np.unique(r.x_train[:, j])) <= 256


def test_stored_bytes_are_exact_for_a_small_array() -> None:
    rng = np.random.default_rng(0)
    n, d = 40, 6
    x, y = rng.normal(size=(n, d)), np.repeat(np.arange(4), 10)  # int64 labels: 8 bytes each
    x_val, y_val = rng.normal(size=(5, d)), np.arange(5) % 4

    def reduced(name: str, **params: object) -> Reduced:
        return reduce_arrays(name, params, x, y, x_val, y_val, task="classification", seed=0)

    labels = 8 * n
    assert reduced("float16").original_bytes == 4 * n * d + labels
    assert reduced("subsample", fraction=0.5).stored_bytes == 20 * (4 * d + 8)
    assert reduced("balanced", fraction=0.5).stored_bytes == 20 * (4 * d + 8)
    assert reduced("kmeans", fraction=0.5).stored_bytes == 20 * (4 * d + 8)  # 5 centres x 4 classes
    pca = reduced("pca", components=2)
    assert (pca.stored_bytes, pca.extra_bytes) == (n * 2 * 4 + labels, 2 * d * 4 + d * 4)
    assert reduced("float16").stored_bytes == 2 * n * d + labels
    assert reduced("int8").stored_bytes == n * d + 4 * d + d + labels  # codes, float32 scales, int8 zero points
    assert all(reduced(name).extra_bytes == 0 for name in REDUCTIONS if name != "pca")


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("subsample", {"fraction": 0}, "reduce.fraction"),
        ("subsample", {"fraction": 1.5}, "reduce.fraction"),
        ("kmeans", {"fraction": "a lot"}, "reduce.fraction"),
        ("pca", {"components": 0}, "reduce.components"),
        ("pca", {"components": 2.5}, "reduce.components"),
        ("subsample", {"components": 3}, "reduce.components"),
    ],
)
def test_bad_params_name_the_field(name: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        check_reduction(name, params)


def test_pca_components_above_the_feature_count_name_it(digits: Arrays) -> None:
    with pytest.raises(ValueError, match=r"^reduce\.components: 65 is more than the data set's 64 features"):
        _reduce("pca", digits, components=65)


@pytest.mark.parametrize("name", [n for n, spec in REDUCTIONS.items() if spec.classification_only])
def test_class_based_methods_refuse_regression(name: str) -> None:
    x, y = np.zeros((10, 2)), np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match=f"^reduce: '{name}' needs class labels.*regression"):
        reduce_arrays(name, {}, x, y, x, y, task="regression", seed=0)


@pytest.mark.parametrize("name", [n for n, spec in REDUCTIONS.items() if not spec.classification_only])
def test_the_other_methods_run_on_regression(name: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 10)), rng.normal(size=50)
    r = reduce_arrays(name, {}, x, y, x[:5], y[:5], task="regression", seed=0)
    assert r.y_train.dtype == y.dtype and r.n_train >= 1


def test_check_reduction_fills_defaults_and_reads_cli_text() -> None:
    assert check_reduction("subsample", {}) == {"fraction": 0.25}
    assert check_reduction("pca", {"components": "16"}) == {"components": 16}
    assert check_reduction("int8", {}) == {}


def test_an_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="^reduce: unknown name 'zip' \\(allowed: subsample, balanced, kmeans"):
        get_reduction("zip")
