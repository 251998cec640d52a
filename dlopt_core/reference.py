"""The tutorial's algorithms from scratch, in NumPy, written to be read.

Each function trains ``theta`` (the bias is the first entry; ``X`` gets a column of ones)
for a linear model under one of two losses, and returns every iterate so a trajectory can
be drawn. Tests prove each one equal to ``torch.optim`` on the same data, start and
sample order.

Losses (m samples, p = X theta):

- ``"squared"``: J = 1/(2m) * sum (p - y)^2, gradient 1/m * X^T (p - y)
- ``"logistic"``: J = -1/m * sum [y log s(p) + (1 - y) log(1 - s(p))], gradient
  1/m * X^T (s(p) - y), with s the sigmoid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

Loss = Literal["squared", "logistic"]


def with_bias(x: np.ndarray) -> np.ndarray:
    """Prepend the column of ones that carries the bias."""
    return np.hstack([np.ones((len(x), 1)), x])


def loss(theta: np.ndarray, x: np.ndarray, y: np.ndarray, kind: Loss) -> float:
    """J(theta) on the rows ``x`` (already with the bias column)."""
    p = x @ theta
    if kind == "squared":
        return float(np.mean((p - y) ** 2) / 2)
    # log(1 + e^p) - y p, written stably
    return float(np.mean(np.logaddexp(0.0, p) - y * p))


def gradient(theta: np.ndarray, x: np.ndarray, y: np.ndarray, kind: Loss) -> np.ndarray:
    """dJ/dtheta averaged over the rows given: a batch, one sample, or all of them."""
    p = x @ theta
    residual = p - y if kind == "squared" else 1 / (1 + np.exp(-p)) - y
    # The mean is over the rows actually used. The tutorial's SGD snippet divided a single
    # sample's gradient by m (the data-set size), making every step m times too small.
    return x.T @ residual / len(x)


def batches(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of each mini-batch: a fresh shuffle every epoch, the last batch short."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def gradient_descent(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, lr: float, steps: int, kind: Loss = "squared"
) -> np.ndarray:
    """Full-batch gradient descent: theta <- theta - lr * grad J(theta) on all m samples."""
    path = [theta.copy()]
    for _ in range(steps):
        theta = theta - lr * gradient(theta, x, y, kind)
        path.append(theta)
    return np.array(path)


def sgd(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, lr: float, order: list[np.ndarray], kind: Loss = "squared"
) -> np.ndarray:
    """(Mini-batch) SGD: theta <- theta - lr * grad J_B(theta), one batch B of ``order`` per step.

    A batch of one row is the classic one-sample SGD.
    """
    path = [theta.copy()]
    for rows in order:
        theta = theta - lr * gradient(theta, x[rows], y[rows], kind)
        path.append(theta)
    return np.array(path)


def momentum(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, lr: float, beta: float,
    order: list[np.ndarray], kind: Loss = "squared",
) -> np.ndarray:
    """Heavy-ball momentum, in torch's form:

        v <- beta * v + g          (v starts at the first gradient)
        theta <- theta - lr * v

    The tutorial writes v <- beta * v + lr * g; with a constant lr the iterates are the same.
    """
    path = [theta.copy()]
    v = None
    for rows in order:
        g = gradient(theta, x[rows], y[rows], kind)
        v = g if v is None else beta * v + g
        theta = theta - lr * v
        path.append(theta)
    return np.array(path)


def rmsprop(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, lr: float, alpha: float = 0.99,
    eps: float = 1e-8, order: list[np.ndarray], kind: Loss = "squared",
) -> np.ndarray:
    """RMSprop:

        s <- alpha * s + (1 - alpha) * g^2      (s starts at 0)
        theta <- theta - lr * g / (sqrt(s) + eps)
    """
    path = [theta.copy()]
    s = np.zeros_like(theta)
    for rows in order:
        g = gradient(theta, x[rows], y[rows], kind)
        s = alpha * s + (1 - alpha) * g**2
        theta = theta - lr * g / (np.sqrt(s) + eps)
        path.append(theta)
    return np.array(path)


def adam(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, lr: float, beta1: float = 0.9,
    beta2: float = 0.999, eps: float = 1e-8, order: list[np.ndarray], kind: Loss = "squared",
) -> np.ndarray:
    """Adam, with bias correction at step t = 1, 2, ...:

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        theta <- theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    """
    path = [theta.copy()]
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, rows in enumerate(order, start=1):
        g = gradient(theta, x[rows], y[rows], kind)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        path.append(theta)
    return np.array(path)


# -- the same algorithms through torch.optim, for the side-by-side proof --

@dataclass(frozen=True)
class ReferenceAlgorithm:
    """A from-scratch algorithm and the torch optimizer it must equal."""

    name: str
    label: str
    numpy_fn: Callable[..., np.ndarray]
    torch_optimizer: Callable[[list[torch.Tensor], float, dict[str, Any]], torch.optim.Optimizer]
    hyperparams: dict[str, float]
    full_batch: bool = False


ALGORITHMS: dict[str, ReferenceAlgorithm] = {
    a.name: a
    for a in (
        ReferenceAlgorithm(
            "gd", "Full-batch gradient descent", gradient_descent,
            lambda p, lr, hp: torch.optim.SGD(p, lr=lr), {}, full_batch=True,
        ),
        ReferenceAlgorithm("sgd", "SGD (batch size 1 or more)", sgd, lambda p, lr, hp: torch.optim.SGD(p, lr=lr), {}),
        ReferenceAlgorithm(
            "momentum", "Momentum", momentum,
            lambda p, lr, hp: torch.optim.SGD(p, lr=lr, momentum=hp["beta"]), {"beta": 0.9},
        ),
        ReferenceAlgorithm(
            "rmsprop", "RMSprop", rmsprop,
            lambda p, lr, hp: torch.optim.RMSprop(p, lr=lr, alpha=hp["alpha"], eps=hp["eps"]),
            {"alpha": 0.99, "eps": 1e-8},
        ),
        ReferenceAlgorithm(
            "adam", "Adam", adam,
            lambda p, lr, hp: torch.optim.Adam(p, lr=lr, betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"]),
            {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
        ),
    )
}


def torch_path(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, algorithm: str, lr: float,
    order: list[np.ndarray], kind: Loss = "squared", **hp: float,
) -> np.ndarray:
    """The iterates of the matching ``torch.optim`` optimizer, in float64, same batches."""
    algo = ALGORITHMS[algorithm]
    param = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
    opt = algo.torch_optimizer([param], lr, {**algo.hyperparams, **hp})
    tx, ty = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    path = [theta.copy()]
    for rows in order:
        opt.zero_grad()
        p = tx[rows] @ param
        if kind == "squared":
            j = 0.5 * torch.mean((p - ty[rows]) ** 2)
        else:
            j = torch.nn.functional.binary_cross_entropy_with_logits(p, ty[rows])
        j.backward()
        opt.step()
        path.append(param.detach().numpy().copy())
    return np.array(path)


def reference_path(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, algorithm: str, lr: float,
    order: list[np.ndarray], kind: Loss = "squared", **hp: float,
) -> np.ndarray:
    """The from-scratch iterates for ``algorithm`` over the batches in ``order``."""
    algo = ALGORITHMS[algorithm]
    values = {**algo.hyperparams, **hp}
    if algo.full_batch:
        return algo.numpy_fn(x, y, theta, lr=lr, steps=len(order), kind=kind)
    return algo.numpy_fn(x, y, theta, lr=lr, order=order, kind=kind, **values)


# A run whose loss ends this many times above its start has diverged: a stable one ends
# below its start, and RMSprop at lr=10 overshoots to 800x for one step, then comes back.
GROWTH = 100.0


def path_losses(path: np.ndarray, x: np.ndarray, y: np.ndarray, kind: Loss) -> np.ndarray:
    """J at every iterate; inf where the iterate or its loss overflowed."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array([loss(theta, x, y, kind) for theta in path])
    return np.where(np.isfinite(out), out, np.inf)


