"""The drift race's parts: streams from a seed with their true drifts, test-then-train order,
recovery and detector scoring on hand-made series, the work in a thread, the figures' data."""

from __future__ import annotations

import pytest
import torch

from dlopt_core.experiments.stream import (
    LearnerConfig,
    StreamConfig,
    StreamRace,
    StreamWork,
    recovery_rows,
)
from dlopt_core.plots import (
    detector_table_data,
    stream_curves_data,
    stream_curves_figure,
)
from dlopt_core.runner.jobs import JobRegistry
from dlopt_core.stream import (
    STREAMS,
    baseline_alarms,
    get_stream_spec,
    make_stream,
    prequential,
    recover_steps,
    rolling,
    score_alarms,
)

SMALL = {"learners": ("sgd:lr=0.1", "adam:lr=0.01,policy=reset"), "seeds": (0,), "batch_size": 40}


@pytest.mark.parametrize("name", STREAMS)
def test_a_stream_is_its_seed_and_its_true_drifts(name: str) -> None:
    a, b, other = make_stream(name, 3), make_stream(name, 3), make_stream(name, 4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, other.x)
    spec = get_stream_spec(name)
    assert a.n_samples == spec.n_samples and a.drifts == spec.drifts
    assert all(0 < s <= e < spec.n_samples for s, e in a.drifts)
    assert int(a.y.max()) < a.n_classes


