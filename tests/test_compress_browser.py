"""The Compression page in Chromium: a small pruning sweep ends in the Pareto chart and the table."""

from urllib.parse import urlencode

import pytest

pytestmark = pytest.mark.browser

# The Pareto chart, found by its x-axis title (never by its place on the page).
PARETO_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(d => ((d.layout?.xaxis?.title?.text) || '').startsWith('saved state_dict'))
  .map(d => (d.data || []).flatMap(t => (t.text || []).concat(t.name || [])))
"""


@pytest.mark.parametrize("width", [820, 1400])
def test_a_pruning_sweep_draws_the_pareto_chart(app_server: str, browser, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 1200})
    query = [("methods", "prune_unstructured:sparsity=0.5"), ("methods", "prune_structured:sparsity=0.5"),
             ("sparsities", "0.25,0.75"), ("epochs", "2"), ("latency_repeats", "3"), ("seed", str(width))]
    page.goto(f"{app_server}/Compression?{urlencode(query)}")
    run = page.get_by_role("button", name="Run", exact=True)
    run.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    assert f"seed={width}" in page.url and "sparsities=0.25%2C0.75" in page.url  # the link's config, not the defaults
    run.click()
    page.get_by_text("finished: 100%").wait_for(timeout=240_000)
    # Every variant on the chart: the baseline, each method at its sparsity and both swept ones
    # (waited for, since the chart is redrawn as rows arrive).
    wanted = ["baseline", "prune_structured:sparsity=0.25", "prune_structured:sparsity=0.75",
              "prune_unstructured:sparsity=0.5", "prune_unstructured:sparsity=0.75"]
    page.wait_for_function(
        f"wanted => ({PARETO_JS})().some(texts => wanted.every(w => texts.join(' ').includes(w)))",
        arg=wanted, timeout=60_000,
    )
    page.get_by_text("Download the table (CSV)").wait_for(timeout=60_000)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.close()
