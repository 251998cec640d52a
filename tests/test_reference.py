"""The tutorial's NumPy algorithms equal torch.optim: same data, start and sample order."""

import numpy as np
import pytest

from dlopt_core.reference import ALGORITHMS, batches, gradient, reference_path, torch_path, tutorial_data

CASES = [
    ("gd", 100, 0.1, {}),
    ("gd", 100, 0.5, {}),
    ("sgd", 1, 0.01, {}),
    ("sgd", 16, 0.05, {}),
    ("momentum", 16, 0.02, {"beta": 0.9}),
    ("momentum", 4, 0.01, {"beta": 0.5}),
    ("rmsprop", 16, 0.01, {}),
    ("rmsprop", 8, 0.003, {"alpha": 0.9}),
    ("adam", 8, 0.05, {}),
    ("adam", 32, 0.01, {"beta1": 0.8, "beta2": 0.99}),
]


@pytest.mark.parametrize("kind", ["squared", "logistic"])
@pytest.mark.parametrize(("algorithm", "batch", "lr", "hp"), CASES)
def test_reference_equals_torch_after_100_steps(kind: str, algorithm: str, batch: int, lr: float, hp: dict) -> None:
    x, y = tutorial_data(kind)
    order = list(batches(len(x), batch, 100, seed=1))[:100]
    start = np.array([0.5, -0.5])
    ours = reference_path(x, y, start, algorithm=algorithm, lr=lr, order=order, kind=kind, **hp)
    theirs = torch_path(x, y, start, algorithm=algorithm, lr=lr, order=order, kind=kind, **hp)
    assert ours.shape == theirs.shape == (101, 2)
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=1e-6)
    assert np.linalg.norm(ours[-1] - start) > 1e-3  # it moved


def test_every_algorithm_is_covered() -> None:
    assert {c[0] for c in CASES} == set(ALGORITHMS)


def test_single_sample_gradient_is_not_scaled_by_the_data_set_size() -> None:
    # The tutorial divided one sample's gradient by m; the reference uses that sample's own mean.
    x, y = tutorial_data("squared")
    theta = np.zeros(2)
    one = gradient(theta, x[[3]], y[[3]], "squared")
    expected = x[3] * (x[3] @ theta - y[3])
    np.testing.assert_allclose(one, expected)
    assert np.linalg.norm(one) > 10 * np.linalg.norm(expected / len(x))


def test_gradient_descent_solves_least_squares() -> None:
    x, y = tutorial_data("squared")
    order = [np.arange(len(x))] * 2000
    path = reference_path(x, y, np.zeros(2), algorithm="gd", lr=0.3, order=order)
    exact, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(path[-1], exact, rtol=1e-6)
