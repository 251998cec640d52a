"""Optimizer registry: one entry per optimizer, everything else iterates it.

An entry carries the factory, the default learning rate, the learning-rate search range,
the extra hyperparameters with their ranges, capability flags and which part of the
tutorial it illustrates. Pages, the CLI, Optuna spaces and tests never switch on names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import schedulefree
import torch

from dlopt_core.catalog.hyperparams import HyperParam, lookup

NamedParams = list[tuple[str, torch.nn.Parameter]]
# (params, lr, hyperparameters, fused): ``fused`` says whether to ask torch for its fused
# kernel; factories whose class has none ignore it.
Factory = Callable[[NamedParams, float, dict[str, Any], bool], Any]

# Device types where the registry asks for fused=True. torch 2.13 has fused kernels on more
# (tests/test_optimizer_devices.py reads its lists); these are the ones chosen:
# - cpu: fused Adam / AdamW / Adagrad steps measured ~1.25x faster on the 2-core CPU
#   machines; SGD(fused=True) is ~150x slower there, so SGD never asks for it.
# - cuda: fused Adam / AdamW is torch's own recommendation. Adagrad stays on torch's CUDA
#   default: issue 13 saw fused Adagrad fail on GPUs, and no GPU timing says it pays.
FUSED_ADAM = frozenset({"cpu", "cuda"})
FUSED_CPU = frozenset({"cpu"})


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything the app knows about one optimizer."""

    name: str
    label: str
    factory: Factory
    default_lr: float
    lr_range: tuple[float, float]
    hyperparams: tuple[HyperParam, ...] = ()
    check: Callable[[dict[str, Any]], str | None] | None = None
    full_batch_only: bool = False
    needs_closure: bool = False
    train_eval_modes: bool = False
    # Whether K runs can share one stacked model, each stepping views of its slice
    # (dlopt_core.engine.batched): true for every optimizer that only needs the gradient.
    batchable: bool = True
    # Its update treats every element alone, so one optimizer can step a stack of runs'
    # tensors exactly as it steps each run's. Off unless an entry says so: a new optimizer
    # that mixes elements (LAMB's per-tensor trust ratio, Shampoo) must not be shared.
    elementwise: bool = False
    fused_devices: frozenset[str] = frozenset()
    description: str = ""
    tutorial: str = ""

    def fused_on(self, device_type: str) -> bool:
        """Whether the registry asks torch for the fused kernel on ``device_type`` ("cuda", ...)."""
        return device_type in self.fused_devices

    def build(
        self, named_params: NamedParams, lr: float, hp: dict[str, Any], device: torch.device
    ) -> Any:
        """Return a ready optimizer whose groups remember their starting lr."""
        opt = self.factory(named_params, lr, hp, self.fused_on(device.type))
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
        return opt


class CombinedOptimizer:
    """Several torch optimizers stepped as one (Muon for matrices, AdamW for the rest)."""

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        self.optimizers = [o for o in optimizers]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = closure() if closure is not None else None
        for o in self.optimizers:
            o.step()
        return loss


def _params(named: NamedParams) -> Iterator[torch.nn.Parameter]:
    return (p for _, p in named)


def _implementation(fused: bool) -> dict[str, Any]:
    # fused=False would also switch off foreach, torch's fast default on CUDA: leave both
    # unset unless fused is wanted, and torch picks foreach or a plain loop by device.
    return {"fused": True} if fused else {}


