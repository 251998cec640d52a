"""The Online and continual page in Chromium: both tabs, Run, live charts, Stop, reload and a junk link."""

from urllib.parse import urlencode

import pytest

pytestmark = pytest.mark.browser

TITLES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
  const t = d.layout?.title; return (typeof t === 'string' ? t : t?.text) || ''; })
"""


def _settled(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)


def _wait_for_chart(page, words: str) -> None:
    page.wait_for_function(f"w => ({TITLES_JS})().some(t => t.includes(w))", arg=words, timeout=120_000)


def test_both_tabs_run_stop_reload_and_refuse_a_junk_link(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 820, "height": 1400})
    # One sample a step: a race long enough to stop while it runs.
    query = [("learners", "sgd:lr=0.1,policy=constant"), ("learners", "adam:lr=0.01,policy=reset"),
             ("seeds", "0,1,2,3"), ("batch_size", "1")]
    page.goto(f"{app_server}/Online_and_continual?{urlencode(query)}")
    run = page.get_by_role("button", name="Run", exact=True).first
    run.wait_for(timeout=60_000)
    _settled(page)
    assert "policy%3Dreset" in page.url and "batch_size=1" in page.url  # the link's settings, not the defaults
    run.click()
    page.get_by_text("training:").wait_for(timeout=60_000)
    _wait_for_chart(page, "true drifts")
    page.get_by_role("button", name="Stop", exact=True).first.click()
    page.get_by_text("cancelled:").wait_for(timeout=60_000)
    page.get_by_text("never fires (baseline)").wait_for(state="attached", timeout=60_000)  # a grid cell (canvas)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 820
    page.reload()  # the same race, found again by its settings
    page.get_by_text("cancelled:").wait_for(timeout=60_000)
    _wait_for_chart(page, "true drifts")

    # The second tab: its own form, its tab in the link; a small experiment to its end.
    page.get_by_role("tab", name="Continual learning").click()
    page.wait_for_url("**tab=continual**", timeout=60_000)
    _settled(page)
    seeds = page.get_by_label("seeds", exact=True)
    seeds.fill("0")
    seeds.press("Enter")
    page.wait_for_url("**seeds=0&**", timeout=60_000)
    _settled(page)
    page.get_by_role("button", name="Run", exact=True).first.click()
    page.get_by_text("finished: 6 of 6 runs").wait_for(timeout=120_000)
    _wait_for_chart(page, "which optimizer forgets least")
    assert "tab=continual" in page.url

    page.goto(f"{app_server}/Online_and_continual?stream=%3Cscript%3E&learners=adam:lr=-1")
    page.get_by_text("The link's settings were not valid").wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0
    page.close()
