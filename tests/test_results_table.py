"""The Compare page's results table: differences stay visible, spread over seeds is shown."""

from dlopt_core.config import ComparisonConfig
from dlopt_core.engine.records import Record, Status
from dlopt_core.experiments.compare import Comparison
from ui.compare_view import results_frame


def _comparison(finals: dict[tuple[str, int], tuple[float, float]]) -> Comparison:
    cfg = ComparisonConfig.make(
        optimizers=({"name": "momentum"}, {"name": "nesterov"}, {"name": "lbfgs"}),
        data={"name": "wine"}, seeds=(0, 1), epochs=2,
    )
    comparison = Comparison(cfg)
    for r in comparison.runs:
        train, metric = finals[(r.config.optimizer.name, r.config.seed)]
        r.apply(Record(10, 2.0, 10, 0.5, 0.1, None, train, 0.3, metric, Status.FINISHED))
    return comparison


def test_significant_figures_keep_small_losses_and_close_values_apart_and_show_the_spread() -> None:
    table = results_frame(_comparison({
        ("momentum", 0): (0.01234, 0.9749), ("momentum", 1): (0.01236, 0.9751),
        ("nesterov", 0): (0.01241, 0.9751), ("nesterov", 1): (0.01243, 0.9753),
        ("lbfgs", 0): (3.2e-6, 1.0), ("lbfgs", 1): (3.4e-6, 1.0),
    }))
    momentum, nesterov, lbfgs = table.to_dict("records")
    assert momentum["final train loss"] == "0.01235 ± 1.4e-05"
    assert nesterov["final train loss"] == "0.01242 ± 1.4e-05"  # 4 decimals would print both as 0.0124
    assert momentum["final val accuracy"] != nesterov["final val accuracy"]
    assert lbfgs["final train loss"] == "3.3e-06 ± 1.4e-07"  # not rounded to 0
    assert lbfgs["final val accuracy"] == "1 ± 0"
    assert "None" not in table.to_string() and "nan" not in table.to_string()


def test_a_value_that_does_not_exist_reads_n_a() -> None:
    comparison = _comparison({(n, s): (0.1, 0.9) for n in ("momentum", "nesterov", "lbfgs") for s in (0, 1)})
    for r in comparison.runs[:2]:
        r.end(Status.DIVERGED)
    row = results_frame(comparison).to_dict("records")[0]
    assert row["final val accuracy"] == "n/a" and row["final train loss"] == "n/a"
