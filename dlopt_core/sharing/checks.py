"""Is a tensor really shared? Read from the built model and optimizer, never from the config.

For one variant at one seed: the storages its forward pass multiplies by (``data_ptr``), its
parameter count (torch counts a shared Parameter once) against its untied copy's, the
optimizer's state entries after one step (one per tensor, not one per use), the gradient on
each shared tensor against the sum of its uses' gradients on the untied copy (autograd on
both, identical weights), and each tensor's entries in the optimizer's parameter groups
(weight decay applies once per entry: a tensor listed twice would be decayed twice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from dlopt_core.catalog.datasets import Dataset
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import OptimizerConfig
from dlopt_core.sharing.train import task_losses

CHECK_ROWS = 64  # the batch the gradient check and the one optimizer step use
# Two float32 sums of the same terms in another order differ by a few ulps of the largest term.
GRAD_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SharingCheck:
    """What one built variant shares, as numbers; the named booleans are read from them."""

    variant: str
    use_sites: int  # weight matrices the forward pass multiplies by, one per use
    storages: int  # distinct storages among them
    tensors: int  # distinct Parameters (model.parameters() yields each once)
    params: int  # sum(p.numel() for p in model.parameters())
    params_untied: int  # the same model with a tensor per use
    optimizer_states: int  # state entries after one step (0: the optimizer keeps none)
    group_entries: int  # parameter entries over all the optimizer's groups
    grad_error: float  # max |grad - sum of its uses' grads| over every parameter, relative
    same_object: bool  # each shared storage is one Parameter object (no two Parameters alias it)

    @property
    def shares_storage(self) -> bool:
        """Some weight matrix is used more than once from one storage."""
        return self.storages < self.use_sites

    @property
    def params_deduplicated(self) -> bool:
        """The parameter count is below the untied copy's: the shared tensor is counted once."""
        return self.params < self.params_untied

    @property
    def one_state_per_tensor(self) -> bool | None:
        """One optimizer state entry per tensor, not per use (None: the optimizer keeps no state)."""
        return None if self.optimizer_states == 0 else self.optimizer_states == self.tensors

    @property
    def grad_is_sum_of_uses(self) -> bool:
        """The gradient on each tensor is the sum of its uses' gradients (autograd on the untied copy)."""
        return self.grad_error <= GRAD_TOLERANCE

    @property
    def decayed_once(self) -> bool:
        """Each tensor is in exactly one parameter group, once: weight decay applies once."""
        return self.group_entries == self.tensors

    def flags(self) -> dict[str, bool | None]:
        """The named booleans, in the order a table shows them."""
        return {
            "shares_storage": self.shares_storage,
            "same_object": self.same_object,
            "params_deduplicated": self.params_deduplicated,
            "one_state_per_tensor": self.one_state_per_tensor,
            "grad_is_sum_of_uses": self.grad_is_sum_of_uses,
            "decayed_once": self.decayed_once,
        }

    def to_dict(self) -> dict[str, Any]:
        """The numbers and the named booleans (JSON, MLflow)."""
        return {**asdict(self), **self.flags()}


def _state_entries(optimizer: Any) -> int:
    # A combined optimizer (Muon + AdamW) keeps its state in its parts.
    return sum(len(o.state) for o in getattr(optimizer, "optimizers", [optimizer]))


def grad_error(model: nn.Module, data: Dataset) -> float:
    """The largest gap, relative to the gradient's size, between each parameter's gradient and
    the sum of its uses' gradients on the model's untied copy, both by autograd on one batch."""
    untied, uses = model.untie()  # type: ignore[operator]
    x, y = data.x_train[:CHECK_ROWS], data.y_train[:CHECK_ROWS]
    for m in (model, untied):
        m.zero_grad(set_to_none=True)
        sum(task_losses(m, x, y).values()).backward()
    free = dict(untied.named_parameters())
    worst = 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        expected = sum(free[u.name].grad.t() if u.transposed else free[u.name].grad for u in uses[name])
        scale = max(1.0, float(expected.abs().max()))
        worst = max(worst, float((p.grad - expected).abs().max()) / scale)
    model.zero_grad(set_to_none=True)
    return worst


def sharing_check(variant: str, model: nn.Module, data: Dataset, optimizer: OptimizerConfig) -> SharingCheck:
    """Check ``model`` (a freshly built variant, changed by this: it takes one step) with ``optimizer``."""
    uses = model.uses()  # type: ignore[operator]
    storages = {t.untyped_storage().data_ptr() for _, t in uses}
    params = list(model.parameters())
    owners: dict[int, set[int]] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(p.untyped_storage().data_ptr(), set()).add(id(p))
    untied, _ = model.untie()  # type: ignore[operator]
    error = grad_error(model, data)

    spec = get_optimizer(optimizer.name)
    opt = spec.build(list(model.named_parameters()), optimizer.lr, dict(optimizer.params), data.x_train.device)
    if spec.train_eval_modes:
        opt.train()
    opt.zero_grad(set_to_none=True)
    sum(task_losses(model, data.x_train[:CHECK_ROWS], data.y_train[:CHECK_ROWS]).values()).backward()
    opt.step()
    entries = [p for group in opt.param_groups for p in group["params"]]
    return SharingCheck(
        variant=variant,
        use_sites=len(uses),
        storages=len(storages),
        tensors=len(params),
        params=sum(p.numel() for p in params),
        params_untied=sum(p.numel() for p in untied.parameters()),
        optimizer_states=_state_entries(opt),
        # Entries that are model parameters, each counted as often as it is listed.
        group_entries=len(entries) if {id(p) for p in entries} <= {id(p) for p in params} else -1,
        grad_error=error,
        same_object=all(len(ids) == 1 for ids in owners.values()),
    )
