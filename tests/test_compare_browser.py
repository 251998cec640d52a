"""The Compare page in Chromium: a diverged run, a narrow window, the lr each run used."""

import pytest

from browser import compare_url, run_and_time_first_point

pytestmark = pytest.mark.browser

# The curves chart, found by what it shows (never by its place on the page).
CURVES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .find(d => (d.layout?.annotations || []).some(a => a.text === 'train loss'))
"""


def test_a_diverging_run_keeps_the_other_curves_readable(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    # Least squares: SGD at lr=0.9 climbs to ~1e6 (16.8 at the start) without diverging; at
    # lr=1.5 it diverges before its first evaluation.
    url = compare_url(
        app_server, ["sgd:lr=0.9", "sgd:lr=1.5", "adam:lr=0.1"], epochs=6, seeds=0, engine="sequential",
        dataset="linear", model="linear",
    )
    run_and_time_first_point(page, url)
    page.get_by_text("finished: 100%").wait_for(timeout=120_000)
    drawn = page.wait_for_function(f"""
() => {{
  const d = ({CURVES_JS})();
  const full = d?._fullData || [];
  const off = full.filter(t => (t.name || '').endsWith('off the scale') && t.xaxis === 'x');
  const crosses = full.filter(t => t.marker?.symbol === 'x' && t.xaxis === 'x');
  if (!off.length || !crosses.length) return null;
  return {{
    range: d._fullLayout.yaxis.range,
    labels: off.flatMap(t => t.text),
    adam: full.find(t => t.name === 'Adam lr=0.1' && t.xaxis === 'x').y,
    crosses: crosses.map(t => t.name),
  }};
}}""", timeout=60_000).json_value()
    # The axis ends near 3x the starting loss (~17), not at 1e6: Adam's descent is visible.
    assert drawn["range"][1] < 60
    assert max(drawn["adam"]) - min(drawn["adam"]) > 0.25 * (drawn["range"][1] - drawn["range"][0])
    assert any("e+" in label for label in drawn["labels"])
    assert any("lr=1.5" in name for name in drawn["crosses"])  # the run that diverged before its first evaluation
    page.close()


@pytest.mark.parametrize("width", [820, 1400])
def test_every_control_and_stop_fit_the_window(app_server: str, browser, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 1000})
    url = compare_url(app_server, ["momentum:lr=0.05", "adam:lr=0.001", "rmsprop:lr=0.001"], epochs=3000, seeds=width)
    run_and_time_first_point(page, url)
    stop = page.get_by_role("button", name="Stop", exact=True)
    stop.wait_for(timeout=30_000)
    boxes = {
        "Run": page.get_by_role("button", name="Run").bounding_box(),
        "Stop": stop.bounding_box(),
        "x-axis": page.get_by_text("x-axis", exact=True).bounding_box(),
        "band": page.get_by_text("band over seeds", exact=True).bounding_box(),
    }
    for name, box in boxes.items():
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
    # No page-wide horizontal scroll: nothing is cut off at the right edge.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    stop.click()
    page.get_by_text("cancelled:").wait_for(timeout=30_000)
    page.close()


def test_only_the_browser_that_started_a_comparison_can_stop_it(app_server: str, browser) -> None:
    url = compare_url(app_server, ["sgd:lr=0.1", "adam:lr=0.001"], epochs=3000, seeds=0, dataset="wine")
    mine = browser.new_context(viewport={"width": 1400, "height": 1000})
    theirs = browser.new_context(viewport={"width": 1400, "height": 1000})  # a colleague's browser
    page = mine.new_page()
    run_and_time_first_point(page, url)
    stop = page.get_by_role("button", name="Stop", exact=True)
    other = theirs.new_page()
    other.goto(url)
    other.get_by_text("Started in another browser").wait_for(timeout=60_000)
    assert other.get_by_role("button", name="Stop", exact=True).is_disabled()
    assert other.get_by_role("button", name="stop SGD lr=0.1").count() == 0
    # The one who started it keeps Stop after a reload, and in a second tab of the same browser.
    page.reload()
    stop.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    tab = mine.new_page()
    tab.goto(url)
    tab.get_by_role("button", name="stop SGD lr=0.1").wait_for(timeout=60_000)
    assert not tab.get_by_role("button", name="Stop", exact=True).is_disabled()
    tab.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("cancelled", exact=False).first.wait_for(timeout=60_000)
    other.get_by_text("cancelled", exact=False).first.wait_for(timeout=60_000)
    mine.close()
    theirs.close()
