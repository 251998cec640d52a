"""Small models as registry entries, built from a seed so every optimizer starts from the same weights.

A model's hyperparameters (widths, activation, dropout, channels) are declared on its spec,
like an optimizer's: validation, widgets, the CLI (``mlp:hidden=128/64,activation=tanh``),
the URL and MLflow params all come from the declaration. Adding a model is one entry.
"""

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
from dlopt_core.catalog.hyperparams import HyperParam, lookup

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}

# torch's default initialisers draw from the process-global RNG, which job threads share:
# every module construction that may draw from it takes this lock.
INIT_LOCK = threading.Lock()


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


Params = dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    """A named model family, its hyperparameters and what it needs from the data."""

    name: str
    label: str
    build: Callable[[Dataset, Params, int], nn.Module]
    hyperparams: tuple[HyperParam, ...] = ()
    needs_images: bool = False
    convex: bool = False
    # Built only from Linear, activation and dropout layers: K runs can train as one stacked
    # model (dlopt_core.engine.batched).
    stackable: bool = False
    description: str = ""


def _linear(data: Dataset, p: Params, seed: int) -> nn.Module:
    return nn.Linear(data.n_features, data.n_outputs)


def _mlp(data: Dataset, p: Params, seed: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = data.n_features
    for i, hidden in enumerate(p["hidden"]):
        layers += [nn.Linear(width, hidden), ACTIVATIONS[p["activation"]]()]
        if p["dropout"] > 0:
            layers.append(SeededDropout(p["dropout"], seed * 1000 + i))
        width = hidden
    layers.append(nn.Linear(width, data.n_outputs))
    return nn.Sequential(*layers)


def _cnn(data: Dataset, p: Params, seed: int) -> nn.Module:
    assert data.image_shape is not None
    channels, height, width = data.image_shape
    act = ACTIVATIONS[p["activation"]]
    layers: list[nn.Module] = [nn.Unflatten(1, data.image_shape)]
    for out in p["channels"]:
        layers += [nn.Conv2d(channels, out, 3, padding=1), act()]
        channels = out
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(channels * (height // 2) * (width // 2), data.n_outputs)]
    return nn.Sequential(*layers)


_ACTIVATION = HyperParam("activation", "relu", kind="choice", choices=tuple(ACTIVATIONS), help="non-linearity")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "linear", "Linear / logistic regression", _linear, convex=True, stackable=True,
            description="One linear layer: least squares or softmax regression (convex).",
        ),
        ModelSpec(
            "mlp", "MLP", _mlp, stackable=True,
            hyperparams=(
                HyperParam("hidden", (64,), 1, 4096, kind="ints", help="hidden widths, e.g. 128/64"),
                _ACTIVATION,
                HyperParam("dropout", 0.0, 0.0, 1.0, high_inclusive=False, help="share of units dropped in training"),
            ),
            description="Fully connected layers with an activation.",
        ),
        ModelSpec(
            "cnn", "Small CNN", _cnn,
            hyperparams=(
                HyperParam("channels", (16, 32), 1, 256, kind="ints", max_items=4,
                           help="3x3 convolutions, e.g. 16/32"),
                _ACTIVATION,
            ),
            needs_images=True,
            description="3x3 convolutions (16/32 channels by default) and a pooling layer; image data only.",
        ),
    )
}


def get_model_spec(name: str) -> ModelSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(MODELS, name, kind="model")


def build_model(cfg: Any, data: Dataset, seed: int) -> nn.Module:
    """Model ``cfg.name`` (with ``cfg.params``) for ``data``, weights drawn from ``seed``, on the data's device."""
    spec = get_model_spec(cfg.name)
    with INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(data, dict(cfg.params), seed)
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
