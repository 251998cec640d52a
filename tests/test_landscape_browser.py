"""The Loss landscapes page in Chromium: paths, play, clicks, and the layout at 1400 and 820 px.

Every chart is found by its element key (Streamlit's ``st-key-<key>`` class), never by its
place on the page: the from-scratch section draws a contour plot too, and which chart
rendered first changed from run to run.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHART = ".st-key-landscape .js-plotly-plot"
# The landscape chart's plot as plotly holds it, or null until it is drawn.
GD = f"document.querySelector('{CHART}')"
DRAWN = f"() => {{ const d = {GD}; return !!(d && d._fullData && d.querySelector('.nsewdrag')); }}"
FIRST_PATH = f"{GD}._fullData.find(t => t.mode === 'lines+markers')"
# What one animation frame shows: the first path's length, and whether the surface is drawn
# (as a picture, or as a contour trace's paths).
SAMPLE_EVERY_FRAME = f"""() => {{
  window.__frames = [];
  const tick = () => {{
    const d = {GD};
    const image = d.querySelector('g.imagelayer image');
    const source = image ? (image.getAttribute('href') || image.getAttribute('xlink:href') || '') : '';
    const surface = source.startsWith('data:image/png') || d.querySelectorAll('.contourlayer path').length > 0;
    window.__frames.push({{points: {FIRST_PATH}.x.length, surface: surface}});
    if (!window.__stop) requestAnimationFrame(tick);
  }};
  requestAnimationFrame(tick);
}}"""


def _open(browser, app_server: str, query: str, *, width: int = 1400):
    page = browser.new_page(viewport={"width": width, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{app_server}/Loss_landscapes?{query}")
    page.wait_for_function(DRAWN, timeout=90_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=90_000)
    return page, errors


def _click_moves_the_start(page) -> None:
    start_x = page.locator("input[aria-label='start x']")
    assert start_x.input_value() == "-1.5"
    area = page.locator(f"{CHART} .nsewdrag").bounding_box()
    # Rosenbrock's window is x in [-2, 2], y in [-1, 3]: 75% across, 30% down is near (1, 1.8).
    page.mouse.click(area["x"] + area["width"] * 0.75, area["y"] + area["height"] * 0.3)
    page.wait_for_function("() => document.querySelector(\"input[aria-label='start x']\").value !== '-1.5'",
                           timeout=30_000)
    x = float(start_x.input_value())
    y = float(page.locator("input[aria-label='start y']").input_value())
    assert abs(x - 1.0) < 0.2 and abs(y - 1.8) < 0.2


def _tinted(page) -> float:
    """The share of the plot area's pixels that the (blue) surface tints."""
    chart = page.locator(".st-key-landscape")
    shot = Image.open(io.BytesIO(chart.screenshot())).convert("RGB")
    box, area = chart.bounding_box(), page.locator(f"{CHART} .nsewdrag").bounding_box()
    left, top = area["x"] - box["x"], area["y"] - box["y"]
    plot = shot.crop((int(left) + 2, int(top) + 2, int(left + area["width"]) - 2, int(top + area["height"]) - 2))
    pixels = list(plot.getdata())
    return sum(1 for r, _, b in pixels if b - r >= 6) / len(pixels)


def test_landscape_chart_has_one_trajectory_per_optimizer(app_server: str, browser) -> None:
    page, errors = _open(browser, app_server, "optimizer=adam:lr%3D0.05&optimizer=sgd:lr%3D0.001&optimizer=lbfgs&steps=200")
    traces = page.evaluate(f"""() => {{ const d = {GD};
        return {{paths: d.data.filter(t => t.mode === 'lines+markers').map(t => t.name),
                 frames: (d._transitionData?._frames || []).length}}; }}""")
    assert traces["paths"] == ["Adam lr=0.05", "SGD lr=0.001", "L-BFGS lr=1"]
    assert traces["frames"] > 10  # the play button and slider have steps to show
    assert errors == []
    page.close()


def test_clicking_the_plot_moves_the_start_point(app_server: str, browser) -> None:
    page, errors = _open(browser, app_server, "optimizer=adam:lr%3D0.05&steps=50")
    _click_moves_the_start(page)
    assert errors == []
    page.close()