def divergence_step(losses: np.ndarray, *, growth: float = GROWTH) -> int | None:
    """The step from which the loss stays above ``growth`` times its start (or overflows), if it ends there.

    Overflow alone missed most divergence: gradient descent at lr=5 reached a loss of 1e210,
    still a finite float.
    """
    above = losses > growth * max(float(losses[0]), 1e-12)
    if not above[-1]:
        return None
    below = np.flatnonzero(~above)
    return int(below[-1]) + 1 if below.size else 0


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest distance between matching iterates, over the largest ``|theta|`` on torch's path.

    Relative to the path's own scale: an absolute difference of 6e41 between two paths that
    both reach 1e57 is float64 rounding, not a different algorithm.
    """
    gap = np.linalg.norm(ours - theirs, axis=1).max()
    return float(gap / max(float(np.linalg.norm(theirs, axis=1).max()), 1e-300))


def stable_lr(x: np.ndarray) -> float:
    """The largest lr at which full-batch gradient descent on the squared loss converges: 2 / lambda_max.

    The loss's Hessian is X^T X / m; a step larger than 2 / its largest eigenvalue makes the
    error along that eigenvector grow every step.
    """
    return float(2 / np.linalg.eigvalsh(x.T @ x / len(x)).max())


def tutorial_data(kind: Loss, *, n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One feature with the bias column: y = 4 + 3x + noise, or its sign as a 0/1 label."""
    rng = np.random.default_rng(seed)
    x = 2 * rng.random((n, 1))
    y = 4 + 3 * x[:, 0] + rng.normal(size=n)
    if kind == "logistic":
        y = (y > 7).astype(float)
    return with_bias(x), y
