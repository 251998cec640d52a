"""The runs browser's queries against a real MLflow SQLite store, and the exports of a stored comparison."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shlex

import plotly
import pytest

from dlopt_core.cli import build_parser
from dlopt_core.cli.compare import build_config
from dlopt_core.config import ComparisonConfig
from dlopt_core.experiments.compare import Comparison, summary_rows
from dlopt_core.export import CURVE_COLUMNS, cli_command, curves_csv, report_html, table_csv
from dlopt_core.plots import curves_data
from dlopt_core.plots.hparams import hparams_data
from dlopt_core.plots.overlay import overlay_data, smoothed
from tracking import MlflowObserver
from tracking.runs import RunFilter, RunsError, list_entries, load_comparison, run_rows
from tracking.store import client, experiment_id


def compare(
    optimizers: list[str], *, parent: str | None = None, legacy: bool = False, seeds: str = "0,1", **setup: object,
) -> Comparison:
    """Train a small comparison, logged to MLflow as the Compare page logs it (``legacy``: as
    the first version did, without a parent run)."""
    flat = {"optimizer": optimizers, "seeds": seeds, "epochs": 3, "dataset": "moons", "batch_size": 64, **setup}
    observer = MlflowObserver(parent=parent)
    if legacy:
        observer.comparison_started = lambda comparison: None  # type: ignore[method-assign]
    return Comparison(ComparisonConfig.from_dict(flat)).execute(observers=[observer])


@pytest.mark.parametrize(("parent", "legacy"), [(None, False), ("a parent run", False), (None, True)])
def test_a_stored_comparison_draws_and_tabulates_exactly_as_it_did_live(parent: str | None, legacy: bool) -> None:
    live = compare(["sgd:lr=0.1", "adam", "lbfgs"], parent=parent, legacy=legacy)
    stored = load_comparison(live.id)
    assert stored.config == live.config
    for x in ("epoch", "step", "samples", "wall_time"):
        assert curves_data(stored.comparison, x=x) == curves_data(live, x=x), x
    assert summary_rows(stored.comparison) == summary_rows(live)
    assert [r.status for r in stored.comparison.runs] == [r.status for r in live.runs]
    assert sorted(stored.run_ids) == ([] if legacy else [-1]) + list(range(6))


def test_a_diverged_run_reads_back_diverged_at_its_step() -> None:
    live = compare(["sgd:lr=1.5", "adam:lr=0.1"], dataset="linear", model="linear", seeds="0")
    stored = load_comparison(live.id).comparison
    assert [r.status_text for r in stored.runs] == [r.status_text for r in live.runs]
    assert stored.runs[0].status == "diverged"
    assert curves_data(stored, x="step", optimum=live.optimum) == curves_data(live, x="step")


def test_an_unknown_comparison_says_so() -> None:
    with pytest.raises(RunsError, match="no runs"):
        load_comparison("000000000000")


def _fake_runs(n: int) -> list[str]:
    """``n`` parent-less runs, one comparison each, started a second apart (oldest first)."""
    c = client()
    exp = experiment_id("dlopt-compare")
    start = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    ids = []
    for i in range(n):
        optimizer = ("adam", "adamw", "sgd")[i % 3]
        run = c.create_run(exp, start_time=start + 1000 * i, run_name=f"{optimizer} seed=0", tags={
            "comparison_id": f"c{i:03d}", "optimizer": optimizer, "status": "finished", "dataset": "wine",
        })
        c.log_batch(run.info.run_id, params=[])
        for key, value in (("dataset", "wine" if i % 2 else "digits"), ("model", "mlp"), ("optimizer", optimizer)):
            c.log_param(run.info.run_id, key, value)
        c.set_terminated(run.info.run_id, "FINISHED" if i != 4 else "FAILED")
        ids.append(f"c{i:03d}")
    return ids


def test_pages_are_newest_first_and_together_hold_every_comparison_once() -> None:
    ids = _fake_runs(8)
    seen, token, pages = [], None, 0
    while True:
        page = list_entries(page_size=3, page_token=token)
        seen += [e.comparison_id for e in page.entries]
        pages += 1
        if (token := page.next_token) is None:
            break
    assert pages == 3
    assert seen == ids[::-1]


def test_filters_run_in_the_store() -> None:
    _fake_runs(9)

    def found(**values: object) -> set[str]:
        return {e.comparison_id for e in list_entries(RunFilter(**values), page_size=50).entries}

    assert found(dataset="wine") == {f"c{i:03d}" for i in range(9) if i % 2}
    assert found(optimizer="adam") == {"c000", "c003", "c006"}  # not adamw
    assert found(status="failed") == {"c004"}
    assert found(model="cnn") == set()
    assert found(since=dt.date(2026, 1, 1), until=dt.date(2026, 1, 1)) == {f"c{i:03d}" for i in range(9)}
    assert found(since=dt.date(2026, 1, 2)) == set()
    assert found(kinds=("study",)) == set()
    assert "params.dataset = 'wine'" in RunFilter(dataset="wine").filter_string()


def test_a_parent_run_is_one_row_and_its_runs_are_not_listed() -> None:
    named = compare(["sgd:lr=0.1", "adam"], parent="cmp")
    unnamed = compare(["sgd:lr=0.1", "adam"], seeds="0")
    legacy = compare(["momentum"], seeds="0,1,2", legacy=True)
    entries = list_entries().entries
    assert [e.comparison_id for e in entries] == [legacy.id, unnamed.id, named.id]
    newest = entries[0]
    assert newest.n_runs == 3 and newest.labels == ("SGD + momentum lr=0.05",)
    assert entries[1].name == "SGD lr=0.1 vs Adam lr=0.001 on moons (mlp)" and entries[1].n_runs == 2
    assert entries[2].name == "cmp" and entries[2].n_runs == 4
    assert all(e.openable for e in entries)


def test_hyperparameters_against_the_final_metric() -> None:
    compare(["sgd:lr=0.1", "sgd:lr=0.01", "adam"], seeds="0")
    entries = list_entries().entries
    rows = run_rows(entries)
    assert len(rows) == 3
    data = hparams_data(rows, metric="final val_loss")
    names = [a.name for a in data.axes]
    assert names[0] == "optimizer" and "log10 optimizer.lr" in names
    assert "dataset" not in names  # the same for every run
    assert data.n_runs == 3
    assert all("final val_accuracy" in r and "final val_metric" not in r for r in rows)


def test_a_run_of_the_first_version_reads_back_its_val_metric_by_what_it_is() -> None:
    _fake_runs(2)  # c000 on digits (classification), c001 on wine
    c = client()
    for run in c.search_runs([experiment_id("dlopt-compare")]):
        c.log_metric(run.info.run_id, "val_metric", 0.75, step=5)
    rows = run_rows(list_entries().entries)
    assert [r["final val_accuracy"] for r in rows] == [0.75, 0.75]


def test_overlay_aligns_runs_of_two_comparisons_and_smooths_with_the_raw_curve_kept() -> None:
    a = load_comparison(compare(["sgd:lr=0.1"], seeds="0").id).comparison
    b = load_comparison(compare(["adam"], seeds="0", epochs=5).id).comparison
    data = overlay_data([("a", a.runs[0]), ("b", b.runs[0])], metric="val_loss", x="epoch", smoothing=0.6)
    assert [line.x for line in data.lines] == [[0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert data.lines[1].raw == [r.val_loss for r in b.runs[0].records if r.is_eval]
    assert data.lines[1].smooth == smoothed(data.lines[1].raw, 0.6)
    assert smoothed([2.0, 4.0], 0.5) == [2.0, pytest.approx((0.5 * 1 + 0.5 * 4) / 0.75)]


def test_the_report_holds_every_run_and_draws_offline() -> None:
    live = compare(["sgd:lr=0.1", "adam"])
    stored = load_comparison(live.id)
    html = report_html(
        stored.comparison, config=stored.config, device="CPU", run_ids=stored.run_ids, started=stored.started,
    )
    assert f"plotly.js v{plotly.__version__}" in html or "plotly.js" in html
    assert "<script src=" not in html  # nothing loaded from a network
    for run in live.runs:
        assert run.label in html and stored.run_ids[run.index] in html
    assert "python -m dlopt_core compare" in html and "torch" in html and "CPU" in html


def test_the_curves_csv_has_every_evaluation_and_the_table_csv_every_optimizer() -> None:
    live = compare(["sgd:lr=0.1", "adam"])
    stored = load_comparison(live.id).comparison
    rows = list(csv.DictReader(io.StringIO(curves_csv(stored))))
    assert tuple(rows[0]) == CURVE_COLUMNS
    expected = [(r.index, rec.step, rec.val_loss) for r in live.runs for rec in r.records if rec.is_eval]
    assert [(int(r["run"]), int(r["step"]), float(r["val_loss"])) for r in rows] == expected
    table = list(csv.DictReader(io.StringIO(table_csv(summary_rows(stored)))))
    assert [t["optimizer"] for t in table] == ["SGD lr=0.1", "Adam lr=0.001"]


@pytest.mark.parametrize("flat", [
    {"optimizer": ["sgd:lr=0.1", "adam"], "seeds": "0,1", "dataset": "moons", "dataset.noise": "0.3"},
    {"optimizer": ["lbfgs", "momentum:lr=0.05,nesterov=true"], "batch_size": "full", "schedule": "cosine",
     "epochs": "7", "target_loss": "0.2", "engine": "sequential", "grad_clip": "1.5", "model": "linear"},
    {"optimizer": ["adam"], "dataset": "digits", "augment": ["noise:std=0.2"], "reduce": "subsample", "reduce.fraction": "0.5",
     "model": "mlp", "model.hidden": "32/16", "precision": "bf16", "deterministic": "false"},
])
def test_the_cli_command_runs_the_same_config(flat: dict) -> None:
    config = ComparisonConfig.from_dict(flat)
    argv = shlex.split(cli_command(config))
    assert argv[:4] == ["python", "-m", "dlopt_core", "compare"]
    assert build_config(build_parser().parse_args(argv[3:])) == config
