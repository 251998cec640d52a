"""Quantization with torchao's ``quantize_`` (the maintained API; ``torch.ao.quantization`` is
deprecated), and fp16 / bf16 weight casting.

``quantize_`` converts the weights of linear layers only; a convolution stays float32, and the
result says how many weight layers were converted. torchao is imported on first use: it
takes about a second and prints notes about GPU kernels a CPU machine has no use for.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

Int8Mode = Literal["weight", "dynamic"]


class CastInput(nn.Module):
    """A model whose weights were cast to ``dtype``: inputs are cast on the way in, outputs back to float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


def cast_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` with every parameter and buffer in ``dtype`` (fp16 or bf16)."""
    return CastInput(copy.deepcopy(model), dtype)


def quantize_int8(model: nn.Module, mode: Int8Mode, *, layers: set[str] | None = None) -> tuple[nn.Module, int]:
    """A copy of ``model`` with int8 linear weights: ``weight``-only, or ``dynamic`` (activations
    quantized per token at run time too). ``layers``: only these linear layers (by name).

    Returns the model and how many layers were converted.
    """
    with _quiet():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    config = Int8WeightOnlyConfig() if mode == "weight" else Int8DynamicActivationInt8WeightConfig()
    new = copy.deepcopy(model)
    chosen = [name for name, m in new.named_modules() if isinstance(m, nn.Linear) and (layers is None or name in layers)]
    if chosen:
        quantize_(new, config, filter_fn=lambda m, name: isinstance(m, nn.Linear) and name in chosen)
    return new, len(chosen)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torchao's import logs that its CUDA kernel libraries do not load (true and irrelevant on a
    # CPU), and torch warns about an enum torchao registers for torch.compile.
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
