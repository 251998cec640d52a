"""The batched engine gives the sequential engine's records, run by run, only faster."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import math
from collections.abc import Iterable, Sequence

import pytest
import torch

from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.config import ComparisonConfig, RunConfig
from dlopt_core.catalog.models import MODELS, build_model
from dlopt_core.engine.batched import BatchedEngine, layers_of, why_not_batched
from dlopt_core.engine.loop import load_run_data, run
from dlopt_core.engine.plan import build_engine, plan
from dlopt_core.engine.records import Record, Status
from dlopt_core.engine.split import SplitEngine, cpu_parts
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.observer import Observer

BATCHABLE = [n for n, s in OPTIMIZERS.items() if s.batchable]
FIELDS = ("batch_loss", "train_loss", "val_loss", "val_metric", "lr")


def _cfg(optimizer: str, seed: int = 0, lr: float | None = None, **values) -> RunConfig:
    spec = OPTIMIZERS[optimizer]
    base = {
        "data": {"name": "digits"}, "model": {"name": "mlp", "params": {"hidden": (24, 16)}},
        "epochs": 2, "batch_size": None if spec.full_batch_only else 64,
        "optimizer": {"name": optimizer, **({"lr": lr} if lr else {})}, "seed": seed,
    }
    return RunConfig.make(**{**base, **values})


def _float64(cfg: RunConfig):
    data = load_run_data(cfg)
    return dataclasses.replace(data, x_train=data.x_train.double(), x_val=data.x_val.double(),
                               y_train=data.y_train if data.task == "classification" else data.y_train.double(),
                               y_val=data.y_val if data.task == "classification" else data.y_val.double())


def _batched(configs: Sequence[RunConfig], data, **kw) -> list[list[Record]]:
    out: list[list[Record]] = [[] for _ in configs]
    for k, rec in BatchedEngine(configs, data=data, **kw):
        out[k].append(rec)
    return out


def _worst(a: Iterable[Record], b: Iterable[Record]) -> float:
    """Largest relative difference between two runs' records (which must align)."""
    a, b = list(a), list(b)
    assert [(r.step, r.status, r.is_eval) for r in a] == [(r.step, r.status, r.is_eval) for r in b]
    worst = 0.0
    for ra, rb in zip(a, b):
        for f in FIELDS:
            va, vb = getattr(ra, f), getattr(rb, f)
            assert (va is None) == (vb is None)
            if va is not None and math.isfinite(va):
                worst = max(worst, abs(va - vb) / max(abs(va), 1e-12))
    return worst


