"""AppTest for the LR search page: fill widgets, press buttons, assert what a user would see."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from apptest import open_page, wait_for_last_job

from dlopt_core.experiments.search import SearchConfig
from dlopt_core.experiments.study.summary import study_summary
from dlopt_core.experiments.study_storage import study_storage
from dlopt_core.runner.jobs import registry

SEARCH = "pages/4_LR_search.py"


def _button(at: AppTest, label: str):
    """The button labelled ``label``, or the one starting with ``label…`` for a label ending in a value."""
    exact = [b for b in at.button if b.label == label]
    return exact[0] if exact else next(b for b in at.button if b.label.startswith(label))


def _wait_for_search(at: AppTest) -> AppTest:
    for job in registry().jobs():
        if job.key.startswith("study-"):
            assert job.wait(180)
    return at.run()


def _small(at: AppTest, trials: int = 3) -> AppTest:
    """2 optimizers x ``trials`` trials of 2 epochs on wine."""
    at.sidebar.selectbox(key="search.dataset").set_value("wine")
    at.sidebar.number_input(key="search.epochs").set_value(2)
    at.number_input(key="search.n_trials").set_value(trials)
    return at.run()


def test_the_page_starts_with_two_optimizers_and_their_own_ranges() -> None:
    at = open_page(SEARCH)
    assert not at.exception and not at.error
    assert at.multiselect(key="search.optimizers").value == ["sgd", "adam"]
    sgd = (at.number_input(key="search.lr_min.sgd").value, at.number_input(key="search.lr_max.sgd").value)
    adam = (at.number_input(key="search.lr_min.adam").value, at.number_input(key="search.lr_max.adam").value)
    assert sgd == tuple(SearchConfig.make(optimizers=[{"name": "sgd"}]).bounds()[0])
    assert adam[1] < sgd[1]
    assert any(b.label == "Run" and not b.disabled for b in at.button)
    assert any("Press **Run**" in i.value for i in at.info)
    assert at.query_params["optimizer"] == ["sgd:lr=0.1", "adam:lr=0.001"]


def test_a_link_with_junk_says_so_and_shows_defaults() -> None:
    at = open_page(SEARCH, {"optimizer": ["nope"], "lr_min": "abc", "n_trials": "-3"})
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert at.multiselect(key="search.optimizers").value == ["sgd", "adam"]


def test_a_link_sets_the_search() -> None:
    config = SearchConfig.make(
        optimizers=[{"name": "adam"}], lr_min="1e-4", lr_max="0.01", sampler="random", pruner="none", n_trials=7,
    )
    query = {k: v if isinstance(v, list) else str(v) for k, v in config.to_dict().items()}
    at = open_page(SEARCH, {**query, "workers": "2"})
    assert not at.exception and not at.warning
    assert at.multiselect(key="search.optimizers").value == ["adam"]
    assert at.number_input(key="search.lr_min.adam").value == 1e-4
    assert at.selectbox(key="search.sampler").value == "random"
    assert at.number_input(key="search.n_trials").value == 7
    assert at.number_input(key="search.workers").value == 2


def test_bad_bounds_show_an_error_and_no_run() -> None:
    at = open_page(SEARCH)
    at.number_input(key="search.lr_min.adam").set_value(1.0)
    at.number_input(key="search.lr_max.adam").set_value(1e-3).run()
    assert not at.exception
    assert any("Adam" in e.value and "below lr_max" in e.value for e in at.error)
    assert not any(b.label == "Run" for b in at.button)


def test_the_range_test_sets_the_bounds_in_one_click() -> None:
    at = _small(open_page(SEARCH))
    at.selectbox(key="search.range_optimizer").set_value("adam").run()
    _button(at, "Run the range test").click().run()
    assert not at.exception
    wait_for_last_job(at)  # a background job: the sidebar counts it, a reload finds it
    assert not at.exception
    assert any("Suggestions" in c.value and "valley" in c.value for c in at.caption)
    use = _button(at, "Search Adam from")
    use.click().run()
    low, high = at.number_input(key="search.lr_min.adam").value, at.number_input(key="search.lr_max.adam").value
    assert use.label == f"Search Adam from {low:.3g} to {high:.3g}".replace("e-0", "e-")
    assert low < high


def test_a_small_search_runs_shows_its_figures_and_compares_at_the_tuned_rates(dlopt_home) -> None:
    at = _small(open_page(SEARCH))
    _button(at, "Run").click().run()
    at = _wait_for_search(at)
    assert not at.exception and not at.error
    config = SearchConfig.from_dict(dict(at.query_params))  # the page's config, from its URL
    assert (config.data.name, config.epochs, config.n_trials) == ("wine", 2, 3)
    storage = study_storage()
    summaries = [study_summary(s.name, storage) for s in config.studies()]
    assert [s.finished for s in summaries] == [3, 3]
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["SGD", "Adam"]
    assert list(table["best lr"]) == [f"{s.best.lr:.3g}" for s in summaries]
    # Full studies: Run would add nothing, so it waits for a larger budget.
    assert _button(at, "Run").disabled
    assert any("already hold their trials" in c.value for c in at.caption)
    assert any("Tuning budget" in c.value or "easy to tune" in c.value for c in at.caption)
    compare = _button(at, "Compare at the tuned learning rates")
    compare.click().run()
    assert not at.exception
    assert at.query_params["optimizer"] == [f"sgd:lr={summaries[0].best.lr!r}", f"adam:lr={summaries[1].best.lr!r}"]


def test_a_past_search_reopens_from_the_storage() -> None:
    at = _small(open_page(SEARCH), trials=2)
    _button(at, "Run").click().run()
    _wait_for_search(at)
    fresh = open_page(SEARCH)  # another browser session, the same storage
    assert fresh.number_input(key="search.n_trials").value == 12
    assert not [s for s in fresh.selectbox if s.key == "search.past"], "the storage is listed only when asked"
    fresh.toggle(key="search.view.past_list").set_value(True).run()
    (picker,) = [s for s in fresh.selectbox if s.key == "search.past"]
    assert "wine" in picker.format_func(picker.value) and "SGD 2 of 2, Adam 2 of 2" in picker.format_func(picker.value)
    _button(fresh, "Open this search").click().run()
    assert not fresh.exception
    assert fresh.sidebar.selectbox(key="search.dataset").value == "wine"
    assert fresh.number_input(key="search.n_trials").value == 2
    assert fresh.dataframe, "the reopened search's results are drawn from the storage"
