"""The engine's seams: the step function, the record stream, per-run stop, one status vocabulary."""

import pytest
import torch

from dlopt_core.config import ComparisonConfig, OptimizerConfig, RunConfig
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import run
from dlopt_core.engine.records import Status
from dlopt_core.engine.step import StepHooks, build_step
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.observer import Observer


def _cfg(**values) -> RunConfig:
    base = {"data": {"name": "wine"}, "optimizer": {"name": "momentum"}, "epochs": 3, "batch_size": 64}
    return RunConfig.make(**{**base, **values})


def _curve(records) -> list[tuple]:
    return [(r.step, r.batch_loss, r.train_loss, r.val_loss, r.val_metric, r.lr, r.status) for r in records]


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "lbfgs"])
def test_a_run_with_a_no_op_batch_transform_equals_a_plain_run_bit_for_bit(optimizer: str) -> None:
    cfg = _cfg(optimizer={"name": optimizer}, batch_size=None if optimizer == "lbfgs" else 64)
    plain = _curve(run(cfg))
    hooked = _curve(run(cfg, hooks=StepHooks(batch_transform=lambda x, y, g: (x, y))))
    zero_term = _curve(run(cfg, hooks=StepHooks(extra_loss=lambda x, out, y: out.sum() * 0.0)))
    assert hooked == plain and zero_term == plain


def test_a_batch_transform_changes_the_run_and_is_reproducible() -> None:
    def noise(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return x + 0.3 * torch.randn(x.shape, generator=gen), y

    cfg = _cfg()
    noisy = _curve(run(cfg, hooks=StepHooks(batch_transform=noise)))
    assert noisy != _curve(run(cfg))
    assert noisy == _curve(run(cfg, hooks=StepHooks(batch_transform=noise)))


def test_the_running_batch_loss_is_weighted_by_batch_size() -> None:
    # Wine: 142 training samples in batches of 64, 64 and 14.
    records = list(run(_cfg(epochs=1)))
    steps = [r for r in records if not r.is_eval]
    sizes = [64, 64, 14]
    seen = [s.samples for s in steps]
    assert [b - a for a, b in zip([0, *seen], seen)] == sizes
    weighted = sum(s.batch_loss * n for s, n in zip(steps, sizes)) / sum(sizes)
    unweighted = sum(s.batch_loss for s in steps) / len(steps)
    assert records[-1].running_loss == pytest.approx(weighted, rel=1e-12)
    assert records[-1].running_loss != pytest.approx(unweighted, rel=1e-6)


def test_the_train_loss_is_measured_on_the_whole_train_set_like_the_validation_loss() -> None:
    from dlopt_core.catalog.models import build_model
    from dlopt_core.engine.loop import evaluate, load_run_data

    cfg = _cfg(epochs=1, model={"name": "mlp", "params": {"dropout": 0.5}})
    records = list(run(cfg))
    first, last = records[0], records[-1]
    assert first.running_loss is None and first.wall_time == 0.0
    data = load_run_data(cfg)
    model = build_model(cfg.model, data, cfg.seed).eval()
    assert first.train_loss == evaluate(model, data, data.x_train, data.y_train)[0]
    # Dropout is on while training, off when measuring: the two differ.
    assert last.running_loss is not None and last.train_loss != pytest.approx(last.running_loss, rel=1e-3)


def test_lbfgs_counts_every_gradient_evaluation_of_its_steps() -> None:
    records = list(run(_cfg(optimizer={"name": "lbfgs", "lr": 1.0}, batch_size=None, epochs=3)))
    steps = [r for r in records if not r.is_eval]
    assert all(r.grad_evals is not None and r.grad_evals >= r.step for r in steps)
    assert steps[-1].grad_evals > steps[-1].step  # several evaluations per L-BFGS step
    assert [r.grad_evals for r in records if r.is_eval][0] == 0
    assert all(r.grad_evals is None for r in run(_cfg(epochs=1)))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_differs_from_fp32(precision: str) -> None:
    cfg = _cfg(precision=precision, optimizer={"name": "adam", "lr": 0.01})
    evals = [r for r in run(cfg) if r.is_eval]
    assert evals[-1].status is Status.FINISHED
    assert evals[-1].train_loss < evals[0].train_loss / 2
    assert _curve(run(cfg)) != _curve(run(_cfg(optimizer={"name": "adam", "lr": 0.01})))


def test_fp16_is_refused_for_a_closure_optimizer() -> None:
    with pytest.raises(ConfigError, match="precision: fp16 needs loss scaling"):
        _cfg(optimizer={"name": "lbfgs"}, batch_size=None, precision="fp16")


def test_gradient_clipping_bounds_the_update() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = build_step(model, optimizer, lambda out, y: ((out.squeeze(-1) - y) ** 2).mean(), grad_clip=0.01)
    step(torch.randn(32, 5) * 100, torch.randn(32) * 100)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.linalg.vector_norm(after - before) == pytest.approx(0.01, rel=1e-5)


def _comparison(epochs: int = 3) -> Comparison:
    config = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("momentum:lr=0.05"), OptimizerConfig.parse("adam:lr=0.001")),
        data={"name": "wine"}, epochs=epochs, seeds="0,1",
    )
    return Comparison(config)


