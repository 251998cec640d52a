"""The Loss landscapes page's tuning, as a person sees it: values, flags, notes."""

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import ui.landscape_form
from apptest import wait_for_last_job
from dlopt_core.experiments.landscape import FUNCTIONS, LandscapeConfig, LrSearch
from dlopt_core.runner.jobs import registry
from ui.binding import with_defaults
from work_samples import KnownTune
from dlopt_core.config import lr_label

ROOT = Path(__file__).resolve().parents[1]


def _landscapes(query: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    return at.switch_page("pages/2_Loss_landscapes.py").run()


def _tune(at: AppTest) -> AppTest:
    """Press Tune, wait for the tuning job (it runs in the background), and redraw."""
    next(b for b in at.button if b.label == "Tune learning rates").click().run()
    assert not at.exception
    wait_for_last_job(at)
    assert not at.exception
    return at


def test_a_tuned_lr_shows_three_significant_digits_in_the_box_legend_table_and_url() -> None:
    at = _tune(_landscapes({"steps": "100", "optimizer": ["adam:lr=0.001"]}))
    lr = next(n.value for n in at.number_input if n.label == "learning rate")
    assert lr != 0.001 and lr == float(f"{lr:.3g}")
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == [f"Adam lr={lr_label(lr)}"]  # the label the legend uses too
    assert at.query_params["optimizer"] in (f"adam:lr={lr!r}", [f"adam:lr={lr!r}"])  # one value: no list
    assert table["lr search"][0].startswith("inside 1e-6 – ")  # Adam's range widened for a 2-D toy
    assert any("tuned" in s.value for s in at.success) and not at.warning


@pytest.mark.parametrize(
    ("found", "message", "cell"),
    [
        (LrSearch(100.0, 1e-6, 100.0, 0.5), "top end of the range searched (1e-6 – 100)", "⚠ top end of 1e-6 – 100"),
        (LrSearch(1e-8, 1e-8, 1.0, 0.5), "bottom end of the range searched (1e-8 – 1)", "⚠ bottom end of 1e-8 – 1"),
        (LrSearch(0.01, 1e-6, 1.0, float("inf")), "no lr in 1e-6 – 1 ran its steps", "⚠ none of 1e-6 – 1 finished"),
    ],
)
def test_a_best_lr_on_an_end_of_the_range_is_flagged_in_the_message_and_the_table(
    found: LrSearch, message: str, cell: str, tmp_path: Path
) -> None:
    query = {"steps": "20", "optimizer": ["adam:lr=0.001", "sgd:lr=0.001"]}
    at = _known_tuning(query, tmp_path, given=found)
    assert [w.value for w in at.warning] == [
        f"Adam lr={lr_label(found.lr)}: {ui.landscape_form.search_text(found)}.",
        f"SGD lr={lr_label(found.lr)}: {ui.landscape_form.search_text(found)}.",
    ]
    assert message in at.warning[0].value
    assert list(at.dataframe[0].value["lr search"]) == [cell, cell]
    # Still flagged in the table after another rerun, while the boxes hold the tuned values.
    at.run()
    assert list(at.dataframe[0].value["lr search"]) == [cell, cell] and not at.warning


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_each_chart_has_a_what_to_look_for_note(name: str) -> None:
    at = _landscapes({"function": name, "steps": "20", "optimizer": ["adam:lr=0.05"]})
    assert not at.exception
    notes = [c.value for c in at.caption if c.value.startswith("**What to look for:**")]
    assert len(notes) == 3  # the surface, the curves, the from-scratch paths
    assert FUNCTIONS[name].look_for in notes[0]
    at.toggle(key="landscape.surface3d").set_value(True).run()
    notes = [c.value for c in at.caption if c.value.startswith("**What to look for:**")]
    assert not at.exception and len(notes) == 3 and "Drag to turn it" in notes[0]


def _known_tuning(query: dict, folder: Path, *, owner: str | None = None, **known: Any) -> AppTest:
    """The page opened while a tuning of its config runs (its searches come out as ``known`` says),
    then redrawn once that tuning ended."""
    config = LandscapeConfig.from_dict(with_defaults(query, ui.landscape_form.DEFAULT))
    go = folder / "go"
    job = registry().submit(KnownTune(config, hold=str(go), **known), owner=owner)
    at = _landscapes(query)
    assert not at.exception and job.active
    go.touch()
    assert job.wait(60)
    at.run()
    assert not at.exception
    return at


def test_another_browsers_tuning_leaves_this_browsers_boxes_and_link_alone(tmp_path: Path) -> None:
    query = {"steps": "30", "optimizer": ["adam:lr=0.002"]}
    at = _known_tuning(query, tmp_path, owner="another browser", given=LrSearch(0.5, 1e-6, 1.0, 0.1))
    assert not at.success and not at.warning
    assert next(n.value for n in at.number_input if n.label == "learning rate") == 0.002
    assert at.query_params["optimizer"] in ("adam:lr=0.002", ["adam:lr=0.002"])


def test_a_tuning_that_ended_before_the_page_opened_changes_nothing() -> None:
    query = {"steps": "30", "optimizer": ["adam:lr=0.002"]}
    config = LandscapeConfig.from_dict(with_defaults(query, ui.landscape_form.DEFAULT))
    assert registry().submit(KnownTune(config, LrSearch(0.5, 1e-6, 1.0, 0.1))).wait(60)
    at = _landscapes(query)
    assert not at.exception and not at.success and not at.warning
    assert next(n.value for n in at.number_input if n.label == "learning rate") == 0.002


def test_a_tuning_stopped_part_way_says_how_far_it_got(tmp_path: Path) -> None:
    query = {"steps": "30", "optimizer": ["adam:lr=0.002", "sgd:lr=0.003"]}
    at = _known_tuning(query, tmp_path, given=LrSearch(0.05, 1e-6, 1.0, 0.1), reached=1)
    assert not at.success
    assert any("after 1 of 2 optimizers" in w.value for w in at.warning), [w.value for w in at.warning]
    assert [n.value for n in at.number_input if n.label == "learning rate"][:2] == [0.05, 0.003]


def test_a_tuning_stopped_before_any_search_ended_says_so(tmp_path: Path) -> None:
    query = {"steps": "30", "optimizer": ["adam:lr=0.002"]}
    at = _known_tuning(query, tmp_path, given=LrSearch(0.05, 1e-6, 1.0, 0.1), reached=0)
    assert not at.success and not at.warning
    assert any("before any optimizer was tuned" in i.value for i in at.info), [i.value for i in at.info]
    assert next(n.value for n in at.number_input if n.label == "learning rate") == 0.002
