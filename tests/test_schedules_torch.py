"""Schedules that name a torch scheduler follow it step for step."""

import math

import pytest
import torch

from dlopt_core.catalog.hyperparams import check_params
from dlopt_core.catalog.schedules import SCHEDULES, Budget, lr_curve

BASE_LR = 0.3
CASES = [
    # (epochs, steps per epoch, pct_start, div_factor, final_div_factor)
    (10, 5, 0.3, 25.0, 1e4),
    (1, 3, 0.3, 25.0, 1e4),
    (1, 3, 0.5, 10.0, 100.0),
    (1, 1, 0.3, 25.0, 1e4),
    (1, 2, 0.25, 4.0, 2.0),
    (3, 7, 1e-3, 25.0, 1e4),
    (3, 7, 0.999, 25.0, 1e4),
    (1, 3, math.nextafter(0.0, 1.0), 25.0, 1e4),
    (1, 3, math.nextafter(1.0, 0.0), 25.0, 1e4),
    (7, 13, 0.45, 1.0, 1.0),
    (20, 50, 0.1, 1e4, 1e6),
]


def _torch_lrs(total: int, pct_start: float, div_factor: float, final_div_factor: float) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=BASE_LR, total_steps=total, pct_start=pct_start, anneal_strategy="cos",
        cycle_momentum=False, div_factor=div_factor, final_div_factor=final_div_factor, three_phase=False,
    )
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(total - 1):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize(("epochs", "per_epoch", "pct_start", "div_factor", "final_div_factor"), CASES)
def test_one_cycle_matches_torch_one_cycle_lr_step_for_step(
    epochs: int, per_epoch: int, pct_start: float, div_factor: float, final_div_factor: float
) -> None:
    spec = SCHEDULES["one_cycle"]
    params = check_params(
        spec.hyperparams,
        {"pct_start": pct_start, "div_factor": div_factor, "final_div_factor": final_div_factor},
        prefix="schedule",
    )
    budget = Budget(epochs, per_epoch)
    factor = spec.make(params, budget)
    ours = [BASE_LR * factor(k) for k in range(budget.total_steps)]
    theirs = _torch_lrs(budget.total_steps, pct_start, div_factor, final_div_factor)
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert math.isclose(a, b, rel_tol=1e-12), (k, a, b)
    final = BASE_LR / div_factor / final_div_factor
    assert math.isclose(ours[-1], final, rel_tol=1e-12)
    curve = lr_curve("one_cycle", params, BASE_LR, budget)
    assert curve.tolist() == ours


def test_one_cycle_peaks_at_the_base_lr_where_the_rise_ends_on_a_step() -> None:
    # 0.3 x 50 - 1 = step 14 is the end of the rise.
    spec = SCHEDULES["one_cycle"]
    params = check_params(spec.hyperparams, {}, prefix="schedule")
    curve = lr_curve("one_cycle", params, BASE_LR, Budget(10, 5))
    assert curve.argmax() == 14 and curve[14] == BASE_LR


def test_one_cycle_whose_rise_ends_at_step_zero_starts_at_the_peak() -> None:
    # pct_start x total = 1: torch divides 0 by 0 at step 0; the rise is over there.
    spec = SCHEDULES["one_cycle"]
    params = check_params(spec.hyperparams, {"pct_start": 0.25}, prefix="schedule")
    curve = lr_curve("one_cycle", params, BASE_LR, Budget(1, 4))
    assert curve[0] == BASE_LR and curve[-1] == pytest.approx(BASE_LR / 25 / 1e4, rel=1e-12)
    assert all(a > b for a, b in zip(curve, curve[1:]))


def test_pct_start_of_one_is_refused_with_the_range() -> None:
    with pytest.raises(ValueError, match=r"schedule\.pct_start: 1\.0 is outside the allowed range \(0, 1\)"):
        check_params(SCHEDULES["one_cycle"].hyperparams, {"pct_start": 1.0}, prefix="schedule")
