"""The tutorial's NumPy algorithms equal torch.optim: same data, start and sample order."""

import inspect

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dlopt_core.reference import (
    ALGORITHMS, GROWTH, batches, divergence_step, gradient, path_losses, reference_path, relative_difference,
    stable_lr, torch_path, tutorial_data,
)

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


def _gd(lr: float, kind: str = "squared", steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = tutorial_data(kind)
    order = [np.arange(len(x))] * steps
    ours = reference_path(x, y, np.zeros(2), algorithm="gd", lr=lr, order=order, kind=kind)
    theirs = torch_path(x, y, np.zeros(2), algorithm="gd", lr=lr, order=order, kind=kind)
    return ours, theirs, path_losses(ours, x, y, kind)


@pytest.mark.parametrize("lr", [5.0, 1.9])
def test_gradient_descent_past_its_stable_lr_is_flagged_although_every_value_is_finite(lr: float) -> None:
    ours, theirs, losses = _gd(lr)
    assert np.all(np.isfinite(ours))  # issue 11: only inf/NaN was flagged, and lr=5 reached 1e105
    step = divergence_step(losses)
    assert step is not None and 1 <= step <= 5
    assert np.all(losses[step:] > GROWTH * losses[0]) and losses[step - 1] <= GROWTH * losses[0]


def test_the_stable_lr_separates_converging_from_diverging_gradient_descent() -> None:
    x, _ = tutorial_data("squared")
    limit = stable_lr(x)
    assert divergence_step(_gd(0.98 * limit, steps=400)[2]) is None
    assert divergence_step(_gd(1.05 * limit, steps=400)[2]) is not None


@pytest.mark.parametrize(("algorithm", "kind"), [("rmsprop", "squared"), ("rmsprop", "logistic"), ("adam", "logistic")])
def test_an_overshoot_that_comes_back_is_not_divergence(algorithm: str, kind: str) -> None:
    # RMSprop at lr=10 jumps to ~800x its starting loss at step 1, then settles.
    x, y = tutorial_data(kind)
    order = list(batches(len(x), 8, 20, seed=0))[:100]
    path = reference_path(x, y, np.zeros(2), algorithm=algorithm, lr=10.0, order=order, kind=kind)
    assert divergence_step(path_losses(path, x, y, kind)) is None


def test_the_difference_is_relative_to_the_paths_scale() -> None:
    # lr=1.9: an absolute difference of 6e41 between paths that reach 1e56 is float64 rounding.
    ours, theirs, _ = _gd(1.9)
    assert np.max(np.abs(ours - theirs)) > 1e30
    assert relative_difference(ours, theirs) < 1e-13
    assert relative_difference(ours, ours + [0.0, 1.0]) == pytest.approx(1 / np.linalg.norm(ours, axis=1).max())


def _section(lr: float, algorithm: str = "gd") -> AppTest:
    def page() -> None:
        from ui.reference_view import reference_section

        reference_section()

    at = AppTest.from_function(page, default_timeout=60)
    at.session_state["ref.algo"] = algorithm
    at.session_state["ref.lr"] = lr
    return at.run()


def test_the_section_warns_of_divergence_and_headlines_the_relative_difference() -> None:
    at = _section(5.0)
    assert not at.exception
    assert any("diverges" in w.value and "2 / λ_max" in w.value for w in at.warning)
    assert at.metric[0].label == "relative difference from torch.optim"
    assert float(at.metric[0].value) < 1e-12
    calm = _section(0.05)
    assert not calm.exception and not calm.warning and float(calm.metric[0].value) < 1e-12


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_the_section_shows_the_whole_algorithm_and_the_gradient_it_calls(algorithm: str) -> None:
    at = _section(0.05, algorithm)
    code = at.code[0]
    assert inspect.getsource(ALGORITHMS[algorithm].numpy_fn) in code.value
    assert inspect.getsource(gradient).strip() in code.value
    assert code.proto.wrap_lines  # long lines wrap instead of running off the side
