"""The Transfer and sharing page in Chromium: both tabs, Run, live charts, Stop, and a junk link."""

from urllib.parse import urlencode

import pytest

pytestmark = pytest.mark.browser

# A chart found by its title text (never by its place on the page).
TITLES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
  const t = d.layout?.title; return (typeof t === 'string' ? t : t?.text) || ''; })
"""


def _settled(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)


def _wait_for_chart(page, words: str) -> None:
    page.wait_for_function(f"w => ({TITLES_JS})().some(t => t.includes(w))", arg=words, timeout=120_000)


def test_both_tabs_run_stop_and_refuse_a_junk_link(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 820, "height": 1400})
    query = {"arms": "scratch,probe,lp-ft", "epochs": "3", "seeds": "0,1", "source_epochs": "2"}
    page.goto(f"{app_server}/Transfer_and_sharing?{urlencode(query)}")
    run = page.get_by_role("button", name="Run", exact=True).first
    run.wait_for(timeout=60_000)
    _settled(page)
    assert "arms=scratch%2Cprobe%2Clp-ft" in page.url  # the link's config, not the defaults
    run.click()
    page.get_by_text("finished: 6 of 6 runs").wait_for(timeout=180_000)
    for title in ("accuracy by arm", "learning vs forgetting", "relative weight change per layer", "learning rate per layer"):
        _wait_for_chart(page, title)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 820

    # The second tab: its own form, its tab in the link; a long run stopped by this browser.
    page.get_by_role("tab", name="Parameter sharing").click()
    page.wait_for_url("**tab=share**", timeout=60_000)
    _settled(page)
    epochs = page.get_by_label("epochs", exact=True)
    epochs.fill("3000")
    epochs.press("Enter")
    page.wait_for_url("**epochs=3000**", timeout=60_000)
    _settled(page)
    page.get_by_role("button", name="Run", exact=True).first.click()
    page.get_by_text("Really shared?").wait_for(timeout=120_000)
    page.get_by_role("button", name="Stop", exact=True).first.click()
    page.get_by_text("cancelled:").wait_for(timeout=60_000)

    # A reload keeps the tab and the settings; a junk link says what was wrong and shows the defaults.
    page.reload()
    page.get_by_text("Really shared?").wait_for(timeout=60_000)
    assert "tab=share" in page.url and "epochs=3000" in page.url
    page.goto(f"{app_server}/Transfer_and_sharing?tab=share&family=%3Cb%3Ejunk&epochs=-4")
    page.get_by_text("The link's settings were not valid").wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0
    page.close()
