"""Compare page defects of issue 11 that an AppTest can see (browser ones live in test_compare_browser.py)."""

import pytest
from streamlit.testing.v1 import AppTest

from apptest import open_page, wait_for_last_job

COMPARE = "pages/1_Compare_optimizers.py"


def _compare(query: dict | None = None) -> AppTest:
    return open_page(COMPARE, query)


@pytest.mark.parametrize("schedule", ["step", "warmup_cosine", "plateau", "one_cycle"])
def test_each_schedule_with_its_defaults_runs_on_a_one_epoch_budget(schedule: str) -> None:
    at = _compare({"optimizer": ["sgd"], "schedule": schedule, "epochs": "1"})
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="schedule").value == schedule
    assert any(b.label == "Run" for b in at.button)


def test_a_plateau_that_cannot_drop_in_the_budget_says_so_and_still_runs() -> None:
    at = _compare({"optimizer": ["sgd"], "schedule": "plateau", "epochs": "2"})
    assert not at.error
    assert any("cannot drop" in w.value for w in at.warning)
    assert any(b.label == "Run" for b in at.button)


def test_two_dimensional_data_shows_each_optimizers_decision_boundary() -> None:
    at = _compare({"optimizer": ["sgd:lr=0.1", "adam:lr=0.01"], "dataset": "moons", "epochs": "3"})
    next(b for b in at.button if b.label == "Run").click().run()
    wait_for_last_job(at)
    assert not at.exception
    charts = {c.proto.id for c in at.get("plotly_chart")}
    assert any("boundary" in key for key in charts), charts
    assert any("decision boundary" in c.value for c in at.caption)


def test_the_lr_panel_draws_what_each_run_used_beside_the_plan() -> None:
    import json

    at = _compare({
        "optimizer": ["sgd:lr=2"], "dataset": "moons", "epochs": "12", "schedule": "plateau",
        "schedule.patience": "0", "schedule.factor": "0.1",
    })
    next(b for b in at.button if b.label == "Run").click().run()
    wait_for_last_job(at)
    assert not at.exception
    chart = next(c for c in at.get("plotly_chart") if "lr_used" in c.proto.id)
    traces = json.loads(chart.proto.spec)["data"]
    plan = next(t for t in traces if t["name"].endswith("(plan)"))
    used = next(t for t in traces if t["name"].endswith("(used)"))
    assert set(plan["y"]) == {2.0}  # reduce-on-plateau cannot be planned: drawn flat
    assert used["y"][0] == 2.0 and used["y"][-1] < 0.1  # the drops that happened


def test_a_finished_comparison_offers_its_report_csvs_and_the_command() -> None:
    import shlex

    from dlopt_core.cli import build_parser
    from dlopt_core.cli.compare import build_config
    from dlopt_core.runner.jobs import registry

    at = _compare({"optimizer": ["sgd:lr=0.1", "adam:lr=0.01"], "dataset": "wine", "epochs": "2", "seeds": "0,1"})
    assert not list(at.get("download_button")), "nothing to download before a run"
    next(b for b in at.button if b.label == "Run").click().run()
    wait_for_last_job(at)
    assert not at.exception
    labels = {d.proto.label for d in at.get("download_button")}
    assert labels == {"HTML report", "Curves CSV", "Table CSV"}
    [command] = [c.value for c in at.code if "dlopt_core compare" in c.value]
    # The command is the same comparison: parsed back by the CLI, it gives the page's config.
    words = shlex.split(command.replace("\\\n", " "))
    rebuilt = build_config(build_parser().parse_args(words[words.index("dlopt_core") + 1:]))
    ran = registry().jobs()[-1].work.comparison.config
    assert rebuilt.key() == ran.key()
