"""The LR sensitivity page on a real `streamlit run` server, driven through Debian's Chromium."""

from urllib.parse import parse_qs, urlencode, urlparse

import pytest

pytestmark = pytest.mark.browser

# The sensitivity chart, found by its own x-axis title (never by its place on the page), as
# {line name: number of lrs with a value}, the best-lr stars and the y-axis title. While a
# rerun redraws the page an old copy may linger beside the new one, hence a list.
SENSITIVITY_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(d => d.layout?.xaxis?.title?.text === 'learning rate (log scale)')
  .map(d => ({
    lines: Object.fromEntries((d.data || []).filter(t => t.mode === 'lines+markers')
      .map(t => [t.name, (t.y || []).filter(v => v !== null).length])),
    stars: (d.data || []).filter(t => t.marker?.symbol === 'star').map(t => ({name: t.name, x: t.x[0]})),
    y: d.layout.yaxis.title.text,
  }))
"""


def test_a_small_sweep_draws_both_curves_and_marks_a_best_lr(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    query = [("optimizer", "sgd"), ("optimizer", "adam")] + list({
        "dataset": "wine", "epochs": 2, "lr_min": 0.001, "lr_max": 1, "points": 6, "seeds": "0",
    }.items())
    page.goto(f"{app_server}/LR_sensitivity?{urlencode(query)}")
    run = page.get_by_role("button", name="Run")
    run.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    run.click()
    # The Compare button appears once the sweep has ended (the page redraws without polling).
    page.get_by_role("button", name="Compare at the best learning rates").first.wait_for(timeout=180_000)
    page.wait_for_function(
        f"() => ({SENSITIVITY_JS})().some(c => Object.keys(c.lines).length === 2 && c.stars.length === 2)",
        timeout=60_000,
    )
    chart = next(c for c in page.evaluate(SENSITIVITY_JS) if len(c["stars"]) == 2)
    assert set(chart["lines"]) == {"SGD", "Adam"} and all(n >= 1 for n in chart["lines"].values())
    assert {s["name"] for s in chart["stars"]} == {"best lr SGD", "best lr Adam"}
    grid = [0.001, 0.00398, 0.0158, 0.0631, 0.251, 1.0]
    assert all(s["x"] in grid for s in chart["stars"])
    assert chart["y"] == "final validation loss (log scale)"
    # Each optimizer goes to the Compare page at its starred lr, through the URL.
    page.get_by_role("button", name="Compare at the best learning rates").first.click()
    page.wait_for_url("**/Compare_optimizers?**", timeout=60_000)
    boxes = page.locator("input[aria-label='learning rate']")
    page.wait_for_function("() => document.querySelectorAll(\"input[aria-label='learning rate']\").length === 2",
                           timeout=60_000)
    best = {s["name"].removeprefix("best lr "): float(s["x"]) for s in chart["stars"]}
    assert [float(boxes.nth(i).input_value()) for i in range(2)] == [best["SGD"], best["Adam"]]
    query = parse_qs(urlparse(page.url).query)
    assert query["optimizer"] == [f"sgd:lr={best['SGD']!r}", f"adam:lr={best['Adam']!r}"]
    assert query["dataset"] == ["wine"] and query["epochs"] == ["2"]
    page.close()
