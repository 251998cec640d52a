"""Compare page defects of issue 11 that an AppTest can see (browser ones live in test_compare_browser.py)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
COMPARE = "pages/1_Compare_optimizers.py"


def _compare(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if query:
        at.query_params.update(query)
    return at.switch_page(COMPARE).run()


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
