"""The training loop: reproducible, stops on divergence, reports time and steps honestly."""

import pytest

from dlopt_core.config import RunConfig
from dlopt_core.engine.loop import run


def _cfg(**values) -> RunConfig:
    base = {"data": {"name": "digits"}, "optimizer": {"name": "momentum"}, "epochs": 3, "batch_size": 64}
    return RunConfig.make(**{**base, **values})


def _curve(cfg: RunConfig) -> list[tuple]:
    return [(r.step, r.batch_loss, r.train_loss, r.val_loss, r.val_metric, r.lr) for r in run(cfg)]


@pytest.mark.parametrize(
    "model", [{"name": "mlp", "params": {"hidden": "32", "dropout": 0.2}}, {"name": "cnn"}, {"name": "linear"}]
)
def test_same_config_and_seed_give_identical_curves(model: dict) -> None:
    cfg = _cfg(model=model)
    assert _curve(cfg) == _curve(cfg)


def test_different_seeds_give_different_curves_from_the_same_data() -> None:
    assert _curve(_cfg(seed=0)) != _curve(_cfg(seed=1))


def test_a_diverging_learning_rate_ends_the_run_at_that_step() -> None:
    records = list(run(_cfg(optimizer={"name": "sgd", "lr": 1e6})))
    last = records[-1]
    assert last.status == "diverged"
    assert 1 <= last.step < 3 * 23
    assert all(r.status == "running" for r in records[:-1])


def test_records_count_steps_samples_and_epochs() -> None:
    records = list(run(_cfg(epochs=2, batch_size=100)))
    steps = [r for r in records if not r.is_eval]
    evals = [r for r in records if r.is_eval]
    n_train = 1797 - round(0.2 * 1797)
    assert len(steps) == 2 * 15 and steps[-1].samples == 2 * n_train
    assert [e.step for e in evals] == [0, 15, 30] and evals[-1].epoch == 2.0
    assert evals[-1].status == "finished"
    assert all(b.wall_time >= a.wall_time for a, b in zip(records, records[1:]))


def test_full_batch_is_gradient_descent_one_step_per_epoch() -> None:
    records = list(run(_cfg(optimizer={"name": "sgd", "lr": 0.5}, batch_size=None, epochs=5)))
    steps = [r for r in records if not r.is_eval]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5]
    assert steps[0].samples == 1797 - round(0.2 * 1797)
    losses = [s.batch_loss for s in steps]
    assert losses == sorted(losses, reverse=True)  # GD on a smooth loss with a small step


def test_schedule_sets_the_learning_rate_each_step() -> None:
    records = [r for r in run(_cfg(schedule={"name": "step", "params": {"drops": 2, "gamma": 0.5}},
                                   optimizer={"name": "sgd", "lr": 0.2})) if not r.is_eval]
    assert records[0].lr == 0.2 and records[23].lr == 0.1 and records[-1].lr == 0.05


def test_closing_the_iterator_stops_training() -> None:
    it = run(_cfg(epochs=50))
    first = [next(it) for _ in range(5)]
    it.close()
    assert first[-1].step == 4
    with pytest.raises(StopIteration):
        next(it)
