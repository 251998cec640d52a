"""Decision boundaries of 2-D classification runs, from the weights their evaluations carry."""

import numpy as np
import torch

from dlopt_core.catalog.models import build_model
from dlopt_core.config import ComparisonConfig, OptimizerConfig
from dlopt_core.engine.loop import load_run_data
from dlopt_core.experiments.compare import Comparison
from dlopt_core.plots.boundary import boundary_data, boundary_figure


def _moons(engine: str) -> Comparison:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.1"), OptimizerConfig.parse("adam:lr=0.01")),
        data={"name": "moons"}, epochs=4, seeds="0,1", engine=engine,
    )
    return Comparison(cfg).execute()


def test_each_engine_reports_the_weights_a_run_ended_with() -> None:
    for engine in ("batched", "sequential"):
        cmp = _moons(engine)
        run = cmp.runs[0]
        data = load_run_data(run.config)
        model = build_model(run.config.model, data, run.config.seed)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in run.weights.items()})
        model.eval()
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(data.x_val), data.y_val).item()
        assert abs(loss - run.records[-1].val_loss) < 1e-5, engine
        assert all(rec.weights is None for rec in run.records)  # kept once, not per record


def test_one_panel_per_optimizer_whose_probabilities_match_the_model() -> None:
    cmp = _moons("auto")
    data = load_run_data(cmp.runs[0].config)
    bd = boundary_data(cmp, data, grid=20)
    assert [p.label for p in bd.panels] == ["SGD lr=0.1", "Adam lr=0.01"]
    adam = bd.panels[1]
    assert len(adam.z) == 20 and all(0 <= v <= 1 for row in adam.z for v in row)
    assert len({round(v, 2) for row in adam.z for v in row}) > 10  # a surface, not one colour
    fig = boundary_figure(bd)
    assert [t.type for t in fig.data] == ["contour", "scatter", "contour", "scatter"]


def test_data_that_is_not_two_dimensional_carries_no_weights() -> None:
    cfg = ComparisonConfig.make(optimizers=(OptimizerConfig.parse("adam"),), data={"name": "wine"}, epochs=1, seeds="0")
    cmp = Comparison(cfg).execute()
    assert cmp.runs[0].weights is None


def test_weights_travel_through_the_split_engine_for_the_first_seed_only(monkeypatch) -> None:
    monkeypatch.setenv("DLOPT_ENGINE_PROCESSES", "2")
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("sgd:lr=0.1"), OptimizerConfig.parse("adam:lr=0.01")),
        data={"name": "moons"}, epochs=30, seeds="0,1,2", engine="batched",
    )
    split = Comparison(cfg).execute()
    monkeypatch.setenv("DLOPT_ENGINE_PROCESSES", "1")
    alone = Comparison(cfg).execute()
    carried = [r.weights is not None for r in split.runs]
    assert carried == [True, False, False, True, False, False]  # seed 0 of each optimizer
    for a, b in zip(split.runs, alone.runs):
        if a.weights is not None:
            assert all(np.allclose(a.weights[k], b.weights[k], atol=1e-6) for k in a.weights)


def test_a_wide_model_carries_no_weights() -> None:
    cfg = ComparisonConfig.make(
        optimizers=(OptimizerConfig.parse("adam:lr=0.01"),), data={"name": "moons"}, epochs=1, seeds="0",
        model={"name": "mlp", "params": {"hidden": "512/512"}},
    )
    assert Comparison(cfg).execute().runs[0].weights is None
