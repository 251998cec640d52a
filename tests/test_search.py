"""A learning-rate search: one study per optimizer, its figures, and finding it again in a storage."""

from __future__ import annotations

import math

import pytest

from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import OptimizerConfig
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.lr_range import LRRangeConfig, run_lr_range
from dlopt_core.experiments.search import SearchConfig, comparison_at_tuned, past_searches, search_works
from dlopt_core.experiments.study.summary import study_summary
from dlopt_core.experiments.study.worker import run_worker
from dlopt_core.experiments.study_storage import study_storage
from dlopt_core.plots import trial_lr_data, trial_lr_figure, tuning_budget_data, tuning_budget_figure

SGD, ADAM = OptimizerConfig.make(name="sgd"), OptimizerConfig.make(name="adam")


def _search(**changes: object) -> SearchConfig:
    return SearchConfig.make(**{"optimizers": (SGD, ADAM), "epochs": 2, "n_trials": 5, **changes})


@pytest.fixture(scope="module")
def finished() -> tuple[SearchConfig, object, list]:
    """Two small studies run to the end in one in-memory storage."""
    config = _search(lr_min="0.001,1e-5", lr_max="10,1")
    storage = study_storage("memory")
    summaries = [run_worker(s, storage, worker=0) for s in config.studies()]
    return config, storage, summaries


def test_one_study_per_optimizer_with_the_same_budget_and_method() -> None:
    config = _search(sampler="random", pruner="none")
    studies = config.studies()
    assert [s.optimizer.name for s in studies] == ["sgd", "adam"]
    assert {(s.n_trials, s.sampler, s.pruner, s.epochs) for s in studies} == {(5, "random", "none", 2)}
    assert len({s.name for s in studies}) == 2


def test_default_bounds_are_each_optimizers_own_range() -> None:
    (sgd_low, sgd_high), (adam_low, adam_high) = _search().bounds()
    assert sgd_low < sgd_high and adam_low < adam_high
    assert adam_high < sgd_high  # Adam wants smaller rates than SGD


def test_the_config_reads_back_from_its_flat_keys() -> None:
    config = _search(lr_min=(1e-3, 1e-5), lr_max=(10.0, 1.0), sampler="qmc", search_batch_size=True)
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert SearchConfig.from_dict({k: str(v) if not isinstance(v, list) else v for k, v in config.to_dict().items()}) == config


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lr_min": "0.001"}, "lr_min: one bound per optimizer"),
        ({"lr_min": "1,1", "lr_max": "0.1,10"}, "SGD: lr_min: must be below lr_max"),
        ({"lr_max": "a,b"}, "lr_max: expected numbers like 1e-4,0.01"),
        ({"sampler": "grid", "search_schedule": True}, "search_schedule"),
        ({"n_trials": 0}, "n_trials"),
    ],
)
def test_bad_settings_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        _search(**changes)


def test_one_study_per_optimizer_name() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        SearchConfig.make(optimizers=(SGD, OptimizerConfig.make(name="sgd", lr=0.5)))


def test_workers_interleave_the_studies() -> None:
    works = search_works(_search(), workers=2, track=False)
    assert [(w.config.optimizer.name, w.worker) for w in works] == [("sgd", 0), ("adam", 0), ("sgd", 1), ("adam", 1)]
    assert len({w.key for w in works}) == 4
    with pytest.raises(ConfigError, match="workers"):
        search_works(_search(), workers=0)


def test_tuning_budget_is_the_best_so_far_per_optimizer(finished) -> None:
    _, _, summaries = finished
    data = tuning_budget_data(summaries)
    assert [line.optimizer for line in data.lines] == ["SGD", "Adam"]
    for line, summary in zip(data.lines, summaries):
        assert line.trials == list(range(1, summary.finished + 1))
        values = [b for b in line.best if b is not None]
        assert values == sorted(values, reverse=True)  # never gets worse
        assert values[-1] == pytest.approx(summary.best.value)
    fig = tuning_budget_figure(data)
    assert [t.name for t in fig.data] == ["SGD", "Adam"]


