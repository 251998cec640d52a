"""The Runs page in Chromium: comparisons run on the Compare page, the server restarted, then
opened and overlaid on the Runs page."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import CURVE_NAMES_JS, compare_url, run_and_time_first_point, streamlit_server

pytestmark = pytest.mark.browser

# Trace names of the overlay chart (found by its axis title, never by its place on the page).
OVERLAY_NAMES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(d => ((d.layout?.yaxis?.title?.text) || '').startsWith('validation loss'))
  .map(d => (d.data || []).filter(t => t.showlegend !== false).map(t => t.name))
"""


def test_past_comparisons_open_and_overlay_after_a_restart(
    browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    runs = [(["sgd:lr=0.1", "adam:lr=0.01"], "0"), (["momentum:lr=0.05"], "1")]
    with streamlit_server(home) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        for optimizers, seed in runs:
            run_and_time_first_point(page, compare_url(url, optimizers, epochs=3, seeds=seed, dataset="moons"))
            page.get_by_text("finished: 100%").wait_for(timeout=120_000)
        page.close()

    from tracking.runs import list_entries

    monkeypatch.setenv("DLOPT_HOME", str(home))
    found = {e.comparison_id: e for e in list_entries().entries}
    assert len(found) == 2
    # Every run of both comparisons, named as the overlay names them.
    seeds = {"SGD lr=0.1": "0", "Adam lr=0.01": "0", "SGD + momentum lr=0.05": "1"}
    expected = sorted(f"{cid[:6]} · {label} seed={seeds[label]}" for cid, e in found.items() for label in e.labels)

    with streamlit_server(home) as url:  # a new server: nothing of the first one is in memory
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{url}/Runs")
        page.get_by_text("Select a row to open it").wait_for(timeout=60_000)
        first, second = sorted(found)
        page.goto(f"{url}/Runs?open={first}&open={second}")
        curves = page.wait_for_function(
            f"() => {{ const c = ({CURVE_NAMES_JS})(); return c.length && c[0].length && c; }}", timeout=60_000,
        ).json_value()
        assert sorted(curves[0]) == sorted(found[first].labels)  # the first one opened, as on the Compare page
        page.get_by_role("tab", name="Overlay").click()
        names = page.wait_for_function(
            f"() => {{ const c = ({OVERLAY_NAMES_JS})(); return c.length && c[0].length && c[0]; }}", timeout=60_000,
        ).json_value()
        assert sorted(names) == expected
        page.close()
