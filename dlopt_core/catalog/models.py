"""Small models by name, built from a seed so every optimizer starts from the same weights."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.hyperparams import lookup

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}

# torch's default initialisers draw from the process-global RNG, which job threads share.
_INIT_LOCK = threading.Lock()


class SeededDropout(nn.Module):
    """Dropout drawing from its own generator, so concurrent runs stay reproducible."""

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator).to(x.device) >= self.p
        return x * keep / (1 - self.p)


@dataclass(frozen=True)
class ModelSpec:
    """A named model family and what it needs from the data."""

    name: str
    label: str
    build: Callable[[Dataset, Any, int], nn.Module]
    needs_images: bool = False
    convex: bool = False
    description: str = ""


def _linear(data: Dataset, cfg: Any, seed: int) -> nn.Module:
    return nn.Linear(data.n_features, data.n_outputs)


def _mlp(data: Dataset, cfg: Any, seed: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = data.n_features
    for i, hidden in enumerate(cfg.hidden):
        layers += [nn.Linear(width, hidden), ACTIVATIONS[cfg.activation]()]
        if cfg.dropout > 0:
            layers.append(SeededDropout(cfg.dropout, seed * 1000 + i))
        width = hidden
    layers.append(nn.Linear(width, data.n_outputs))
    return nn.Sequential(*layers)


def _cnn(data: Dataset, cfg: Any, seed: int) -> nn.Module:
    assert data.image_shape is not None
    channels, height, width = data.image_shape
    act = ACTIVATIONS[cfg.activation]
    return nn.Sequential(
        nn.Unflatten(1, data.image_shape),
        nn.Conv2d(channels, 16, 3, padding=1),
        act(),
        nn.Conv2d(16, 32, 3, padding=1),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (height // 2) * (width // 2), data.n_outputs),
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "linear", "Linear / logistic regression", _linear, convex=True,
            description="One linear layer: least squares or softmax regression (convex).",
        ),
        ModelSpec("mlp", "MLP", _mlp, description="Fully connected layers with an activation."),
        ModelSpec(
            "cnn", "Small CNN", _cnn, needs_images=True,
            description="Two 3x3 convolutions and a pooling layer; image data only.",
        ),
    )
}


def get_model_spec(name: str) -> ModelSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(MODELS, name, kind="model")


def build_model(cfg: Any, data: Dataset, seed: int) -> nn.Module:
    """Model ``cfg.name`` for ``data`` with weights drawn from ``seed``, on the data's device."""
    spec = get_model_spec(cfg.name)
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(data, cfg, seed)
    return model.to(data.x_train.device)


def loss_fn(data: Dataset) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy for classification, mean squared error for regression."""
    if data.task == "classification":
        return nn.functional.cross_entropy
    return lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y)


def convex_optimum(data: Dataset) -> float:
    """Lowest unregularised train loss a linear model can reach on ``data``.

    Least squares has a closed form; softmax regression is solved by scikit-learn's L-BFGS
    (on separable data the infimum is 0 and this is the solver's best finite point).
    """
    x = data.x_train.double().cpu().numpy()
    y = data.y_train.cpu().numpy()
    if data.task == "regression":
        design = np.hstack([x, np.ones((len(x), 1))])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return float(np.mean((design @ coef - y) ** 2))
    solver = LogisticRegression(C=np.inf, max_iter=5000, tol=1e-10).fit(x, y)
    proba = np.clip(solver.predict_proba(x)[np.arange(len(y)), y], 1e-300, None)
    return float(-np.mean(np.log(proba)))
