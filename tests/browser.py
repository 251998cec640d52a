"""Browser helpers shared by the browser tests and bench/first_point.py."""

from __future__ import annotations

import time
from urllib.parse import urlencode

CURVE_NAMES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(d => (d.layout?.annotations || []).some(a => a.text === 'train loss'))
  .map(d => (d.data || []).filter(t => t.fill !== 'toself' && (t.x || []).length > 0).map(t => t.name))
"""


def compare_url(base: str, optimizers: list[str], **values: object) -> str:
    """The Compare page's address for a given comparison (the page reads it from the URL)."""
    query = [("optimizer", o) for o in optimizers] + [(k, str(v)) for k, v in values.items()]
    return f"{base}/Compare_optimizers?{urlencode(query)}"


def run_and_time_first_point(page, url: str, *, timeout: float = 60.0) -> tuple[float, list[str]]:
    """Open ``url``, press Run, and return (seconds until a curve has a point, its trace names)."""
    page.goto(url)
    run = page.get_by_role("button", name="Run")
    run.wait_for(timeout=timeout * 1000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout * 1000)
    start = time.perf_counter()
    run.click()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        charts = page.evaluate(CURVE_NAMES_JS)
        if charts and charts[0]:
            return time.perf_counter() - start, charts[0]
        time.sleep(0.02)
    raise TimeoutError("no curve appeared after pressing Run")
