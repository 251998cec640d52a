"""A real `streamlit run` server driven through Debian's Chromium."""

import pytest

from browser import CURVE_NAMES_JS, compare_url, run_and_time_first_point

pytestmark = pytest.mark.browser


def test_compare_two_optimizers_shows_a_live_chart_with_both(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    url = compare_url(app_server, ["sgd:lr=0.1", "adam:lr=0.001"], epochs=40)
    seconds, names = run_and_time_first_point(page, url)
    assert set(names) <= {"SGD lr=0.1", "Adam lr=0.001"} and names
    page.get_by_text("finished: 100%").wait_for(timeout=120_000)
    # Waited for, not slept for: the chart is redrawn as the last points arrive.
    final = page.wait_for_function(
        f"""() => {{ const c = ({CURVE_NAMES_JS})()[0] || [];
                    return c.includes('SGD lr=0.1') && c.includes('Adam lr=0.001') && c; }}""",
        timeout=60_000,
    ).json_value()
    assert {"SGD lr=0.1", "Adam lr=0.001"} <= set(final)
    assert page.get_by_text("finished").count() >= 1
    page.close()


def test_a_second_tab_attaches_to_the_running_comparison(app_server: str, browser) -> None:
    url = compare_url(app_server, ["momentum:lr=0.05", "rmsprop:lr=0.001"], epochs=3000)
    same_browser = browser.new_context()  # a second tab of the same browser may stop the run
    first = same_browser.new_page()
    run_and_time_first_point(first, url)
    second = same_browser.new_page()
    second.goto(url)
    second.get_by_text("training:").wait_for(timeout=60_000)
    assert second.get_by_role("button", name="Run").is_disabled()
    second.get_by_role("button", name="Stop", exact=True).click()
    first.get_by_text("cancelled:").wait_for(timeout=30_000)
    same_browser.close()


def test_home_page_links_to_the_compare_page(app_server: str, browser) -> None:
    page = browser.new_page()
    page.goto(app_server)
    page.get_by_text("dlopt: see how optimizers behave").wait_for(timeout=60_000)
    page.get_by_role("link", name="Compare optimizers").first.click()
    page.get_by_role("button", name="Run").wait_for(timeout=60_000)
    assert "/Compare_optimizers" in page.url
    page.close()


def test_seed_bands_are_drawn_without_markers(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    url = compare_url(app_server, ["sgd:lr=0.1", "adam:lr=0.001"], epochs=4, seeds="0,1", dataset="wine")
    run_and_time_first_point(page, url)
    page.get_by_text("finished: 100%").wait_for(timeout=120_000)
    # What plotly resolved and drew, not what the figure asked for.
    modes = page.wait_for_function("""
() => {
  const d = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(d => (d.layout?.annotations || []).some(a => a.text === 'train loss'));
  const bands = (d?._fullData || []).filter(t => t.fill === 'toself');
  return bands.length === 6 ? bands.map(t => t.mode) : null;
}""", timeout=60_000).json_value()
    assert modes == ["lines"] * 6
    page.close()
