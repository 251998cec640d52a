"""The sweep's config and its points: what the CLI and the sensitivity page read."""

import pytest

from dlopt_core.errors import ConfigError
from dlopt_core.engine.records import Record, Status
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.sweep import SweepConfig, best_lrs, lr_grid, sweep_points


def _sweep(**values) -> SweepConfig:
    base = {"data": {"name": "wine"}, "optimizers": ({"name": "sgd"}, {"name": "adam"}),
            "lr_min": 1e-3, "lr_max": 1.0, "points": 4, "seeds": "0,1", "epochs": 2}
    return SweepConfig.make(**{**base, **values})


def test_the_grid_is_log_spaced_to_three_significant_digits_and_the_runs_cover_it() -> None:
    assert lr_grid(1e-4, 1, 5) == [0.0001, 0.001, 0.01, 0.1, 1.0]
    cfg = _sweep()
    assert [(r.optimizer.name, r.optimizer.lr, r.seed) for r in cfg.runs()] == [
        (o, lr, s) for o in ("sgd", "adam") for lr in cfg.lrs() for s in (0, 1)
    ]


def test_the_lr_an_optimizer_spec_carries_does_not_change_the_sweep() -> None:
    a = _sweep(optimizers=({"name": "sgd", "lr": 0.5}, {"name": "adam"}))
    assert a.key() == _sweep().key() and a.to_dict() == _sweep().to_dict()


@pytest.mark.parametrize("values, message", [
    ({"lr_min": 1.0, "lr_max": 0.1}, "lr_min: must be below lr_max"),
    ({"lr_min": 0.1, "lr_max": 0.1001, "points": 12}, "repeat at 3 significant digits"),
    ({"optimizers": ({"name": "sgd"}, {"name": "sgd", "params": {"momentum": 0.9}})}, "each optimizer once"),
    ({"optimizers": ({"name": "lbfgs"},), "precision": "fp16", "batch_size": "full"}, "fp16 needs loss scaling"),
])
def test_a_bad_sweep_is_refused_before_any_run(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _sweep(**values)


def test_points_leave_out_diverged_and_failed_seeds_and_the_best_lr_needs_every_seed() -> None:
    comparison = Comparison(_sweep())
    for r in comparison.runs:
        loss = {0.001: 1.0, 0.01: 0.5, 0.1: 0.2, 1.0: 0.1}[r.config.optimizer.lr]
        r.apply(Record(10, 2.0, 10, 0.1, r.config.optimizer.lr, None, 0.3, loss + r.config.seed / 100, 0.9,
                       Status.FINISHED))
    sgd_one = [r for r in comparison.runs if r.config.optimizer.name == "sgd" and r.config.optimizer.lr == 1.0]
    sgd_one[0].end(Status.DIVERGED)
    adam_one = [r for r in comparison.runs if r.config.optimizer.name == "adam" and r.config.optimizer.lr == 0.1]
    adam_one[1].end(Status.FAILED, error="boom")
    points = {(p.optimizer, p.lr): p for p in sweep_points(comparison)}
    assert points[("sgd", 1.0)].diverged == 1 and points[("sgd", 1.0)].mean_loss is None
    assert points[("adam", 0.1)].losses == (0.2,)  # the failed seed's value is left out
    best = best_lrs(list(points.values()), comparison.config.lrs())
    assert best["sgd"].lr == 0.1 and not best["sgd"].on_edge  # 1.0 had a diverged seed
    assert best["adam"].lr == 1.0 and best["adam"].on_edge
