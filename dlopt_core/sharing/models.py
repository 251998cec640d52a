"""The sharing models. Each returns its outputs by task name and can say, from itself:

- :meth:`uses`: every weight matrix its forward pass multiplies by, one entry per use (a
  tied decoder's ``encoder.weight.t()`` is a use of the encoder's storage);
- :meth:`untie`: a copy with identical weights where every use has a tensor of its own, and
  for each of this model's parameters the copy's parameters that stand for its uses. The
  checks compare gradients against that copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Use:
    """One use of a parameter, as a parameter of the untied copy (``transposed``: used as ``.t()``)."""

    name: str
    transposed: bool = False


UseMap = dict[str, list[Use]]


def _identity(model: nn.Module) -> tuple[nn.Module, UseMap]:
    """A model that shares nothing unties to a plain copy: every parameter is its one use."""
    return copy.deepcopy(model), {n: [Use(n)] for n, _ in model.named_parameters()}


def _copy_into(target: nn.Parameter, value: torch.Tensor) -> None:
    with torch.no_grad():
        target.copy_(value)


class Autoencoder(nn.Module):
    """``n_in -> hidden -> n_in``. Tied: the decoder multiplies by ``encoder.weight.t()`` (same
    storage, one Parameter) and keeps a bias of its own; untied: a free ``nn.Linear`` decoder."""

    def __init__(self, n_in: int, hidden: int, *, tied: bool) -> None:
        super().__init__()
        self.tied = tied
        self.encoder = nn.Linear(n_in, hidden)
        if tied:
            self.decoder_bias = nn.Parameter(torch.zeros(n_in))
        else:
            self.decoder = nn.Linear(hidden, n_in)

    def decoder_weight(self) -> torch.Tensor:
        # A view, not a copy: the tied decoder's gradient flows back into encoder.weight.
        return self.encoder.weight.t() if self.tied else self.decoder.weight

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = torch.tanh(self.encoder(x))
        bias = self.decoder_bias if self.tied else self.decoder.bias
        return {"reconstruct": F.linear(hidden, self.decoder_weight(), bias)}

    def uses(self) -> list[tuple[str, torch.Tensor]]:
        return [("encoder", self.encoder.weight), ("decoder", self.decoder_weight())]

    def untie(self) -> tuple[nn.Module, UseMap]:
        if not self.tied:
            return _identity(self)
        free = Autoencoder(self.encoder.in_features, self.encoder.out_features, tied=False)
        _copy_into(free.encoder.weight, self.encoder.weight)
        _copy_into(free.encoder.bias, self.encoder.bias)
        _copy_into(free.decoder.weight, self.encoder.weight.t())
        _copy_into(free.decoder.bias, self.decoder_bias)
        return free, {
            "encoder.weight": [Use("encoder.weight"), Use("decoder.weight", transposed=True)],
            "encoder.bias": [Use("encoder.bias")],
            "decoder_bias": [Use("decoder.bias")],
        }


class DeepMLP(nn.Module):
    """A stem, ``depth`` residual blocks of one width, a head. Shared (ALBERT-style): the blocks
    are ONE ``nn.Linear`` applied ``depth`` times; distinct: ``depth`` layers of their own."""

    def __init__(self, n_in: int, width: int, depth: int, n_out: int, *, shared: bool) -> None:
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        first = nn.Linear(width, width)
        rest = [first] * (depth - 1) if shared else [nn.Linear(width, width) for _ in range(depth - 1)]
        self.blocks = nn.ModuleList([first, *rest])
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.stem(x))
        for block in self.blocks:
            # Residual: the same layer applied many times stays trainable at depth (as in ALBERT).
            h = h + torch.tanh(block(h))
        return {"digit": self.head(h)}

    def uses(self) -> list[tuple[str, torch.Tensor]]:
        return [("stem", self.stem.weight), *((f"block {i + 1}", b.weight) for i, b in enumerate(self.blocks)),
                ("head", self.head.weight)]

    def untie(self) -> tuple[nn.Module, UseMap]:
        if not all(b is self.blocks[0] for b in self.blocks):
            return _identity(self)
        depth = len(self.blocks)
        free = DeepMLP(self.stem.in_features, self.stem.out_features, depth, self.head.out_features, shared=False)
        free.stem.load_state_dict(self.stem.state_dict())
        free.head.load_state_dict(self.head.state_dict())
        for block in free.blocks:
            block.load_state_dict(self.blocks[0].state_dict())
        uses = {n: [Use(n)] for n, _ in self.named_parameters() if not n.startswith("blocks.")}
        for p in ("weight", "bias"):
            uses[f"blocks.0.{p}"] = [Use(f"blocks.{i}.{p}") for i in range(depth)]
        return free, uses


class MultiTaskNet(nn.Module):
    """A trunk of ``depth`` Linear+ReLU layers and one linear head per task, all reading the trunk."""

    def __init__(self, n_in: int, width: int, depth: int, heads: dict[str, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({task: nn.Linear(width, n) for task, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {task: head(h) for task, head in self.heads.items()}

    def uses(self) -> list[tuple[str, torch.Tensor]]:
        # The trunk's output feeds every head: each trunk layer is used once per task.
        linears = [(f"trunk {i // 2 + 1}", m) for i, m in enumerate(self.trunk) if isinstance(m, nn.Linear)]
        return [(f"{name} ({task})", m.weight) for task in self.heads for name, m in linears] + [
            (f"head {task}", head.weight) for task, head in self.heads.items()
        ]

    def untie(self) -> tuple[nn.Module, UseMap]:
        if len(self.heads) < 2:
            return _identity(self)
        # One trunk per task, each a copy of this one: the "separate networks" at this model's weights.
        free = SeparateNets.__new__(SeparateNets)
        nn.Module.__init__(free)
        free.nets = nn.ModuleDict()
        uses: UseMap = {}
        for task, head in self.heads.items():
            net = copy.deepcopy(self)
            net.heads = nn.ModuleDict({task: net.heads[task]})
            free.nets[task] = net
            for n, _ in self.trunk.named_parameters():
                uses.setdefault(f"trunk.{n}", []).append(Use(f"nets.{task}.trunk.{n}"))
            for p in ("weight", "bias"):
                uses[f"heads.{task}.{p}"] = [Use(f"nets.{task}.heads.{task}.{p}")]
        return free, uses


class SeparateNets(nn.Module):
    """One :class:`MultiTaskNet` per task, each with one head: nothing shared between tasks."""

    def __init__(self, n_in: int, width: int, depth: int, heads: dict[str, int]) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({task: MultiTaskNet(n_in, width, depth, {task: n}) for task, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {task: out for net in self.nets.values() for task, out in net(x).items()}

    def uses(self) -> list[tuple[str, torch.Tensor]]:
        return [(f"{task}: {name}", t) for task, net in self.nets.items() for name, t in net.uses()]

    def untie(self) -> tuple[nn.Module, UseMap]:
        return _identity(self)