def test_every_finished_trial_is_drawn_at_its_lr(finished) -> None:
    _, _, summaries = finished
    data = trial_lr_data(summaries)
    for summary in summaries:
        label = get_optimizer(summary.optimizer).label
        drawn = [x for g in data.groups if g.optimizer == label and g.kind != "best" for x in g.lr]
        finished_lrs = [t.lr for t in summary.trials if t.state in ("complete", "pruned")]
        assert sorted(drawn) == sorted(finished_lrs)
    best = [g for g in data.groups if g.kind == "best"]
    assert [g.lr[0] for g in best] == [s.best.lr for s in summaries]
    assert {(b[0], b[2], b[3]) for b in data.bounds} == {("SGD", 0.001, 10.0), ("Adam", 1e-5, 1.0)}
    fig = trial_lr_figure(data)
    assert fig.layout.xaxis.type == "log"
    assert any(t.name == "SGD best" for t in fig.data)


def test_a_diverged_trial_is_drawn_at_the_top_edge_not_at_its_loss() -> None:
    config = SearchConfig.make(optimizers=(SGD,), epochs=2, n_trials=4, sampler="grid", pruner="none", lr_min="0.01", lr_max="1e6")
    storage = study_storage("memory")
    summary = run_worker(config.studies()[0], storage, worker=0)
    assert any(t.diverged_step is not None for t in summary.trials)
    data = trial_lr_data([summary])
    (diverged,) = [g for g in data.groups if g.kind == "diverged"]
    top = 10 ** data.y_range[1]
    assert all(math.isclose(v, max(max(g.value) for g in data.groups)) and v < top for v in diverged.value)
    assert all("diverged at step" in text for text in diverged.text)


def test_past_searches_group_the_studies_of_one_setup(finished) -> None:
    config, storage, _ = finished
    other = SearchConfig.make(optimizers=(ADAM,), epochs=1, n_trials=2)
    run_worker(other.studies()[0], storage, worker=0)
    found = {p.key: p for p in past_searches(storage)}
    assert set(found) == {config.key(), other.key()}
    mine = found[config.key()]
    assert mine.config == config
    assert mine.finished == (5, 5)
    assert "seed 0" in mine.label and "trials done: SGD 5 of 5, Adam 5 of 5" in mine.label
    assert found[other.key()].finished == (2,)


def test_compare_at_the_tuned_rates_takes_each_best_lr(finished) -> None:
    config, storage, summaries = finished
    compare = comparison_at_tuned(config, [study_summary(s.name, storage) for s in config.studies()])
    assert [(o.name, o.lr) for o in compare.optimizers] == [(s.optimizer, s.best.lr) for s in summaries]
    assert (compare.data, compare.model, compare.epochs, compare.seeds) == (config.data, config.model, config.epochs, (config.seed,))


def test_range_test_bounds_span_its_suggestions() -> None:
    result = run_lr_range(LRRangeConfig.make(optimizer=SGD, seeds=(0, 1), steps=120))
    low, high = result.search_bounds()
    suggested = [v for pair in result.spread.values() if pair for v in pair]
    assert low < min(suggested) and max(suggested) < high
    assert result.config.lr_min <= low < high <= result.config.lr_max
    # The bounds make a valid search.
    SearchConfig.make(optimizers=(SGD,), lr_min=(low,), lr_max=(high,))


def test_a_past_search_with_two_studies_of_one_optimizer_keeps_the_most_advanced() -> None:
    storage = study_storage("memory")
    plain = SearchConfig.make(optimizers=(SGD, ADAM), epochs=1, n_trials=2)
    tuned = SearchConfig.make(optimizers=(OptimizerConfig.make(name="sgd", params={"momentum": 0.9}),), epochs=1, n_trials=1)
    for study in [*plain.studies(), *tuned.studies()]:
        run_worker(study, storage, worker=0)
    (found,) = past_searches(storage)
    assert [o.name for o in found.config.optimizers] == ["sgd", "adam"] and found.finished == (2, 2)


def test_a_loss_of_zero_is_left_off_the_log_axis(finished) -> None:
    from dataclasses import replace

    _, _, summaries = finished
    first = summaries[0]
    zero = replace(first.trials[0], value=0.0, state="complete", diverged_step=None)
    data = trial_lr_data([replace(first, trials=(zero, *first.trials[1:]))])
    assert data.y_range is not None and all(map(math.isfinite, data.y_range))