@pytest.fixture(scope="module")
def float64_runs():
    """Every batchable optimizer (with dropout, two seeds) trained both ways in float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        results = {}
        model = {"name": "mlp", "params": {"hidden": (24, 16), "dropout": 0.1}}
        configs = [_cfg(name, seed, model=model) for name in BATCHABLE for seed in (0, 1)]
        data = _float64(configs[0])
        by_batch: dict[object, list[RunConfig]] = {}
        for c in configs:
            by_batch.setdefault(c.batch_size, []).append(c)
        for group in by_batch.values():
            for c, got in zip(group, _batched(group, data)):
                results[(c.optimizer.name, c.seed)] = (list(run(c, data=data)), got)
        return results
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("optimizer", BATCHABLE)
def test_every_batchable_optimizer_equals_its_sequential_run_in_float64(float64_runs, optimizer: str) -> None:
    for seed in (0, 1):
        sequential, batched = float64_runs[(optimizer, seed)]
        assert sequential[-1].status is Status.FINISHED
        assert _worst(sequential, batched) < 1e-12


def test_float32_curves_agree_after_five_epochs() -> None:
    configs = [_cfg(n, epochs=5) for n in ("sgd", "momentum", "adam", "rmsprop", "adagrad")]
    data = load_run_data(configs[0])
    for c, got in zip(configs, _batched(configs, data)):
        assert _worst(run(c, data=data), got) < 1e-4


@pytest.mark.parametrize("extra", [
    {"grad_clip": 0.5},
    {"schedule": {"name": "plateau", "params": {"patience": 0, "factor": 0.3}}},
    {"schedule": {"name": "one_cycle"}},
    {"data": {"name": "linear"}, "model": {"name": "linear"}},
    {"data": {"name": "moons"}, "model": {"name": "mlp", "params": {"activation": "tanh"}}},
], ids=["clip", "plateau", "one_cycle", "regression", "moons-tanh"])
def test_clipping_schedules_and_regression_match(extra: dict) -> None:
    configs = [_cfg(n, seed, **extra) for n in ("sgd", "adam") for seed in (0, 3)]
    data = load_run_data(configs[0])
    for c, got in zip(configs, _batched(configs, data)):
        assert _worst(run(c, data=data), got) < 1e-4


def test_bf16_autocast_is_batched_and_stays_close() -> None:
    configs = [_cfg(n, precision="bf16") for n in ("sgd", "adam")]
    data = load_run_data(configs[0])
    for c, got in zip(configs, _batched(configs, data)):
        seq = list(run(c, data=data))
        assert [r.step for r in seq] == [r.step for r in got]
        assert abs(seq[-1].val_loss - got[-1].val_loss) < 0.05 * seq[-1].val_loss


def test_a_diverging_run_stops_at_its_exact_step_and_spares_the_others() -> None:
    setup = {"data": {"name": "linear"}, "model": {"name": "linear"}, "epochs": 3}
    calm = [_cfg("adam", **setup), _cfg("momentum", seed=2, **setup)]
    wild = _cfg("sgd", lr=5.0, **setup)
    data = load_run_data(calm[0])
    alone = list(run(wild, data=data))
    assert alone[-1].status is Status.DIVERGED and alone[-1].step > 1
    for block in (1, 7):  # 7: losses read in blocks, as on a GPU
        got = _batched([calm[0], wild, calm[1]], data, block=block)
        assert [(r.step, r.status) for r in got[1]] == [(r.step, r.status) for r in alone]
        # The others are what they are without the diverging run beside them (to float rounding:
        # a stack of another height may sum in another order).
        without = _batched(calm, data)
        assert got[0][-1].status is got[2][-1].status is Status.FINISHED
        assert _worst(without[0], got[0]) < 1e-5 and _worst(without[1], got[2]) < 1e-5


def test_reading_losses_in_blocks_gives_the_same_records() -> None:
    configs = [_cfg(n, seed) for n in ("sgd", "adam") for seed in (0, 1)]
    data = load_run_data(configs[0])
    one, blocked = _batched(configs, data, block=1), _batched(configs, data, block=10)
    for a, b in zip(one, blocked):
        assert _worst(a, b) == 0.0


def test_one_run_stops_alone() -> None:
    configs = [_cfg(n) for n in ("sgd", "adam", "rmsprop")]
    data = load_run_data(configs[0])
    engine = BatchedEngine(configs, data=data)
    got: list[list[Record]] = [[] for _ in configs]
    for k, rec in engine:
        got[k].append(rec)
        if k == 1 and rec.step == 5:
            assert engine.stop(1) and not engine.stop(1)
    assert got[1][-1].step == 5 and got[1][-1].status is Status.RUNNING
    assert engine.active == []
    for k in (0, 2):
        assert _worst(run(configs[k], data=data), got[k]) < 1e-4


def test_lbfgs_and_cnn_fall_back_to_the_sequential_engine() -> None:
    assert why_not_batched(_cfg("lbfgs"))
    assert why_not_batched(_cfg("adam", model={"name": "cnn"}))
    assert why_not_batched(_cfg("adam", precision="fp16"))
    configs = [_cfg("sgd"), _cfg("lbfgs"), _cfg("adam"), _cfg("rprop"), _cfg("asgd", batch_size=None)]
    assert plan(configs, "auto") == [("batched", [0, 2]), ("batched", [3, 4]), ("sequential", [1])]
    assert plan(configs, "sequential") == [("sequential", [0, 1, 2, 3, 4])]
    # auto leaves a lone batchable run alone; batched stacks even one
    assert plan(configs[:2], "auto") == [("sequential", [0, 1])]
    assert plan(configs[:2], "batched") == [("batched", [0]), ("sequential", [1])]
    data = load_run_data(configs[0])
    engine = build_engine(configs, data=data, choice="auto")
    got: list[list[Record]] = [[] for _ in configs]
    for i, rec in engine:
        got[i].append(rec)
    for c, records in zip(configs, got):
        assert _worst(run(c, data=data), records) < 1e-4


def test_a_comparison_reports_the_engine_of_every_run_and_its_elapsed_time() -> None:
    config = ComparisonConfig.make(
        data={"name": "wine"}, optimizers=({"name": "sgd"}, {"name": "adam"}, {"name": "lbfgs"}),
        seeds=(0, 1), epochs=2, engine="auto",
    )
    comparison = Comparison(config).execute()
    assert [r.engine for r in comparison.runs] == ["batched"] * 4 + ["sequential"] * 2
    assert all(r.status is Status.FINISHED for r in comparison.runs)
    assert comparison.elapsed_s > 0
    sequential = Comparison(config.model_copy(update={"engine": "sequential"})).execute()
    for a, b in zip(comparison.runs, sequential.runs):
        assert _worst(b.records, a.records) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batched_equals_sequential() -> None:
    configs = [_cfg(n, device="cuda") for n in ("sgd", "adam", "adamw")]
    data = load_run_data(configs[0])
    for c, got in zip(configs, _batched(configs, data)):
        assert _worst(run(c, data=data), got) < 1e-3


def test_a_group_split_over_processes_gives_the_same_records_and_stops_one_run() -> None:
    configs = [_cfg(n, seed) for n in ("sgd", "adam", "rmsprop") for seed in (0, 1)]
    data = load_run_data(configs[0])
    alone = _batched(configs, data)
    engine = SplitEngine(configs, data=data, parts=2)
    got: list[list[Record]] = [[] for _ in configs]
    for k, rec in engine:
        got[k].append(rec)
        if k == 3 and rec.step == 4:
            assert engine.stop(3)
    assert engine.active == []
    for k in (0, 1, 2, 4, 5):
        assert _worst(alone[k], got[k]) < 1e-5 and got[k][-1].status is Status.FINISHED
    assert got[3][-1].step == 4


def test_a_crashing_child_process_fails_its_runs_only(monkeypatch) -> None:
    good = [_cfg("sgd"), _cfg("adam")]
    bad = _cfg("adam", seed=99)
    real = BatchedEngine._step

    def step(self, *args):
        if any(r.config.seed == 99 for r in self.runs):
            raise RuntimeError("boom")
        return real(self, *args)

    monkeypatch.setattr(BatchedEngine, "_step", step)  # the forked children inherit it
    data = load_run_data(good[0])
    engine = SplitEngine([good[0], good[1], bad, bad], data=data, parts=2)
    assert engine.members == [[0, 1], [2, 3]]
    ends = {}
    for k, rec in engine:
        if rec.status.ended:
            ends[k] = rec.status
    assert ends == {0: Status.FINISHED, 1: Status.FINISHED, 2: Status.FAILED, 3: Status.FAILED}
    assert engine._pids == []  # every child was reaped


def test_cpu_groups_split_only_where_cores_and_runs_allow(monkeypatch) -> None:
    monkeypatch.setenv("DLOPT_ENGINE_PROCESSES", "2")
    assert cpu_parts(8, "cpu") == 2 and cpu_parts(3, "cpu") == 1 and cpu_parts(8, "cuda") == 1
    assert cpu_parts(8, "cpu", steps=50) == 1  # too short to repay starting processes
    monkeypatch.setenv("DLOPT_ENGINE_PROCESSES", "1")
    assert cpu_parts(64, "cpu") == 1


@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_flagged_stackable_is_built_only_of_stackable_layers(name: str) -> None:
    cfg = _cfg("adam", model={"name": name, "params": {"dropout": 0.2} if name == "mlp" else {}})
    model = build_model(cfg.model, load_run_data(cfg), 0)
    assert (layers_of(model) is not None) == MODELS[name].stackable
    assert (why_not_batched(cfg) is None) == MODELS[name].stackable


def test_runs_differing_only_in_seed_share_one_optimizer_and_still_stop_alone() -> None:
    configs = [_cfg("adam", seed) for seed in (0, 1, 2)] + [_cfg("adafactor", seed) for seed in (0, 1)]
    data = load_run_data(configs[0])
    engine = BatchedEngine(configs, data=data)
    assert [members for _, members in engine._optimizers] == [[0, 1, 2], [3], [4]]  # Adafactor: per matrix
    got: list[list[Record]] = [[] for _ in configs]
    for k, rec in engine:
        got[k].append(rec)
        if k == 1 and rec.step == 5:
            engine.stop(1)
    assert got[1][-1].step == 5
    for k in (0, 2, 3, 4):
        assert _worst(run(configs[k], data=data), got[k]) < 1e-4 and got[k][-1].status is Status.FINISHED


def test_an_interrupt_while_runs_are_announced_ends_every_run_and_leaves_no_process(monkeypatch) -> None:
    class Interrupted(BaseException):  # as the worker's SIGTERM handler raises
        pass

    monkeypatch.setenv("DLOPT_ENGINE_PROCESSES", "2")
    config = ComparisonConfig.make(
        data={"name": "wine"}, optimizers=({"name": "sgd"}, {"name": "adam"}), seeds=(0, 1), epochs=300,
    )
    events: list[tuple[str, int]] = []

    class InterruptTheThird(Observer):
        def run_started(self, run):
            if run.index == 2:
                raise Interrupted()
            events.append(("started", run.index))

        def run_ended(self, run):
            events.append(("ended", run.index))

    closed: list[SplitEngine] = []
    real_close = SplitEngine.close

    def close(self):
        real_close(self)
        closed.append(self)

    monkeypatch.setattr(SplitEngine, "close", close)
    comparison = Comparison(config)
    with pytest.raises(Interrupted):
        comparison.execute(observers=[InterruptTheThird()])
    assert [r.status for r in comparison.runs] == [Status.CANCELLED] * 4
    # Ended exactly the runs the observer was told about (run 2 was being announced).
    assert sorted(events) == [("ended", 0), ("ended", 1), ("ended", 2), ("started", 0), ("started", 1)]
    assert [e._pids for e in closed] == [[]]  # the forked processes were killed and reaped


def test_a_split_works_when_the_caller_uses_several_torch_threads() -> None:
    # An OpenMP thread team does not survive fork(): a child must not wait for it. In a fresh
    # process, so a regression shows as a timeout instead of hanging the suite.
    script = (
        "import torch; torch.set_num_threads(2); torch.randn(256, 256) @ torch.randn(256, 256)\n"
        "from dlopt_core.config import RunConfig\n"
        "from dlopt_core.engine.loop import load_run_data\n"
        "from dlopt_core.engine.split import SplitEngine\n"
        "cfgs = [RunConfig.make(optimizer={'name': n}, epochs=2) for n in ('sgd', 'adam', 'rmsprop', 'adamw')]\n"
        "ends = [r.status for _, r in SplitEngine(cfgs, data=load_run_data(cfgs[0]), parts=2) if r.status.ended]\n"
        "print(sorted(ends))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted([Status.FINISHED] * 4))
