"""Optimizer registry: one entry per optimizer, everything else iterates it.

An entry carries the factory, the default learning rate, the learning-rate search range,
the extra hyperparameters with their ranges, capability flags and which part of the
tutorial it illustrates. Pages, the CLI, Optuna spaces and tests never switch on names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
    # The update as torch computes it with this entry's factory, one LaTeX equation per line
    # (KaTeX in the app; every line also parses as matplotlib mathtext, which a test checks).
    update_rule: tuple[str, ...] = ()
    shines: str = ""  # one line: the problems where it does well

    def fused_on(self, device_type: str) -> bool:
        """Whether the registry asks torch for the fused kernel on ``device_type`` ("cuda", ...)."""
        return device_type in self.fused_devices

    def build(
        self, named_params: NamedParams, lr: float, hp: dict[str, Any], device: torch.device,
        *, groups: Sequence[ParamGroup] | None = None,
    ) -> Any:
        """Return a ready optimizer whose groups remember their starting lr.

        ``groups``: every parameter's :class:`ParamGroup` (by name). Parameters frozen for the
        whole run are left out, so they get no optimizer state; the others train with their
        group's lr multiplier (which the schedule keeps: it scales ``initial_lr``).
        """
        if groups is not None:
            named_params = _grouped(named_params, groups)
        opt = self.factory(named_params, lr, hp, self.fused_on(device.type))
        if groups is not None:
            _split_by_group(opt, named_params, groups)
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
        return opt


@dataclass(frozen=True)
class ParamGroup:
    """Parameters (by name) that share an lr multiplier and when they start to train.

    One mechanism for transfer learning: layer-wise lr decay is a multiplier per layer, a
    frozen backbone a group with ``trainable_from=None``, gradual unfreezing a later epoch.
    The loop sets ``requires_grad`` from :meth:`trainable_at` at each epoch's start; a
    parameter without a gradient is skipped by every torch optimizer, so it gets no state.
    """

    name: str
    params: tuple[str, ...]
    lr_mult: float = 1.0
    trainable_from: int | None = 0  # the first epoch (0-based) it trains; None: never

    def trainable_at(self, epoch: int) -> bool:
        """Whether this group trains during ``epoch`` (0-based)."""
        return self.trainable_from is not None and epoch >= self.trainable_from


def _grouped(named: NamedParams, groups: Sequence[ParamGroup]) -> NamedParams:
    """``named`` less the parameters that never train; every parameter must be in one group."""
    owner = {p: g for g in groups for p in g.params}
    if missing := [n for n, _ in named if n not in owner]:
        raise ValueError(f"groups: parameters in no group: {', '.join(missing)}")
    return [(n, p) for n, p in named if owner[n].trainable_from is not None]


def _split_by_group(opt: Any, named: NamedParams, groups: Sequence[ParamGroup]) -> None:
    """Split each of the factory's groups (weight decay, Muon's two parts) by :class:`ParamGroup`,
    its lr times the group's multiplier. Done before the first step: no state exists yet."""
    owner = {p: g for g in groups for p in g.params}
    group_of = {id(p): owner[n] for n, p in named}
    if all(g.lr_mult == 1.0 for g in group_of.values()):
        return  # one lr for all: the factory's groups as they are
    for part in getattr(opt, "optimizers", [opt]):
        if isinstance(part, torch.optim.LBFGS):  # it steps its first group's parameters with one lr
            raise ValueError("groups: L-BFGS takes one learning rate for all parameters; per-layer rates need another optimizer")
        split: list[dict[str, Any]] = []
        for group in part.param_groups:
            by_group: dict[str, list[torch.nn.Parameter]] = {}
            for p in group["params"]:
                by_group.setdefault(group_of[id(p)].name, []).append(p)
            for name, params in by_group.items():
                mult = next(g.lr_mult for g in groups if g.name == name)
                split.append({**group, "params": params, "lr": group["lr"] * mult, "group": name, "lr_mult": mult})
        part.param_groups[:] = split


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

