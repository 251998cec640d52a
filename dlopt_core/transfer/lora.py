"""Low-rank adapters (Hu et al. 2021): a frozen ``nn.Linear`` plus a trainable rank-r update B A."""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + scale * x A^T B^T``: ``r * (in + out)`` trainable numbers beside a frozen layer.

    B starts at zero, so the wrapped layer computes exactly what ``base`` did until it trains.
    """

    def __init__(self, base: nn.Linear, rank: int, *, alpha: float | None = None, seed: int = 0) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"lora_rank: must be at least 1, got {rank}")
        self.base = base
        generator = torch.Generator().manual_seed(seed)
        # A as nn.Linear's own init draws it (Kaiming uniform, a = sqrt(5)); B zero.
        bound = 1.0 / math.sqrt(base.in_features)
        a = (torch.rand(rank, base.in_features, generator=generator) * 2 - 1) * bound
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_a = nn.Parameter(a.to(device=device, dtype=dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=dtype))
        self.scale = (alpha if alpha is not None else rank) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def effective_weight(self) -> torch.Tensor:
        """The weight this layer computes with: ``W + scale * B A``."""
        return self.base.weight + self.scale * self.lora_b @ self.lora_a


def add_lora(model: nn.Module, rank: int, *, skip: set[str], seed: int = 0) -> list[str]:
    """Wrap every ``nn.Linear`` of ``model`` (in place) but those named in ``skip``; the names wrapped."""
    wrapped = []
    for i, (name, module) in enumerate([(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]):
        if name in skip:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, LoRALinear(module, rank, seed=seed * 1000 + i))
        wrapped.append(name)
    return wrapped