def test_play_keeps_the_surface_under_the_moving_paths_and_a_click_works_after(app_server: str, browser) -> None:
    page, errors = _open(browser, app_server, "optimizer=adam:lr%3D0.05&optimizer=sgd:lr%3D0.001&steps=300")
    whole = page.evaluate(f"() => {FIRST_PATH}.x.length")
    last = page.evaluate(f"() => {{ const f = {GD}._transitionData._frames; return f[f.length - 1].name; }}")
    assert _tinted(page) > 0.5
    page.evaluate(SAMPLE_EVERY_FRAME)
    page.locator(f"{CHART} .updatemenu-button", has_text="play").click()
    # Over when the last frame is shown and no transition runs; the frames sampled on the way
    # must include partly drawn paths, or the play never happened.
    page.wait_for_function(
        f"""() => {{ const d = {GD}; return d._fullLayout._currentFrame === '{last}' && !d._transitioning
                     && window.__frames.some(f => f.points < {whole}); }}""",
        timeout=120_000,
    )
    page.evaluate("() => { window.__stop = true; }")
    frames = page.evaluate("() => window.__frames")
    assert any(0 < f["points"] < whole for f in frames)  # mid-play
    assert all(f["surface"] for f in frames)  # the surface under every frame painted
    assert page.evaluate(f"() => {FIRST_PATH}.x.length") == whole
    assert _tinted(page) > 0.5  # and on the screen after the play, not just in the DOM
    _click_moves_the_start(page)
    assert errors == []
    page.close()


SIX = "&".join(f"optimizer={o}" for o in (
    "sgd:lr%3D0.001", "momentum:lr%3D0.001", "adam:lr%3D0.0993", "rmsprop:lr%3D0.01", "adagrad:lr%3D0.5",
    "nesterov:lr%3D0.00123",
))
BOXES = f"""() => {{
  const d = {GD};
  const box = e => {{ const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }};
  return {{
    svg: box(d.querySelector('.main-svg')),
    title: box(d.querySelector('.legendtitletext, .gtitle')),
    items: Array.from(d.querySelectorAll('.legend .traces')).map(box),
    plot: box(d.querySelector('.nsewdrag')),
    buttons: Array.from(d.querySelectorAll('.updatemenu-button')).map(box),
    slider: box(d.querySelector('.slider-container')),
    xlabels: Array.from(d.querySelectorAll('.xtick text, .g-xtitle text')).map(box),
  }};
}}"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


@pytest.mark.parametrize("width", [1400, 820])
def test_title_legend_plot_and_controls_never_overlap_with_six_optimizers(app_server: str, browser, width: int) -> None:
    page, errors = _open(browser, app_server, f"function=beale&{SIX}&steps=50", width=width)
    b = page.evaluate(BOXES)
    assert len(b["items"]) == 8  # six paths, the start and the minimum
    parts = [("title", b["title"]), *(("legend item", i) for i in b["items"]), ("plot", b["plot"]),
             *(("button", i) for i in b["buttons"]), ("slider", b["slider"]), *(("x label", i) for i in b["xlabels"])]
    left, top, right, bottom = b["svg"]
    for i, (name, one) in enumerate(parts):
        assert left - 1 <= one[0] and one[2] <= right + 1 and top - 1 <= one[1] and one[3] <= bottom + 1, name
        for other, box in parts[i + 1:]:
            if "x label" not in (name, other) or name != other:
                assert not _overlap(one, box), (name, one, other, box)
    assert b["svg"][2] <= width  # the chart itself fits the window
    assert errors == []
    page.close()


@pytest.mark.parametrize("width", [1400, 820])
def test_nothing_on_the_page_is_cut_off_and_nothing_fails(app_server: str, browser, width: int) -> None:
    page, errors = _open(browser, app_server, "optimizer=adam:lr%3D0.05&optimizer=momentum:lr%3D0.001", width=width)
    page.locator(".st-key-reference .js-plotly-plot").wait_for(timeout=60_000)
    code = page.locator("[data-testid=stCode] pre").first
    assert "def gradient_descent(" in code.inner_text() and "def gradient(" in code.inner_text()
    overflow = page.evaluate("""() => {
      const wide = e => e.scrollWidth > e.clientWidth + 1;
      const main = document.querySelector('[data-testid=stMain]');
      return {
        main: wide(main),
        code: Array.from(document.querySelectorAll('[data-testid=stCode] pre')).some(wide),
        charts: Array.from(document.querySelectorAll('.js-plotly-plot'))
          .filter(d => d.getBoundingClientRect().right > main.getBoundingClientRect().right + 1).length,
        table: Array.from(document.querySelectorAll('[data-testid=stDataFrame] .dvn-scroller')).some(wide),
      };
    }""")
    assert overflow == {"main": False, "code": False, "charts": 0, "table": False}
    assert page.locator("[data-testid=stException]").count() == 0
    assert errors == []
    page.close()