# Lines shared by several update rules. eta is the lr, lambda the weight decay; torch adds
# it to the gradient (L2) except where a rule says it decays the weights directly.
_GRAD = r"g_t = \nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}"
_M = r"m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t"
_V = r"v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2"
_HATS = r"\hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t}"
_ADAM_STEP = r"\theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}"
_SGD_MOMENTUM = r"b_t = \mu\, b_{t-1} + g_t \quad (b_1 = g_1)"

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
            update_rule=(_GRAD, r"\theta_t = \theta_{t-1} - \eta\, g_t"),
            shines="The baseline: cheap and predictable; slow where the curvature differs a lot between directions.",
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
            update_rule=(_GRAD, _SGD_MOMENTUM, r"\theta_t = \theta_{t-1} - \eta\, b_t"),
            shines="Long narrow valleys and ill-conditioned problems: speed builds along the valley, the zig-zag across it averages out.",
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
            update_rule=(_GRAD, _SGD_MOMENTUM, r"\theta_t = \theta_{t-1} - \eta\,(g_t + \mu\, b_t)"),
            shines="Where momentum works, with less overshoot: the look-ahead term brakes before a turn.",
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
            update_rule=(
                _GRAD,
                r"s_t = s_{t-1} + g_t^2",
                r"\theta_t = \theta_{t-1} - \eta\, \frac{g_t}{\sqrt{s_t} + \epsilon}",
            ),
            shines="Sparse or rarely active features keep large steps; on long runs every step keeps shrinking.",
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
            update_rule=(
                _GRAD,
                r"v_t = \rho\, v_{t-1} + (1-\rho)\, g_t^2",
                r"\Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t",
                r"u_t = \rho\, u_{t-1} + (1-\rho)\, \Delta_t^2",
                r"\theta_t = \theta_{t-1} - \eta\, \Delta_t",
            ),
            shines="Little lr tuning: steps carry the units of the parameters, so lr = 1 usually works.",
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
            update_rule=(
                _GRAD,
                r"v_t = \alpha\, v_{t-1} + (1-\alpha)\, g_t^2",
                r"b_t = \mu\, b_{t-1} + \frac{g_t}{\sqrt{v_t} + \epsilon} \quad (\mu = 0\text{: no momentum})",
                r"\theta_t = \theta_{t-1} - \eta\, b_t",
            ),
            shines="Non-stationary problems (RNNs, reinforcement learning): per-parameter scaling that forgets old gradients.",
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
            update_rule=(_GRAD, _M, _V, _HATS, _ADAM_STEP),
            shines="A robust default for networks: good results over a wide lr range with little tuning.",
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
            update_rule=(
                r"g_t = \nabla f(\theta_{t-1})",
                _M,
                _V,
                _HATS,
                r"\theta_t = (1 - \eta\lambda)\,\theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}",
            ),
            shines="Networks trained with weight decay: the decay shrinks the weights directly, not through Adam's scaling.",
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
            update_rule=(
                _GRAD,
                _M,
                r"u_t = \max(\beta_2\, u_{t-1},\ |g_t| + \epsilon)",
                r"\theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\, \frac{m_t}{u_t}",
            ),
            shines="Gradients with rare large spikes: the max norm forgets a spike more steadily than a squared average.",
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
            update_rule=(
                _GRAD,
                r"\mu_t = \beta_1 \left(1 - \frac{1}{2}\, 0.96^{\,0.004\, t}\right)",
                _M,
                _V,
                r"\hat m_t = \frac{\mu_{t+1}\, m_t}{1 - \prod_{i=1}^{t+1} \mu_i} + \frac{(1-\mu_t)\, g_t}{1 - \prod_{i=1}^{t} \mu_i}",
                r"\theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}",
            ),
            shines="Where Adam works, often a little faster early on: the momentum term looks one step ahead.",
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
            update_rule=(
                _GRAD,
                _M,
                _V,
                r"\rho_\infty = \frac{2}{1-\beta_2} - 1, \quad \rho_t = \rho_\infty - \frac{2t\,\beta_2^t}{1-\beta_2^t}, \quad \hat m_t = \frac{m_t}{1-\beta_1^t}",
                r"r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\,\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\,\rho_t}}",
                r"\theta_t = \theta_{t-1} - \eta\, \hat m_t\, r_t\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon} \quad \text{if } \rho_t > 5",
                r"\theta_t = \theta_{t-1} - \eta\, \hat m_t \quad \text{otherwise (the first steps: momentum SGD)}",
            ),
            shines="Adam without a warmup schedule: the first, unreliable adaptive steps are damped automatically.",
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
            update_rule=(
                r"\hat\beta_t = 1 - t^{\delta}, \quad \rho_t = \min(\eta,\ 1/\sqrt{t}) \quad (\delta = \text{beta2\_decay})",
                r"r_{t,i} = \hat\beta_t\, r_{t-1,i} + (1-\hat\beta_t)\, \mathrm{mean}_j\, G_{t,ij}^2 \quad \text{(one number per row)}",
                r"c_{t,j} = \hat\beta_t\, c_{t-1,j} + (1-\hat\beta_t)\, \mathrm{mean}_i\, G_{t,ij}^2 \quad \text{(one per column)}",
                r"\hat V_{t,ij} = r_{t,i}\, c_{t,j} / \mathrm{mean}_i\, r_{t,i}, \quad U_t = G_t / \sqrt{\hat V_t} \quad \text{(a vector keeps a full } \hat V_t)",
                r"\alpha_t = \rho_t \max(10^{-3},\ \mathrm{RMS}(\theta_{t-1}))",
                r"\theta_t = (1-\eta\lambda)\,\theta_{t-1} - \alpha_t\, U_t / \max(1,\ \mathrm{RMS}(U_t))",
            ),
            shines="Large weight matrices on little memory: a row and a column statistic replace Adam's full second moment.",
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
            update_rule=(
                r"B_t = \mu\, B_{t-1} + (1-\mu)\, G_t, \quad U_t = (1-\mu)\, G_t + \mu\, B_t \quad \text{(Nesterov)}",
                r"X_0 = U_t / \|U_t\|_F, \quad X_{k+1} = a X_k + (b A_k + c A_k^2)\, X_k, \quad A_k = X_k X_k^\top",
                r"(a, b, c) = (3.4445,\ -4.775,\ 2.0315), \quad O_t = X_5 \approx \text{orthogonalised } U_t",
                r"\theta_t = (1-\eta\lambda)\,\theta_{t-1} - 0.2\,\eta \sqrt{\max(m, n)}\; O_t \quad (m \times n \text{ matrix})",
                r"\text{biases and other non-matrix tensors: AdamW at adamw\_lr}",
            ),
            shines="Hidden weight matrices of networks: every direction of a matrix moves alike, so rare directions learn too.",
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
            update_rule=(
                r"g_t = \nabla f(\theta_{t-1}) + \omega\,\theta_{t-1} \quad (\omega = \text{weight\_decay},\ \lambda = \text{lambd})",
                r"\theta_t = (1 - \lambda\eta_{t-1})\,\theta_{t-1} - \eta_{t-1}\, g_t",
                r"\eta_t = \eta\, /\, (1 + \lambda\eta\, t)^{0.75}, \quad \eta_0 = \eta",
                r"\bar\theta_t = \bar\theta_{t-1} + \mu_{t-1} (\theta_t - \bar\theta_{t-1}), \quad \mu_t = 1 / \max(1,\ t - t_0)",
                r"\text{torch keeps } \bar\theta \text{ in its state; the model is evaluated at } \theta_t",
            ),
            shines="Convex, noisy problems: the averaged iterate (after step t0) cancels much of SGD's noise.",
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
            update_rule=(
                r"s_t = \mathrm{sign}(g_t\, g_{t-1})",
                r"\Delta_t = \eta_+ \Delta_{t-1} \text{ if } s_t > 0, \quad \eta_- \Delta_{t-1} \text{ if } s_t < 0, \quad \Delta_{t-1} \text{ if } s_t = 0",
                r"\Delta_t \leftarrow \mathrm{clip}(\Delta_t,\ 10^{-6},\ 50), \quad \Delta_0 = \eta",
                r"g_t \leftarrow 0 \text{ where } s_t < 0 \quad \text{(no move there, and no sign test next step)}",
                r"\theta_t = \theta_{t-1} - \Delta_t\, \mathrm{sign}(g_t)",
            ),
            shines="Full-batch problems with badly scaled gradients: only signs count, so gradient size does not matter.",
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
            update_rule=(
                r"s_i = \theta_{i+1} - \theta_i, \quad y_i = g_{i+1} - g_i, \quad \rho_i = 1 / (y_i^\top s_i) \quad \text{(last } m \text{ pairs)}",
                r"q \leftarrow g_k; \quad i = k-1, \ldots, k-m\colon\ \alpha_i = \rho_i\, s_i^\top q, \quad q \leftarrow q - \alpha_i y_i",
                r"r \leftarrow \gamma q, \quad \gamma = \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}}",
                r"i = k-m, \ldots, k-1\colon\ r \leftarrow r + s_i\, (\alpha_i - \rho_i\, y_i^\top r)",
                r"\theta_{k+1} = \theta_k - t_k\, r \quad (t_k\text{: strong Wolfe line search from } t = \eta)",
                r"\text{first iteration: } r = g_1,\ t = \eta \min(1,\ 1/\|g_1\|_1); \text{ max\_iter iterations per step}",
            ),
            shines="Small, smooth, deterministic problems (full batch): curvature from past gradients gives very fast convergence.",
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
            update_rule=(
                r"y_t = (1-\beta_1)\, z_t + \beta_1\, x_t, \quad g_t = \nabla f(y_t) \quad \text{(gradients at } y_t)",
                r"v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2",
                r"z_{t+1} = z_t - \gamma_t \left(\frac{g_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon} + \lambda\, y_t\right)",
                r"x_{t+1} = (1-c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \quad c_{t+1} = w_t \,/\, \sum_{i=1}^{t} w_i",
                r"\gamma_t = \eta \min(1,\ t/W), \quad w_t = (\max_{i \leq t} \gamma_i)^2 \quad (W = \text{warmup\_steps};\ 0\text{: none})",
                r"\text{evaluated at the average } x_t \text{ (optimizer.eval())}",
            ),
            shines="Runs of unknown length: no decay schedule to set, the running average does the annealing.",
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