def test_the_label_swap_happens_where_the_stream_says() -> None:
    stream = make_stream("digits_swap", 0)
    (at, _), = stream.drifts
    raw_x = stream.x
    # The same input before and after the swap has its label's pair afterwards.
    before = {tuple(raw_x[i].tolist()): int(stream.y[i]) for i in range(at)}
    after = [(before[key], int(stream.y[i])) for i in range(at, stream.n_samples)
             if (key := tuple(raw_x[i].tolist())) in before]
    assert after and all(new == old ^ 1 for old, new in after)
    config = StreamConfig.make(stream="digits_swap", batch_size=20)
    assert StreamRace(config).drifts == ((at // 20, at // 20),) == stream.drift_steps(20)


class Lookup:
    """Memorises every sample it trains on: perfect on a batch it has seen, wrong on any other."""

    def __init__(self) -> None:
        self.seen: dict[tuple[float, ...], int] = {}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        labels = [self.seen.get(tuple(row.tolist()), -1) for row in x]
        logits = torch.zeros(len(x), 2)
        for i, label in enumerate(labels):
            logits[i, label if label >= 0 else 1] = 1.0  # unseen: class 1, and every label here is 0
        return logits

    def learn(self, x: torch.Tensor, y: torch.Tensor, step: int) -> float:
        self.seen.update({tuple(row.tolist()): int(label) for row, label in zip(x, y, strict=True)})
        return 0.0

    def reset(self) -> None:
        pass


def test_each_batch_is_scored_before_it_is_trained_on() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    y = torch.zeros(6, dtype=torch.int64)
    # Batches 0, 1, 2, then batch 1 again: only the repeat can be known.
    batches = [(x[0:2], y[0:2]), (x[2:4], y[2:4]), (x[4:6], y[4:6]), (x[2:4], y[2:4])]
    rows = list(prequential(Lookup(), batches))
    assert [r.accuracy for r in rows] == [0.0, 0.0, 0.0, 1.0]


def test_a_drift_still_in_progress_is_not_scored_mid_race() -> None:
    """Mid-race a drift whose span the run has not trained through is neither recovered nor "never"."""
    config = StreamConfig.make(**SMALL)
    race = StreamRace(config)
    run = race.runs[0]
    start = config.drifts[0][0]
    run.accuracy, run.loss = [1.0] * start + [0.0] * 3, [0.0] * (start + 3)  # dipped, the span not over
    assert race.recover(run) == []
    run.accuracy = [1.0] * start + [0.0] * (config.n_steps - start)  # through the stream's end: never back
    run.loss = [0.0] * config.n_steps
    assert race.recover(run) == [None]


def test_recover_steps_on_a_hand_made_series() -> None:
    acc = [0.9] * 10 + [0.5, 0.6, 0.8, 0.86, 0.9] + [0.9] * 5 + [0.89] * 5 + [0.3] * 5
    # drift 1 at 10: below 0.855 from 10, back at 13 (0.86): 3 steps. Drift 2 at 20: never dips: 0.
    # Drift 3 at 25: falls to 0.3 and never comes back: None.
    assert recover_steps(acc, [(10, 10), (20, 22), (25, 25)], fraction=0.95, pre_window=5) == [3, 0, None]
    assert recover_steps(acc, [(0, 0)]) == [None]  # nothing before it to recover to
    assert rolling([1.0, 0.0, 1.0, 1.0], 2) == [1.0, 0.5, 0.5, 1.0]


def test_detector_scoring_on_a_hand_made_alarm_list_with_the_baselines() -> None:
    drifts = [(100, 100), (300, 320)]
    score = score_alarms([50, 104, 110, 330, 346, 600], drifts, n_steps=1000, tolerance=25)
    # 104 detects drift 1 (110 is a repeat inside its window), 330 detects drift 2; 50, 346 (past
    # 320 + 25) and 600 are false.
    assert (score.true_alarms, score.false_alarms, score.detected) == (2, 3, 2)
    assert score.precision == pytest.approx(2 / 6) and score.recall == 1.0
    assert score.mean_time_to_detect == pytest.approx((4 + 30) / 2)
    assert score.false_per_1000 == pytest.approx(3.0)

    always = score_alarms(baseline_alarms("always", 1000), drifts, n_steps=1000, tolerance=25)
    assert always.recall == 1.0 and always.mean_time_to_detect == 0.0
    assert always.precision == pytest.approx(2 / 1000)
    assert always.false_alarms == 1000 - 26 - 46 and always.false_per_1000 == pytest.approx(928.0)
    never = score_alarms(baseline_alarms("never", 1000), drifts, n_steps=1000, tolerance=25)
    assert (never.precision, never.recall, never.mean_time_to_detect, never.false_per_1000) == (None, 0.0, None, 0.0)


def test_learners_flatten_for_url_mlflow_and_cli() -> None:
    config = StreamConfig.make(stream="sea", learners=("adam:lr=0.003,policy=reset", "sgd:lr=0.2,policy=decay"),
                               seeds=(1, 2), hidden=(16, 8), window=5)
    flat = config.to_dict()
    assert flat["learners"] == ["adam:lr=0.003,policy=reset", "sgd:lr=0.2,policy=decay"]
    assert StreamConfig.from_dict(flat) == config
    assert StreamConfig.from_dict({k: " ".join(v) if isinstance(v, list) else str(v) for k, v in flat.items()}) == config
    assert LearnerConfig.parse("adam:lr=0.01,policy=reset").label == "Adam lr=0.01 reset"
    with pytest.raises(ValueError, match="policy"):
        LearnerConfig.parse("adam:policy=sometimes")
    with pytest.raises(ValueError, match="learners: 'lbfgs'"):
        StreamConfig.make(learners=("lbfgs",))


def test_a_race_is_reproducible_and_the_reset_learner_resets_on_its_alarms() -> None:
    config = StreamConfig.make(**SMALL)
    a, b = StreamRace(config).execute(), StreamRace(config).execute()
    assert [r.accuracy for r in a.runs] == [r.accuracy for r in b.runs]
    assert all(str(r.status) == "finished" and r.steps == config.n_steps for r in a.runs)
    sgd, adam = a.runs
    assert config.reset_detector == "page_hinkley"  # rising error only: ADWIN also fires as a learner improves
    assert sgd.resets == [] and adam.resets == adam.alarms["page_hinkley"]
    rows = recovery_rows(a)
    assert [r["policy"] for r in rows] == ["constant", "reset"] and all(0 < r["final_accuracy"] <= 1 for r in rows)

    data = stream_curves_data(a)
    assert data.drifts == [(50, 50)] and [len(c.steps) for c in data.curves] == [config.n_steps] * 2
    assert data.curves[1].alarms["adwin"] == adam.alarms["adwin"]
    fig = stream_curves_figure(data)
    assert len(fig.layout.shapes) == 1 and "true drifts" in fig.layout.title.text
    table = detector_table_data(a)
    assert [r["name"] for r in table] == ["adwin", "page_hinkley", "kswin"]
    assert all(r["always_recall"] == 1.0 and r["never_recall"] == 0.0 for r in table)


def test_the_work_in_a_thread_fills_the_mirror_and_stops_when_cancelled() -> None:
    registry = JobRegistry(1, launcher="thread")
    try:
        work = StreamWork(StreamConfig.make(**SMALL), track=False)
        job = registry.submit(work)
        assert job.wait(120) and str(job.status) == "finished"
        race = work.race
        assert [(r.label, r.seed, str(r.status), r.steps) for r in race.runs] == [
            ("SGD lr=0.1 constant", 0, "finished", 100), ("Adam lr=0.01 reset", 0, "finished", 100),
        ]
        assert race.elapsed_s > 0 and race.progress == 1.0 and str(race.status) == "finished"
        assert race.runs[1].resets == race.runs[1].alarms["page_hinkley"]

        long = StreamWork(StreamConfig.make(**{**SMALL, "batch_size": 1, "seeds": (0, 1)}), track=False)
        job = registry.submit(long)
        while not any(r.steps for r in long.race.runs) and job.active:
            job.wait(0.05)
        job.cancel()
        assert job.wait(60) and str(job.status) == "cancelled"
        assert all(r.status.ended for r in long.race.runs)
        assert str(long.race.runs[-1].status) == "cancelled" and long.race.runs[0].steps < long.config.n_steps
    finally:
        registry.shutdown()
