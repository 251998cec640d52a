"""AppTest for the Online and continual page: the drift race and continual learning end to end, links good and junk."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from apptest import open_page
from dlopt_core.runner.jobs import registry

PAGE = "pages/9_Online_and_continual.py"
SMALL_RACE = {"learners": ["sgd:lr=0.1,policy=constant", "adam:lr=0.01,policy=reset"], "seeds": "0,1"}
SMALL_CONTINUAL = {"tab": "continual", "optimizer": ["sgd:lr=0.05", "adam:lr=0.001"], "strategies": "naive,replay",
                   "epochs": "1", "seeds": "0"}


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _wait(at: AppTest) -> AppTest:
    for job in registry().jobs():
        assert job.wait(240)
    return at.run()


def _titles(at: AppTest) -> list[str]:
    out = []
    for chart in at.get("plotly_chart"):
        title = json.loads(chart.proto.spec).get("layout", {}).get("title", {})
        out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return out


def test_the_drift_race_scores_every_learner_and_every_detector_beside_the_baselines() -> None:
    at = open_page(PAGE, SMALL_RACE)
    assert not at.exception and not at.error
    assert at.query_params["learners"] == SMALL_RACE["learners"] and "tab" not in at.query_params
    assert any("2 learners × 2 seeds = **4 runs**" in c.value and "true drifts at steps 100" in c.value for c in at.caption)
    _button(at, "Run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    recovery, detectors = at.dataframe[1].value, at.dataframe[2].value
    assert list(recovery["learner"]) == ["SGD lr=0.1 constant", "Adam lr=0.01 reset"]
    assert recovery["final_accuracy"].between(0, 1).all() and list(recovery["recovered_1"]) != ["-", "-"]
    # Every detector on a row, and the always- and never-firing baselines scored the same way.
    assert list(detectors["detector"]) == ["ADWIN", "Page-Hinkley", "KSWIN", "always fires (baseline)", "never fires (baseline)"]
    always = detectors.set_index("detector").loc["always fires (baseline)"]
    assert always["recall"] == "1.000" and float(always["false_per_1000"]) > 100
    never = detectors.set_index("detector").loc["never fires (baseline)"]
    assert never["precision"] == "— (no alarm)" and never["recall"] == "0.000"
    assert len(at.get("plotly_chart")) == 1
    at.segmented_control(key="stream.view.metric").set_value("loss").run()
    assert not at.exception


def test_continual_learning_fills_a_matrix_per_pair_and_ranks_forgetting() -> None:
    at = open_page(PAGE, SMALL_CONTINUAL)
    assert not at.exception and not at.error
    assert at.selectbox(key="continual.sequence").value == "split-digits" and at.query_params["tab"] == "continual"
    assert any("2 optimizers × 2 strategies × 1 seeds = **4 runs**" in c.value for c in at.caption)
    _button(at, "Run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    frame = at.dataframe[0].value
    assert list(zip(frame["optimizer"], frame["strategy"])) == [
        ("SGD lr=0.05", "Naive fine-tuning"), ("SGD lr=0.05", "Replay"), ("Adam lr=0.001", "Naive fine-tuning"),
        ("Adam lr=0.001", "Replay"),
    ]
    assert "forgetting_sd" not in frame  # one seed: no spread to show
    # Naive fine-tuning on split digits forgets the earlier tasks; replay keeps more of them.
    naive, replay = frame["forgetting"][0], frame["forgetting"][1]
    assert naive > 0.5 and replay < naive
    titles = _titles(at)
    assert sorted(t for t in titles if "(1 seed)" in t) == ["Naive fine-tuning (1 seed)"] * 2 + ["Replay (1 seed)"] * 2
    assert "which optimizer forgets least" in titles and any(t.startswith("anytime accuracy") for t in titles)


@pytest.mark.parametrize("query, bad", [
    ({"stream": "nope"}, "stream"),
    ({"learners": ["adam:lr=0.01,policy=sometimes"]}, "policy"),
    ({"tab": "continual", "strategies": "naive,forget"}, "strateg"),
    ({"tab": "continual", "epochs": "-3"}, "epochs"),
])
def test_a_junk_link_shows_the_defaults_and_says_what_was_wrong(query: dict, bad: str) -> None:
    at = open_page(PAGE, query)
    assert not at.exception and not at.error
    warning = next(w.value for w in at.warning if "link's settings were not valid" in w.value)
    assert bad in warning
    assert not _button(at, "Run").disabled
