"""The LR search page on a real `streamlit run` server, driven through Debian's Chromium."""

from urllib.parse import parse_qs, urlencode, urlparse

import pytest

pytestmark = pytest.mark.browser

# Every chart on the page as {title: {trace name: points}}, found by title (Streamlit's theme
# bolds it), never by place.
# While a rerun redraws the page an old copy may linger beside the new one: the last one wins.
CHARTS_JS = """
() => Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot'))
  .map(d => [(d.layout?.title?.text || '').replace(/<\/?b>/g, ''),
             Object.fromEntries((d.data || []).map(t => [t.name || '', (t.x || []).length]))]))
"""
TRIALS = "Every trial: validation result against learning rate"
BUDGET = "Tuning budget: the best result so far against trials used"
HISTORY = "Optimization History Plot"


def test_a_small_search_draws_the_history_and_every_trial_for_both_optimizers(app_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    query = [("optimizer", "sgd"), ("optimizer", "adam")] + list({
        "dataset": "wine", "epochs": 2, "n_trials": 6, "lr_min": "0.001,1e-5", "lr_max": "3,0.3",
    }.items())
    page.goto(f"{app_server}/LR_search?{urlencode(query)}")
    run = page.get_by_role("button", name="Run", exact=True)
    run.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    run.click()
    # The Compare button appears once every study is full (the page redraws without polling).
    compare = page.get_by_role("button", name="Compare at the tuned learning rates")
    compare.first.wait_for(timeout=180_000)
    page.wait_for_function(
        f"() => {{ const c = ({CHARTS_JS})(); return c['{TRIALS}'] && c['{HISTORY}'] && c['{BUDGET}']; }}",
        timeout=60_000,
    )
    charts = page.evaluate(CHARTS_JS)
    trials = charts[TRIALS]
    for name in ("SGD", "Adam"):
        drawn = sum(n for trace, n in trials.items() if trace.split(" ")[0] == name and not trace.endswith(" best"))
        assert drawn == 6, (name, trials)  # complete, pruned or diverged: every trial has a mark
        assert trials[f"{name} best"] == 1
    assert set(charts[BUDGET]) == {"SGD", "Adam"} and all(n == 6 for n in charts[BUDGET].values())
    assert sum(charts[HISTORY].values()) > 0
    # The table's best lrs go to the Compare page.
    table = page.get_by_test_id("stDataFrame").first
    table.wait_for()
    compare.first.click()
    page.wait_for_url("**/Compare_optimizers?**", timeout=60_000)
    sent = parse_qs(urlparse(page.url).query)
    assert [spec.split(":")[0] for spec in sent["optimizer"]] == ["sgd", "adam"]
    assert sent["dataset"] == ["wine"] and sent["epochs"] == ["2"]
    page.close()
