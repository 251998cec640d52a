"""One toy problem every optimizer test steps on: a 3 -> 2 linear layer (a 2-D weight for
Muon, a 1-D bias for its AdamW half)."""

from __future__ import annotations

from typing import Any

import torch

from dlopt_core.catalog.optimizers import OptimizerSpec


def toy_model() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def take_steps(spec: OptimizerSpec, opt: Any, model: torch.nn.Module, *, steps: int = 1) -> None:
    """``steps`` optimizer steps on a fixed batch, with a closure where the optimizer needs one."""
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (model(x) - 1).pow(2).mean()
        loss.backward()
        return loss

    if spec.train_eval_modes:
        opt.train()
    for _ in range(steps):
        if spec.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
