"""The Runs page and the home page's demo presets in AppTest."""

from __future__ import annotations

import pytest
from apptest import open_page

from dlopt_core.config import ComparisonConfig
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.landscape import LandscapeConfig
from tracking import MlflowObserver
from ui.presets import COMPARE, LANDSCAPES, PRESETS

RUNS = "pages/6_Runs.py"


def logged(optimizers: list[str], **setup: object) -> Comparison:
    flat = {"optimizer": optimizers, "seeds": "0,1", "epochs": 2, "dataset": "moons", **setup}
    return Comparison(ComparisonConfig.from_dict(flat)).execute(observers=[MlflowObserver()])


def texts(at) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "code") for e in at.get(kind))


def test_an_empty_store_says_where_runs_will_appear() -> None:
    at = open_page(RUNS)
    assert not at.exception
    assert "No runs match" in texts(at)


def test_the_list_shows_past_comparisons_and_a_link_opens_one_as_it_looked_live() -> None:
    first = logged(["sgd:lr=0.1", "adam"])
    second = logged(["momentum"], seeds="0")
    at = open_page(RUNS)
    assert not at.exception
    listed = at.dataframe[0].value
    assert set(listed["id"]) == {first.id, second.id}
    assert listed["started"].is_monotonic_decreasing

    at = open_page(RUNS, {"open": first.id})
    assert not at.exception
    tables = [d.value for d in at.dataframe]
    results = next(t for t in tables if "optimizer" in t.columns and "status" in t.columns)
    assert sorted(results["optimizer"]) == ["Adam lr=0.001", "SGD lr=0.1"]
    command = next(c.value for c in at.code if "python -m dlopt_core compare" in c.value)
    assert "--optimizer sgd:lr=0.1" in command and "--seeds 0,1" in command
    # The curves, the overlay and the hyperparameters each have a chart.
    assert len(at.get("plotly_chart")) == 3


def test_two_opened_comparisons_overlay_every_run() -> None:
    a, b = logged(["sgd:lr=0.1"], seeds="0"), logged(["adam"], seeds="0,1")
    at = open_page(RUNS, {"open": [a.id, b.id]})
    assert not at.exception
    runs = next(m for m in at.multiselect if m.label == "runs")
    assert sorted(runs.value) == sorted([
        f"{a.id[:6]} · SGD lr=0.1 seed=0", f"{b.id[:6]} · Adam lr=0.001 seed=0", f"{b.id[:6]} · Adam lr=0.001 seed=1",
    ])
    at.slider(key="runs.overlay.smoothing").set_value(0.6).run()
    assert not at.exception


def test_filters_narrow_the_list() -> None:
    logged(["sgd:lr=0.1"], seeds="0")
    wine = logged(["adam"], seeds="0", dataset="wine")
    at = open_page(RUNS)
    at.selectbox(key="runs.dataset").set_value("wine").run()
    assert not at.exception
    assert list(at.dataframe[0].value["id"]) == [wine.id]
    at.selectbox(key="runs.optimizer").set_value("sgd").run()
    assert "No runs match" in texts(at)


def test_an_unknown_link_says_it_is_not_in_the_store() -> None:
    at = open_page(RUNS, {"open": "000000000000"})
    assert not at.exception
    assert "no runs" in texts(at)


def test_the_home_page_lists_every_preset() -> None:
    at = open_page("app.py")
    assert not at.exception
    shown = texts(at)
    for preset in PRESETS:
        assert preset.title in shown


LINKS = [(p.title, link) for p in PRESETS for link in p.links]


@pytest.mark.parametrize(("title", "link"), LINKS, ids=[f"{t}: {link.label}" for t, link in LINKS])
def test_each_preset_opens_its_page_with_its_config(title: str, link) -> None:
    at = open_page(link.page, link.query)
    assert not at.exception
    assert not [w.value for w in at.warning if "not valid" in str(w.value)]
    shown = {k: at.query_params[k] for k in at.query_params}  # what the page wrote back: its config
    parse = {COMPARE: ComparisonConfig.from_dict, LANDSCAPES: LandscapeConfig.from_dict}[link.page]
    assert parse(shown) == parse(link.query)
    for key in ("x", "log_y", "band"):
        if key in link.query:
            assert shown[key] == link.query[key]
