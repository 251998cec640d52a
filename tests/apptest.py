"""Opening a page of the app in Streamlit's AppTest, as the page tests do."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def open_page(path: str, query: dict | None = None, *, timeout: float = 120) -> AppTest:
    """Run ``app.py``, switch to the page file ``path`` with ``query`` in the URL, and return the test app."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    if query:
        at.query_params.update(query)
    return at.switch_page(path).run()


def wait_for_last_job(at: AppTest) -> None:
    """Wait for the newest job of the registry to end, then rerun the page."""
    from dlopt_core.runner.jobs import registry

    job = next(j for j in reversed(registry().jobs()))
    assert job.wait(120)
    at.run()
