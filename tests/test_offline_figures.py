"""Figures stored in MLflow draw with the network blocked: plotly.js travels inside the HTML."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mlflow import MlflowClient

from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.experiments.compare import Comparison
from dlopt_core.experiments.landscape import LandscapeConfig, run_landscape
from tracking import MlflowObserver
from tracking.landscape_log import log_landscape
from tracking.store import settings

pytestmark = pytest.mark.browser

# The names of the traces plotly drew (``_fullData`` exists only once Plotly.newPlot ran),
# or null while the plot is not drawn.
DRAWN_TRACES_JS = """() => {
  const d = document.querySelector('.js-plotly-plot');
  if (!d || !d._fullData || !d.querySelector('svg.main-svg')) return null;
  return d._fullData.map(t => t.name);
}"""


def _artifact(client: MlflowClient, run_id: str, name: str) -> Path:
    """The file in the store's artifact folder (the local store keeps artifacts as files)."""
    folder = client.get_run(run_id).info.artifact_uri
    return Path(unquote(urlparse(folder).path)) / name


def _drawn_offline(browser, path: Path) -> tuple[list[str], list[str]]:
    """Open ``path`` with every network request refused; (trace names drawn, requests tried)."""
    context = browser.new_context()
    context.set_offline(True)
    tried: list[str] = []

    def refuse(route) -> None:
        tried.append(route.request.url)
        route.abort()

    context.route("http*://**/*", refuse)
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        names = page.wait_for_function(DRAWN_TRACES_JS, timeout=60_000).json_value()
        return names, tried
    finally:
        context.close()


def test_the_comparison_figure_draws_without_a_network(browser) -> None:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.make(name="sgd", lr=0.05), OptimizerConfig.make(name="adam")),
        data={"name": "wine"}, model={"name": "linear"}, epochs=2,
    )
    comparison = Comparison(cfg)
    observer = MlflowObserver()
    comparison.execute(observers=[observer])
    assert observer.errors == []
    client = MlflowClient(settings().mlflow_uri)
    # One figure per comparison, on its parent run.
    assert all([a.path for a in client.list_artifacts(observer.run_ids[r.index])] == ["curve.csv", "state_dict.pt"]
               for r in comparison.runs)

    names, tried = _drawn_offline(browser, _artifact(client, observer.run_ids[-1], "comparison.html"))
    assert {"SGD lr=0.05", "Adam lr=0.001"} <= set(names)
    assert tried == []


def test_the_landscape_figure_draws_without_a_network(browser) -> None:
    cfg = LandscapeConfig.make(
        optimizers=(OptimizerConfig.make(name="adam", lr=0.05), OptimizerConfig.make(name="sgd", lr=0.001)),
        steps=20,
    )
    run_ids = log_landscape(run_landscape(cfg))
    client = MlflowClient(settings().mlflow_uri)
    assert client.get_run(run_ids[1]).data.tags["figure"] == f"runs:/{run_ids[0]}/landscape.html"

    names, tried = _drawn_offline(browser, _artifact(client, run_ids[0], "landscape.html"))
    assert {"Adam lr=0.05", "SGD lr=0.001"} <= set(names)
    assert tried == []
