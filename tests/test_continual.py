"""Continual learning: the measures against the papers' formulas, EWC's penalty and Fisher by hand,
the replay buffer's bound, the task sequences, naive forgetting, and the work in a thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlopt_core.config import OptimizerConfig
from dlopt_core.continual import (
    EWC,
    SEQUENCES,
    Replay,
    ReplayBuffer,
    anytime_accuracy,
    average_accuracy,
    backward_transfer,
    fisher_diagonal,
    forgetting,
    forward_transfer,
    get_strategy,
    load_sequence,
)
from dlopt_core.continual.sequences import sequence_arrays
from dlopt_core.engine.records import Status
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.continual import (
    Continual,
    ContinualConfig,
    ContinualWork,
    mean_matrix,
    summarize,
    summary_rows,
)
from dlopt_core.runner.jobs import JobRegistry

# R[i][j]: accuracy on task j after training task i (three tasks), and b: accuracy at initialisation.
R = [
    [0.90, 0.20, 0.10],
    [0.60, 0.80, 0.30],
    [0.50, 0.70, 0.95],
]
B = [0.10, 0.15, 0.05]


def test_measures_on_a_hand_made_matrix_follow_the_published_formulas() -> None:
    T = 3
    assert average_accuracy(R) == pytest.approx((0.50 + 0.70 + 0.95) / 3)
    # Chaudhry et al. 2018: f_j = max_{l < T} R[l][j] - R[T][j], averaged over j < T.
    assert forgetting(R) == pytest.approx(((0.90 - 0.50) + (0.80 - 0.70)) / (T - 1))
    # Lopez-Paz & Ranzato 2017: BWT = 1/(T-1) sum_{i<T} R[T][i] - R[i][i]; FWT = 1/(T-1) sum_{i>1} R[i-1][i] - b_i.
    assert backward_transfer(R) == pytest.approx(((0.50 - 0.90) + (0.70 - 0.80)) / 2)
    assert forward_transfer(R, B) == pytest.approx(((0.20 - 0.15) + (0.30 - 0.05)) / 2)
    assert anytime_accuracy(R) == pytest.approx([0.90, 0.70, (0.50 + 0.70 + 0.95) / 3])
    # Forgetting takes the best earlier accuracy, not the one just after the task trained.
    later_best = [[0.5, 0.0, 0.0], [0.9, 0.8, 0.0], [0.6, 0.7, 0.9]]
    assert forgetting(later_best) == pytest.approx(((0.9 - 0.6) + (0.8 - 0.7)) / 2)
    assert backward_transfer(later_best) == pytest.approx(((0.6 - 0.5) + (0.7 - 0.8)) / 2)
    # After one task there is nothing to forget or transfer yet.
    assert forgetting(R[:1]) is None and backward_transfer(R[:1]) is None and forward_transfer(R[:1], B) is None
    assert average_accuracy(R[:2]) == pytest.approx((0.60 + 0.80) / 2)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def test_ewc_penalty_and_fisher_match_a_direct_computation_on_a_tiny_model() -> None:
    model = _tiny()
    x, y = torch.randn(7, 3, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    fisher = fisher_diagonal(model, x, y)
    # By hand: one row at a time, the squared gradient of its negative log-likelihood, averaged.
    by_hand = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            by_hand[n] += p.grad**2 / len(y)
    for n in by_hand:
        torch.testing.assert_close(fisher[n], by_hand[n])

    ewc = EWC(ewc_lambda=3.0)
    assert float(ewc.penalty(model)) == 0.0 and ewc.hooks(model).extra_loss is None
    ewc.task_done(model, _data(x, y))
    star = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ewc.task_done(model, _data(x, y))  # a second task: a second anchor
    star2 = {n: p.detach().clone() for n, p in model.named_parameters()}
    fisher2 = fisher_diagonal(model, x, y)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    direct = sum(
        (fisher[n] * (p - star[n]) ** 2).sum() + (fisher2[n] * (p - star2[n]) ** 2).sum()
        for n, p in model.named_parameters()
    )
    assert ewc.penalty(model).item() == pytest.approx(0.5 * 3.0 * direct.item(), rel=1e-5)
    # The penalty reaches the step as its extra loss, with a gradient towards the anchors.
    extra = ewc.hooks(model).extra_loss
    assert extra is not None
    extra(x, model(x), y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def _data(x: torch.Tensor, y: torch.Tensor):
    from dlopt_core.catalog.datasets import Dataset

    return Dataset("tiny", "classification", x, y, x, y, 2, None)


def test_replay_never_stores_more_than_its_size_and_keeps_a_uniform_sample() -> None:
    gen = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(50)
    for start in range(0, 2000, 32):
        rows = torch.arange(start, min(start + 32, 2000))
        buffer.add(rows.float().unsqueeze(1), rows, gen)
        assert len(buffer) <= 50
    assert len(buffer) == 50 and buffer.seen == 2000
    assert buffer.y is not None and len(set(buffer.y.tolist())) == 50  # each stored row is a distinct one
    # Reservoir sampling: every row offered is equally likely to stay; about half the kept rows are
    # from the first half of the stream (a FIFO would keep only the last 50).
    first_half = [
        int((_reservoir(seed).y < 1000).sum()) for seed in range(20)  # type: ignore[operator]
    ]
    assert 15 < np.mean(first_half) < 35

    replay = Replay(8)
    x, y = torch.randn(5, 2), torch.arange(5)
    assert replay.mix(x, y, gen)[0].shape == (5, 2)  # nothing stored yet: the batch alone
    mixed_x, mixed_y = replay.mix(x + 1, y + 5, gen)
    assert mixed_x.shape == (10, 2) and set(mixed_y[5:].tolist()) <= set(range(5))  # stored rows joined in
    assert len(replay.buffer) == 8


def _reservoir(seed: int) -> ReplayBuffer:
    gen, buffer = torch.Generator().manual_seed(seed), ReplayBuffer(50)
    for start in range(0, 2000, 100):
        rows = torch.arange(start, start + 100)
        buffer.add(rows.float().unsqueeze(1), rows, gen)
    return buffer


def test_sequences_are_reproducible_from_their_seed_and_split_tasks_hold_disjoint_classes() -> None:
    cpu = torch.device("cpu")
    for name, spec in SEQUENCES.items():
        a, b = load_sequence(name, seed=3, device=cpu), load_sequence(name, seed=3, device=cpu)
        assert len(a) == spec.n_tasks == 5 and [t.label for t in a] == list(spec.tasks)
        for ta, tb in zip(a, b, strict=True):
            assert torch.equal(ta.data.x_train, tb.data.x_train) and torch.equal(ta.data.y_val, tb.data.y_val)
            assert ta.data.n_classes == 10 and len(ta.data.y_train) > 200 and len(ta.data.y_val) > 50
        other = sequence_arrays(name, 4)
        assert not np.array_equal(other[1].x_train[:20], a[1].data.x_train[:20].numpy())
    split = load_sequence("split-digits", seed=0, device=cpu)
    classes = [set(t.data.y_train.tolist()) for t in split]
    assert classes == [{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}]
    assert [set(t.data.y_val.tolist()) for t in split] == classes
    # Permuted and rotated: disjoint training rows, every class in every task, each task its own inputs.
    for name in ("permuted-digits", "rotated-digits"):
        tasks = sequence_arrays(name, 0)
        assert all(set(t.y_train.tolist()) == set(range(10)) for t in tasks)
        assert not np.allclose(tasks[0].x_test, tasks[1].x_test)
        assert not np.array_equal(tasks[0].y_train[:50], tasks[1].y_train[:50]) or not np.allclose(
            tasks[0].x_train[:50], tasks[1].x_train[:50])


def test_naive_fine_tuning_on_split_digits_forgets_and_replay_forgets_less() -> None:
    cfg = ContinualConfig.make(optimizers=("adam:lr=0.01",), strategies=("naive", "replay"), seeds=(0,), epochs=2)
    continual = Continual(cfg).execute()
    naive, replay = continual.runs
    assert naive.status is Status.FINISHED and len(naive.rows) == 5 and len(naive.rows[0]) == 5
    assert naive.rows[0][0] > 0.9  # it learnt 0/1 ...
    assert naive.measures["forgetting"] > 0.5  # ... and forgot it: the head now says 8 or 9
    assert replay.measures["forgetting"] < naive.measures["forgetting"]
    (s_naive, s_replay) = summarize(continual)
    assert s_naive.means["forgetting"] == pytest.approx(naive.measures["forgetting"]) and s_naive.finished == 1
    assert len(s_naive.anytime) == 5 and mean_matrix(continual, naive.optimizer, "naive") == naive.rows
    assert [r["strategy"] for r in summary_rows(continual)] == ["naive", "replay"]


def test_config_round_trips_and_names_bad_fields() -> None:
    cfg = ContinualConfig.make(sequence="rotated-digits", optimizers=("sgd:lr=0.05", "adam"), strategies="ewc,naive",
                               seeds="1,2", replay_size=50, ewc_lambda=10)
    assert ContinualConfig.from_dict(cfg.to_dict()) == cfg and cfg.strategies == ("ewc", "naive")
    assert cfg.key() == ContinualConfig.from_dict(cfg.to_dict()).key()
    assert [(o.name, s, seed) for o, s, seed in cfg.plan()][:2] == [("sgd", "ewc", 1), ("sgd", "naive", 1)]
    with pytest.raises(ConfigError, match="strategy: unknown name"):
        ContinualConfig.make(strategies="naive,forget")
    with pytest.raises(ConfigError, match="sequence: unknown name"):
        ContinualConfig.make(sequence="split-mnist")
    with pytest.raises(ConfigError, match="appears twice"):
        ContinualConfig.make(optimizers=(OptimizerConfig.make(name="adam"),) * 2)
    assert get_strategy("replay").make(cfg.settings()).buffer.size == 50  # type: ignore[attr-defined]


def test_continual_work_in_a_thread_fills_the_mirror_and_stops_when_cancelled() -> None:
    registry = JobRegistry(1, launcher="thread")
    try:
        cfg = ContinualConfig.make(optimizers=("adam",), strategies=("naive", "ewc"), seeds=(0, 1), epochs=1)
        work = ContinualWork(cfg, track=False)
        job = registry.submit(work)
        assert job.wait(120) and str(job.status) == "finished"
        c = work.continual
        assert [(r.strategy, r.seed, str(r.status), len(r.rows)) for r in c.runs] == [
            ("naive", 0, "finished", 5), ("ewc", 0, "finished", 5), ("naive", 1, "finished", 5),
            ("ewc", 1, "finished", 5),
        ]
        assert all(len(r.initial) == 5 and len(r.task_seconds) == 5 for r in c.runs) and c.elapsed_s > 0
        assert c.progress == 1.0 and summarize(c)[0].finished == 2

        long = ContinualWork(cfg.model_copy(update={"epochs": 1000, "seeds": (0,)}), track=False)
        job = registry.submit(long)
        while long.continual.runs[0].status is Status.PENDING and job.active:
            job.wait(0.05)
        job.cancel()
        assert job.wait(60)
        assert str(job.status) == "cancelled"
        assert [str(r.status) for r in long.continual.runs] == ["cancelled", "cancelled"]
        assert len(long.continual.runs[0].rows) < 5
    finally:
        registry.shutdown()


def test_plots_draw_the_mean_matrix_the_table_anytime_curves_and_the_sorted_forgetting_bars() -> None:
    from dlopt_core.plots import (
        accuracy_matrix_data,
        accuracy_matrix_figure,
        anytime_data,
        anytime_figure,
        continual_table_data,
        forgetting_rank_data,
        forgetting_rank_figure,
    )

    cfg = ContinualConfig.make(optimizers=("sgd:lr=0.1", "adam:lr=0.01"), strategies=("naive", "replay"),
                               seeds=(0, 1), epochs=1)
    continual = Continual(cfg).execute()
    adam = cfg.optimizers[1].label
    matrix = accuracy_matrix_data(continual, optimizer=adam, strategy="naive")
    runs = continual.runs_of(adam, "naive")
    assert matrix.seeds == 2 and len(matrix.rows) == 5
    assert matrix.rows[4][0] == pytest.approx((runs[0].rows[4][0] + runs[1].rows[4][0]) / 2)
    fig = accuracy_matrix_figure(matrix)
    assert fig.data[0].type == "heatmap" and len(fig.data[0].z) == 5 and "Naive" in fig.layout.title.text

    # Live: a run with two tasks done draws two rows and three blank ones.
    half = Continual(cfg)
    half.runs[0].rows = runs[0].rows[:2]
    partial = accuracy_matrix_data(half, optimizer=half.runs[0].optimizer, strategy="naive")
    assert len(partial.rows) == 2 and list(accuracy_matrix_figure(partial).data[0].z[2]) == [None] * 5

    table = continual_table_data(continual)
    assert [(r["optimizer"], r["strategy"]) for r in table][:2] == [(cfg.optimizers[0].label, "Naive fine-tuning"),
                                                                   (cfg.optimizers[0].label, "Replay")]
    assert " ± " in table[0]["forgetting"] and table[0]["finished"] == "2/2"

    anytime = anytime_data(continual)
    assert len(anytime.curves) == 4 and anytime.curves[0].tasks == [1, 2, 3, 4, 5]
    assert all(c.low[i] <= c.mean[i] <= c.high[i] for c in anytime.curves for i in range(5))
    assert len(anytime_figure(anytime).data) == 8

    rank = forgetting_rank_data(continual)
    means = [b.mean for b in rank.bars]
    assert means == sorted(means) and len(rank.bars) == 4
    assert {b.strategy for b in forgetting_rank_data(continual, strategy="naive").bars} == {"naive"}
    assert list(forgetting_rank_figure(rank).data[0].y) == [b.label for b in rank.bars]
