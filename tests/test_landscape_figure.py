"""The landscape figure: a surface the animation cannot wipe, frames that keep clicks working."""

import base64
import io

import pytest
from PIL import Image

from dlopt_core.config import OptimizerConfig
from dlopt_core.experiments.landscape import FUNCTIONS, LandscapeConfig, LandscapeResult, run_landscape
from dlopt_core.plots import landscape_figure
from dlopt_core.plots.landscape import SURFACE_NAME, surface_image


def _result(function: str = "rosenbrock", optimizers: tuple[str, ...] = ("adam:lr=0.05", "sgd:lr=0.001"),
            steps: int = 120) -> LandscapeResult:
    cfg = LandscapeConfig.make(
        function=function, steps=steps, optimizers=tuple(OptimizerConfig.parse(o) for o in optimizers),
    )
    return run_landscape(cfg, grid=40)


def _png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_the_figure_has_only_traces_plotly_can_animate() -> None:
    # plotly.js drops every trace it cannot animate (contour, heatmap) at each frame.
    fig = landscape_figure(_result(), click_grid=11)
    assert {t.type for t in fig.data} == {"scatter"}
    assert [img.name for img in fig.layout.images] == [SURFACE_NAME]


def test_every_frame_lists_every_trace_and_only_the_paths_change() -> None:
    result = _result("himmelblau", ("adam:lr=0.1", "sgd:lr=0.01", "asgd:lr=0.5"))
    fig = landscape_figure(result, frames=12, click_grid=11)
    paths = [t for t in fig.data if t.mode == "lines+markers"]
    assert [p.name for p in paths] == ["Adam lr=0.1", "SGD lr=0.01", "ASGD lr=0.5"]
    assert len(fig.frames) == 12 and len(fig.layout.sliders[0].steps) == 12
    for frame in fig.frames:
        assert list(frame.traces) == list(range(len(fig.data)))  # a click needs every trace redrawn
        fixed = frame.data[len(paths):]
        assert all(t.x is None and t.y is None for t in fixed)  # empty updates: no copies of the grid
    assert list(fig.frames[-1].data[0].x) == list(paths[0].x)  # the last frame shows the whole path
    assert len(fig.frames[0].data[0].x) < len(paths[0].x)
    assert fig.layout.sliders[0].active == 11  # the figure opens on whole paths, the slider agrees
    stopped = [t for t in fig.data if t.mode == "markers+text"]
    assert [t.text[0] for t in stopped] == [result.trajectories[2].status_text]
    assert len(next(t for t in fig.data if t.name == "minimum").x) == 4  # Himmelblau's four


def test_the_surface_image_covers_the_window_and_is_darkest_at_the_minimum() -> None:
    result = _result()
    fig = landscape_figure(result)
    (x0, x1), (y0, y1) = FUNCTIONS["rosenbrock"].window
    image = fig.layout.images[0]
    assert (image.x, image.y, image.sizex, image.sizey) == (x0, y1, x1 - x0, y1 - y0)
    assert (image.xref, image.yref, image.layer) == ("x", "y", "below")
    picture = _png(image.source)
    width, height = picture.size
    assert width == height == 4 * (40 - 1) + 1

    def pixel(x: float, y: float) -> float:  # row 0 is the top of the window
        col = round((x - x0) / (x1 - x0) * (width - 1))
        row = round((y1 - y) / (y1 - y0) * (height - 1))
        return sum(picture.getpixel((col, row)))

    assert pixel(1.0, 1.0) < pixel(-2.0, 3.0) and pixel(1.0, 1.0) < pixel(2.0, -1.0)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_function_gets_a_surface_picture(name: str) -> None:
    colours = _png(surface_image(_result(name, ("adam",), steps=5).surface)).getcolors(maxcolors=256)
    assert colours is not None and len(colours) > 10  # bands, not one flat colour


def test_the_title_is_the_legends_own_so_they_cannot_overlap() -> None:
    fig = landscape_figure(_result("beale"))
    assert not fig.layout.title.text
    assert fig.layout.legend.title.text.startswith("<b>Beale</b>")
    assert FUNCTIONS["beale"].formula in fig.layout.legend.title.text
    assert fig.layout.legend.title.side == "top"  # "top left" indents the items by the title's width