def _sgd(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.SGD(
        _params(named),
        lr=lr,
        momentum=hp["momentum"],
        nesterov=hp["nesterov"],
        weight_decay=hp["weight_decay"],
    )


def _sgd_params(momentum: float, nesterov: bool) -> tuple[HyperParam, ...]:
    return (
        HyperParam("momentum", momentum, 0.0, 0.999, help="fraction of the last step kept"),
        HyperParam("nesterov", nesterov, kind="bool", help="gradient at the look-ahead point"),
        _wd(),
    )


def _nesterov_needs_momentum(hp: dict[str, Any]) -> str | None:
    if hp["nesterov"] and hp["momentum"] <= 0:
        return "optimizer.nesterov: needs momentum > 0"
    return None


def _adam_like(cls: type[torch.optim.Optimizer]) -> Factory:
    def make(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
        return cls(
            _params(named),
            lr=lr,
            betas=(hp["beta1"], hp["beta2"]),
            eps=hp["eps"],
            weight_decay=hp["weight_decay"],
            **_implementation(fused),
        )

    return make


def _adagrad(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.Adagrad(
        _params(named), lr=lr, eps=hp["eps"], weight_decay=hp["weight_decay"], **_implementation(fused)
    )


def _adadelta(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.Adadelta(
        _params(named), lr=lr, rho=hp["rho"], eps=hp["eps"], weight_decay=hp["weight_decay"]
    )


def _rmsprop(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.RMSprop(
        _params(named),
        lr=lr,
        alpha=hp["alpha"],
        eps=hp["eps"],
        momentum=hp["momentum"],
        weight_decay=hp["weight_decay"],
    )


def _adafactor(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.Adafactor(
        _params(named), lr=lr, beta2_decay=hp["beta2_decay"], weight_decay=hp["weight_decay"]
    )


def _muon(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    matrices = [p for _, p in named if p.ndim == 2]
    others = [p for _, p in named if p.ndim != 2]
    parts: list[torch.optim.Optimizer] = []
    if matrices:
        parts.append(
            torch.optim.Muon(
                matrices,
                lr=lr,
                momentum=hp["momentum"],
                weight_decay=hp["weight_decay"],
                adjust_lr_fn="match_rms_adamw",
            )
        )
    if others:
        parts.append(
            torch.optim.AdamW(others, lr=hp["adamw_lr"], weight_decay=0.0, **_implementation(fused))
        )
    return CombinedOptimizer(parts)


def _asgd(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.ASGD(
        _params(named), lr=lr, lambd=hp["lambd"], t0=hp["t0"], weight_decay=hp["weight_decay"]
    )


def _rprop(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.Rprop(_params(named), lr=lr, etas=(hp["eta_minus"], hp["eta_plus"]))


def _lbfgs(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return torch.optim.LBFGS(
        _params(named),
        lr=lr,
        max_iter=int(hp["max_iter"]),
        history_size=int(hp["history_size"]),
        line_search_fn="strong_wolfe",
    )


def _schedulefree(named: NamedParams, lr: float, hp: dict[str, Any], fused: bool) -> Any:
    return schedulefree.AdamWScheduleFree(
        _params(named),
        lr=lr,
        betas=(hp["beta1"], hp["beta2"]),
        weight_decay=hp["weight_decay"],
        warmup_steps=int(hp["warmup_steps"]),
    )


def _wd(default: float = 0.0) -> HyperParam:
    return HyperParam("weight_decay", default, 0.0, 1.0, help="L2 penalty (decoupled for AdamW)")


def _eps(default: float = 1e-8) -> HyperParam:
    return HyperParam("eps", default, 1e-12, 1e-1, log=True, help="added to the denominator")


_BETAS = (
    HyperParam("beta1", 0.9, 0.0, 0.999, help="decay of the first-moment (momentum) average"),
    HyperParam("beta2", 0.999, 0.0, 0.99999, help="decay of the second-moment average"),
)

_ADAM_DOC = "Adaptive methods"

OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec(
            "sgd",
            "SGD",
            _sgd,
            elementwise=True,
            default_lr=0.1,
            lr_range=(1e-4, 1.0),
            hyperparams=_sgd_params(0.0, False),
            check=_nesterov_needs_momentum,
            description="(Stochastic) gradient descent; full batch makes it plain gradient descent.",
            tutorial="Gradient descent, SGD and mini-batches",
        ),
        OptimizerSpec(
            "momentum",
            "SGD + momentum",
            _sgd,
            elementwise=True,
            default_lr=0.05,
            lr_range=(1e-4, 1.0),
            hyperparams=_sgd_params(0.9, False),
            check=_nesterov_needs_momentum,
            description="Heavy-ball momentum: a velocity that averages past gradients.",
            tutorial="Momentum",
        ),
        OptimizerSpec(
            "nesterov",
            "SGD + Nesterov",
            _sgd,
            elementwise=True,
            default_lr=0.05,
            lr_range=(1e-4, 1.0),
            hyperparams=_sgd_params(0.9, True),
            check=_nesterov_needs_momentum,
            description="Nesterov momentum: the gradient is taken at the look-ahead point.",
            tutorial="Momentum",
        ),
        OptimizerSpec(
            "adagrad",
            "Adagrad",
            _adagrad,
            elementwise=True,
            default_lr=0.05,
            lr_range=(1e-4, 1.0),
            hyperparams=(_eps(1e-10), _wd()),
            fused_devices=FUSED_CPU,
            description="Per-parameter steps shrink with the sum of all past squared gradients.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "adadelta",
            "Adadelta",
            _adadelta,
            elementwise=True,
            default_lr=1.0,
            lr_range=(1e-2, 10.0),
            hyperparams=(
                HyperParam("rho", 0.9, 0.0, 0.999, help="decay of the squared-gradient average"),
                _eps(1e-6),
                _wd(),
            ),
            description="Adagrad with decaying averages and unit-corrected steps (lr ~ 1).",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "rmsprop",
            "RMSprop",
            _rmsprop,
            elementwise=True,
            default_lr=0.001,
            lr_range=(1e-5, 0.1),
            hyperparams=(
                HyperParam("alpha", 0.99, 0.0, 0.9999, help="decay of the squared-gradient average"),
                _eps(),
                HyperParam("momentum", 0.0, 0.0, 0.999),
                _wd(),
            ),
            description="Divides each step by a running RMS of recent gradients.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "adam",
            "Adam",
            _adam_like(torch.optim.Adam),
            elementwise=True,
            default_lr=0.001,
            lr_range=(1e-5, 0.1),
            hyperparams=(*_BETAS, _eps(), _wd()),
            fused_devices=FUSED_ADAM,
            description="Momentum plus RMSprop scaling, with bias correction.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "adamw",
            "AdamW",
            _adam_like(torch.optim.AdamW),
            elementwise=True,
            default_lr=0.001,
            lr_range=(1e-5, 0.1),
            hyperparams=(*_BETAS, _eps(), _wd(0.01)),
            fused_devices=FUSED_ADAM,
            description="Adam with weight decay decoupled from the gradient.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "adamax",
            "Adamax",
            _adam_like(torch.optim.Adamax),
            elementwise=True,
            default_lr=0.002,
            lr_range=(1e-5, 0.1),
            hyperparams=(*_BETAS, _eps(), _wd()),
            description="Adam with the infinity norm in place of the RMS.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "nadam",
            "NAdam",
            _adam_like(torch.optim.NAdam),
            elementwise=True,
            default_lr=0.002,
            lr_range=(1e-5, 0.1),
            hyperparams=(*_BETAS, _eps(), _wd()),
            description="Adam with Nesterov momentum.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "radam",
            "RAdam",
            _adam_like(torch.optim.RAdam),
            elementwise=True,
            default_lr=0.001,
            lr_range=(1e-5, 0.1),
            hyperparams=(*_BETAS, _eps(), _wd()),
            description="Adam that rectifies the variance of its early adaptive steps.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "adafactor",
            "Adafactor",
            _adafactor,
            default_lr=0.01,
            lr_range=(1e-4, 1.0),
            hyperparams=(
                HyperParam("beta2_decay", -0.8, -1.0, 0.0, help="exponent of the beta2 schedule"),
                _wd(),
            ),
            # not element-wise: row and column statistics of each matrix
            description="Memory-light Adam: second moments stored as row and column factors.",
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "muon",
            "Muon (+AdamW)",
            _muon,
            default_lr=0.02,
            lr_range=(1e-4, 0.5),
            hyperparams=(
                HyperParam("momentum", 0.95, 0.0, 0.999),
                _wd(0.0),
                HyperParam("adamw_lr", 0.001, 1e-5, 0.1, log=True, help="lr of the AdamW half"),
            ),
            fused_devices=FUSED_ADAM,  # for its AdamW half; torch's Muon has no fused kernel
            # not element-wise: orthogonalises each weight matrix
            # Exact when batched in float64, but torch's Newton-Schulz runs in bfloat16 and turns
            # a batched matmul's 1e-7 rounding differences into 1e-3 differences in the curves.
            batchable=False,
            description=(
                "Orthogonalised momentum for 2-D weight matrices; torch's Muon only takes "
                "matrices, so biases and conv kernels are trained by AdamW (adamw_lr)."
            ),
            tutorial=_ADAM_DOC,
        ),
        OptimizerSpec(
            "asgd",
            "ASGD",
            _asgd,
            elementwise=True,
            default_lr=0.05,
            lr_range=(1e-4, 1.0),
            hyperparams=(
                HyperParam("lambd", 1e-4, 0.0, 1.0, help="decay term"),
                HyperParam("t0", 1e6, 0.0, 1e9, help="step at which averaging starts"),
                _wd(),
            ),
            description="SGD that keeps a running average of its iterates.",
            tutorial="Gradient descent, SGD and mini-batches",
        ),
        OptimizerSpec(
            "rprop",
            "Rprop",
            _rprop,
            elementwise=True,
            default_lr=0.01,
            lr_range=(1e-5, 0.5),
            hyperparams=(
                # torch's Rprop needs 0 < eta_minus < 1 < eta_plus.
                HyperParam("eta_minus", 0.5, 0.0, 1.0, low_inclusive=False, high_inclusive=False,
                           help="step-size multiplier when the gradient's sign flips"),
                HyperParam("eta_plus", 1.2, 1.0, 5.0, low_inclusive=False,
                           help="step-size multiplier while the sign holds"),
            ),
            full_batch_only=True,
            description="Uses only the sign of the gradient; needs full batches to be meaningful.",
            tutorial="Adaptive methods",
        ),
        OptimizerSpec(
            "lbfgs",
            "L-BFGS",
            _lbfgs,
            default_lr=1.0,
            lr_range=(1e-2, 2.0),
            hyperparams=(
                HyperParam("max_iter", 5, 1, 50, kind="int", help="inner iterations per step"),
                HyperParam("history_size", 20, 1, 200, kind="int"),
            ),
            full_batch_only=True,
            needs_closure=True,
            batchable=False,  # its closure re-evaluates one run's loss inside the step
            description="Quasi-Newton with a strong Wolfe line search; full batch only.",
            tutorial="Gradient descent, SGD and mini-batches",
        ),
        OptimizerSpec(
            "schedulefree_adamw",
            "Schedule-free AdamW",
            _schedulefree,
            elementwise=True,
            default_lr=0.0025,
            lr_range=(1e-5, 0.1),
            hyperparams=(
                # eval() moves to y + (1 - 1/beta1) (z - y): beta1 = 0 divides by zero, and a
                # tiny beta1 blows the difference up by 1/beta1.
                HyperParam("beta1", 0.9, 0.01, 0.999, help="weight of the averaged iterate where gradients are taken"),
                _BETAS[1],
                _wd(),
                HyperParam("warmup_steps", 0, 0, 100000, kind="int"),
            ),
            train_eval_modes=True,
            description=(
                "AdamW without a decay schedule: averages iterates instead; evaluated at the "
                "averaged point (optimizer.eval()). Best with the constant schedule."
            ),
            tutorial="Learning-rate decay and selection",
        ),
    )
}


def get_optimizer(name: str) -> OptimizerSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(OPTIMIZERS, name, kind="optimizer")


def warm_up() -> None:
    """Build one optimizer of each registry entry on a tiny model.

    The first ``torch.optim`` construction in a process imports torch's compiler stack
    (about 1 s here); a server does it at start so no Run waits for it.
    """
    model = torch.nn.Linear(2, 2)
    for spec in OPTIMIZERS.values():
        hp = {p.name: p.default for p in spec.hyperparams}
        try:
            spec.build(list(model.named_parameters()), spec.default_lr, hp, torch.device("cpu"))
        except Exception:  # only a head start: a run that needs this entry reports its own error
            continue