def test_one_run_stops_on_its_own_and_the_others_finish() -> None:
    comparison = _comparison()

    class StopTheSecond(Observer):
        def record(self, run, rec):
            if run.index == 1 and rec.step == 2:
                comparison.stop_run(1)

    comparison.execute(observers=[StopTheSecond()])
    statuses = [r.status for r in comparison.runs]
    assert statuses == [Status.FINISHED, Status.CANCELLED, Status.FINISHED, Status.FINISHED]
    assert comparison.runs[1].steps == 2 and comparison.runs[1].status_text == "cancelled at step 2"
    total = sum(r.total_steps for r in comparison.runs)
    assert comparison.progress == pytest.approx((total - comparison.runs[1].total_steps + 2) / total)


def test_an_observer_that_asks_to_stop_a_run_prunes_it() -> None:
    class Pruner(Observer):
        def record(self, run, rec):
            return run.index == 0 and rec.is_eval and rec.step > 0

    comparison = _comparison().execute(observers=[Pruner()])
    assert comparison.runs[0].status is Status.PRUNED and comparison.runs[0].steps == 3
    assert all(r.status is Status.FINISHED for r in comparison.runs[1:])


def test_stopping_everything_cancels_each_run_and_progress_shows_how_far_it_got() -> None:
    comparison = _comparison(epochs=50)
    seen = []

    class Count(Observer):
        def record(self, run, rec):
            seen.append(rec)

    comparison.execute(observers=[Count()], should_stop=lambda: len(seen) >= 40)
    assert all(r.status is Status.CANCELLED for r in comparison.runs)
    assert 0 < comparison.progress < 0.1


def test_a_crashing_run_fails_alone(monkeypatch) -> None:
    comparison = _comparison()
    broken = comparison.runs[2].config.optimizer
    import dlopt_core.catalog.optimizers as optimizers

    real = optimizers.OptimizerSpec.build

    def build(self, named, lr, hp, device):
        if self.name == broken.name:
            raise RuntimeError("no kernel for this device")
        return real(self, named, lr, hp, device)

    monkeypatch.setattr(optimizers.OptimizerSpec, "build", build)
    comparison.execute()
    assert [r.status for r in comparison.runs] == [Status.FINISHED, Status.FINISHED, Status.FAILED, Status.FAILED]
    assert "no kernel" in comparison.runs[2].status_text


def test_every_status_word_is_one_vocabulary() -> None:
    assert [s.value for s in Status] == ["pending", "running", "finished", "diverged", "pruned", "cancelled", "failed"]
    assert [s for s in Status if s.completed] == [Status.FINISHED, Status.DIVERGED]
    assert not any(s.ended for s in (Status.PENDING, Status.RUNNING))


@pytest.mark.parametrize("engine", ["batched", "sequential"])
def test_a_loss_a_million_times_its_start_has_diverged_though_finite(engine: str) -> None:
    import math

    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=3"), OptimizerConfig.parse("adam:lr=0.01")),
        # Least squares: SGD at lr=3 grows the loss ~10x a step, past 1e6x its start before inf.
        data={"name": "linear"}, model={"name": "linear"}, epochs=6, seeds="0", engine=engine,
    )
    sgd, adam = Comparison(cfg).execute().runs
    assert sgd.status is Status.DIVERGED and adam.status is Status.FINISHED
    start = sgd.records[0].train_loss
    end = sgd.records[-1]
    assert end.step == sgd.diverged_step
    assert math.isfinite(end.batch_loss) and end.batch_loss > 1e6 * start  # finite, and still diverged


def test_a_runs_time_counts_its_steps_only() -> None:
    records = list(run(_cfg(epochs=2)))
    assert records[0].wall_time == 0.0  # set-up is not training
    for before, rec in zip(records, records[1:]):
        if rec.is_eval:  # an evaluation adds nothing: its time is the last step's
            assert rec.wall_time == before.wall_time
        else:
            assert rec.wall_time >= before.wall_time


def test_a_run_keeps_its_final_weights_only_when_they_are_its_configs_model() -> None:
    from dlopt_core.catalog.models import build_model
    from dlopt_core.config import ModelConfig
    from dlopt_core.engine.loop import load_run_data, run

    config = RunConfig.make(data={"name": "wine"}, model=ModelConfig.parse("mlp:hidden=8"), epochs=1)
    data = load_run_data(config)
    same = build_model(config.model, data, 0)
    assert [r for r in run(config, data=data, model=same)][-1].state is not None
    # Structured pruning left 4 of 8 hidden units: the config's MLP could not load these weights.
    smaller = build_model(ModelConfig.parse("mlp:hidden=4"), data, 0)
    assert [r for r in run(config, data=data, model=smaller)][-1].state is None
