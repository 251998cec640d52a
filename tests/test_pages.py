"""AppTest for every page: fill widgets, press buttons, assert what a user would see."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest import ROOT, open_page, wait_for_last_job
from dlopt_core.config import ComparisonConfig
from dlopt_core.runner.jobs import registry

COMPARE = "pages/1_Compare_optimizers.py"
_page = open_page


def _compare(query: dict | None = None) -> AppTest:
    return _page(COMPARE, query)


_wait_for_job = wait_for_last_job


def test_home_page_names_the_device_the_store_and_the_pages(dlopt_home: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "CPU" in text and str(dlopt_home / "mlflow.db") in text


def test_compare_page_starts_with_defaults_and_draws_the_schedule() -> None:
    at = _compare()
    assert not at.exception and not at.error
    assert [s.value for s in at.selectbox if s.label == "optimizer"] == ["sgd", "momentum", "adam"]
    assert at.sidebar.selectbox(key="dataset").value == "digits"
    assert any(b.label == "Run" for b in at.button)
    assert "optimizer" in at.query_params


def test_the_url_reproduces_a_comparison() -> None:
    cfg = ComparisonConfig.make(
        optimizers=[{"name": "nesterov", "lr": 0.02}, {"name": "rmsprop", "lr": 0.003}],
        data={"name": "wine"}, epochs=4, seeds=(0, 1), schedule={"name": "cosine"},
    )
    flat = {k: v if isinstance(v, list) else str(v) for k, v in cfg.to_dict().items()}
    at = _compare(flat)
    assert not at.exception and not at.error
    assert [s.value for s in at.selectbox if s.label == "optimizer"] == ["nesterov", "rmsprop"]
    assert at.sidebar.selectbox(key="dataset").value == "wine"
    assert at.sidebar.selectbox(key="schedule").value == "cosine"
    assert at.sidebar.text_input(key="seeds").value == "0,1"
    assert at.number_input(key=next(k for k in at.session_state if str(k).endswith("nesterov.lr"))).value == 0.02
    assert at.query_params["optimizer"] == flat["optimizer"]


def test_an_invalid_link_falls_back_to_defaults_with_a_message() -> None:
    at = _compare({"optimizer": ["nope:lr=1"]})
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)


def test_bad_input_shows_an_error_and_no_run_button() -> None:
    at = _compare()
    at.sidebar.text_input(key="seeds").input("0,x").run()
    assert any("seeds" in e.value for e in at.error)
    assert not any(b.label == "Run" for b in at.button)


def test_run_trains_shows_curves_and_results(dlopt_home: Path) -> None:
    at = _compare()
    at.sidebar.number_input(key="epochs").set_value(2).run()
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["SGD lr=0.1", "SGD + momentum lr=0.05", "Adam lr=0.001"]
    assert set(table["status"]) == {"finished"}
    assert (dlopt_home / "mlflow.db").exists()


def test_stop_cancels_a_running_comparison() -> None:
    at = _compare()
    at.sidebar.number_input(key="epochs").set_value(3000).run()
    next(b for b in at.button if b.label == "Run").click().run()
    job = registry().jobs()[-1]
    assert job.active
    # The sidebar counts this tab's own job at once.
    assert any("**Jobs:** 1 running" in c.value for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
    # Stop once it has trained some steps (the bar must then say how far it got).
    deadline = time.monotonic() + 60
    while job.work.comparison.progress == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    next(b for b in at.button if b.label == "Stop").click().run()
    assert job.wait(5) and job.status == "cancelled"
    at.run()
    assert all(s.startswith("cancelled at step") for s in at.dataframe[0].value["status"])
    # The bar says how far it got, not 100 % (issue 11, item 8).
    progress = next(p for p in at.get("progress"))
    done = job.work.comparison.progress
    assert 0 < done < 1 and f"cancelled: {done:.0%}" in progress.proto.text


def test_one_optimizer_can_be_stopped_while_the_others_train() -> None:
    at = _compare()
    at.sidebar.number_input(key="epochs").set_value(3000).run()
    next(b for b in at.button if b.label == "Run").click().run()
    job = registry().jobs()[-1]
    runs = job.work.comparison.runs
    stop_sgd = next(b for b in at.button if b.label == "stop SGD lr=0.1")
    stop_sgd.click().run()
    deadline = time.monotonic() + 60
    while not runs[0].status.ended:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert runs[0].status == "cancelled" and not runs[1].status.ended and job.active
    job.cancel()
    assert job.wait(30)
    at.run()
    status = dict(zip(at.dataframe[0].value["optimizer"], at.dataframe[0].value["status"]))
    assert all(v.startswith("cancelled at step") for v in status.values())
    assert int(status["SGD lr=0.1"].split()[-1]) < int(status["Adam lr=0.001"].split()[-1])


@pytest.mark.parametrize("dataset", ["linear", "ill_conditioned"])
def test_regression_with_a_linear_model_runs_and_reports_r2(dataset: str) -> None:
    at = _compare()
    at.sidebar.selectbox(key="dataset").set_value(dataset).run()
    at.sidebar.selectbox(key="model").set_value("linear").run()
    at.sidebar.number_input(key="epochs").set_value(2).run()
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    assert not at.exception
    assert "final val R²" in at.dataframe[0].value.columns
    assert any("lowest train loss" in c.value for c in at.caption)


LANDSCAPES = "pages/2_Loss_landscapes.py"


def _landscapes(query: dict | None = None) -> AppTest:
    return _page(LANDSCAPES, query)


def test_landscape_page_draws_paths_table_and_reference_proof() -> None:
    at = _landscapes()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["SGD lr=0.001", "SGD + momentum lr=0.001", "Adam lr=0.05", "RMSprop lr=0.01"]
    assert set(table["status"]) == {"finished"}
    assert float(at.metric[0].value) < 1e-6  # the NumPy algorithm equals torch.optim
    assert "def gradient_descent" in at.code[0].value


def test_landscape_page_reads_its_link_and_reports_leaving_the_window() -> None:
    at = _landscapes({
        "function": "quadratic", "function.condition_number": "100", "steps": "100",
        "optimizer": ["sgd:lr=0.019", "sgd:lr=0.021"],
    })
    assert not at.exception
    status = list(at.dataframe[0].value["status"])
    assert status[0] == "finished" and status[1].startswith("left the window at step")


def test_tune_button_writes_better_learning_rates_into_the_boxes() -> None:
    at = _landscapes({"steps": "100", "optimizer": ["adam:lr=0.001"]})
    before = at.dataframe[0].value["final value"][0]
    next(b for b in at.button if b.label == "Tune learning rates").click().run()
    assert not at.exception
    _wait_for_job(at)  # tuning is a background job; its end puts the lrs in the boxes
    assert not at.exception
    after = at.dataframe[0].value["final value"][0]
    assert after < before
    assert any("tuned" in s.value for s in at.success)


def test_log_to_mlflow_stores_one_run_per_optimizer(dlopt_home: Path) -> None:
    from mlflow import MlflowClient

    from tracking.landscape_log import EXPERIMENT
    from tracking.store import settings

    at = _landscapes({"steps": "50", "optimizer": ["adam:lr=0.05", "sgd:lr=0.001"]})
    next(b for b in at.button if b.label == "Log to MLflow").click().run()
    assert not at.exception and any("Logged 2 runs" in s.value for s in at.success)
    client = MlflowClient(settings().mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert {r.data.tags["optimizer"] for r in runs} == {"adam", "sgd"}
    history = client.get_metric_history(runs[0].info.run_id, "value")
    assert [m.step for m in history] == list(range(51))
    figures = {r.data.tags["optimizer"]: [a.path for a in client.list_artifacts(r.info.run_id)] for r in runs}
    assert figures == {"adam": ["landscape.html"], "sgd": []}  # plotly.js inside: one copy per log


def test_adding_an_optimizer_picks_one_not_yet_shown_and_removing_works() -> None:
    at = _compare()
    next(b for b in at.button if b.label == "add optimizer").click().run()
    names = [s.value for s in at.selectbox if s.label == "optimizer"]
    assert sorted(names) == ["adam", "momentum", "nesterov", "sgd"] and not at.error
    first = at.session_state["compare.slots"][0]
    at.button(key=f"compare.rm{first}").click().run()
    assert sorted(s.value for s in at.selectbox if s.label == "optimizer") == ["adam", "momentum", "nesterov"]


def test_changing_the_form_after_run_offers_the_way_back() -> None:
    at = _compare()
    at.sidebar.number_input(key="epochs").set_value(2).run()
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    at.sidebar.number_input(key="epochs").set_value(3).run()
    back = next(b for b in at.button if b.label.startswith("Your last comparison"))
    assert not at.dataframe
    back.click().run()
    assert at.sidebar.number_input(key="epochs").value == 2
    assert set(at.dataframe[0].value["status"]) == {"finished"}


def test_a_shared_link_with_a_large_data_set_loads_nothing_until_run() -> None:
    from dlopt_core.catalog.datasets import SPLIT_CACHE

    before = SPLIT_CACHE.nbytes
    at = _compare({"optimizer": ["adam:lr=0.001"], "dataset": "linear", "dataset.n_samples": "200000",
                   "dataset.n_features": "10", "model": "linear"})
    assert not at.exception and not at.error
    assert at.sidebar.number_input(key="dataset.linear.n_samples").value == 200000
    assert SPLIT_CACHE.nbytes == before


def test_a_link_over_the_data_size_limit_says_so() -> None:
    at = _compare({"optimizer": ["adam:lr=0.001"], "dataset": "linear", "dataset.n_samples": "200000",
                   "dataset.n_features": "100"})
    assert not at.exception
    assert any("2,000,000" in w.value for w in at.warning)


@pytest.mark.parametrize("engine, expected", [
    ("auto", "4 runs trained batched (stacked models"),
    ("sequential", "every run trained on its own: Adam lr=0.001, L-BFGS lr=1, SGD lr=0.1"),
])
def test_the_engine_choice_travels_in_the_link_and_the_page_says_how_runs_trained(engine: str, expected: str) -> None:
    cfg = ComparisonConfig.make(
        optimizers=[{"name": "sgd", "lr": 0.1}, {"name": "adam"}, {"name": "lbfgs"}],
        data={"name": "wine"}, epochs=2, seeds=(0, 1), engine=engine,
    )
    at = _compare({k: v if isinstance(v, list) else str(v) for k, v in cfg.to_dict().items()})
    assert at.sidebar.segmented_control(key="engine").value == engine
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    assert not at.exception
    assert any(c.value.startswith(f"Engine: {expected}") for c in at.caption), [c.value for c in at.caption]


@pytest.mark.parametrize(
    ("page", "widget", "value"),
    [
        (COMPARE, "epochs", 4),
        ("pages/3_LR_sensitivity.py", "sweep.epochs", 4),
        ("pages/4_LR_search.py", "search.epochs", 4),
    ],
)
def test_settings_survive_a_visit_to_another_page(page: str, widget: str, value: int) -> None:
    # Streamlit drops the state of widgets a run does not draw, so a page's widgets came back
    # at their first option (model: linear) after a visit to another page.
    at = _page(page)
    at.sidebar.selectbox(key=widget.replace("epochs", "dataset")).set_value("wine")
    at.sidebar.number_input(key=widget).set_value(value).run()
    at.switch_page(LANDSCAPES).run()
    at.query_params.clear()  # the sidebar's link back carries no settings
    at.switch_page(page).run()
    assert not at.exception
    assert at.sidebar.number_input(key=widget).value == value
    assert at.sidebar.selectbox(key=widget.replace("epochs", "dataset")).value == "wine"
    assert at.sidebar.selectbox(key=widget.replace("epochs", "model")).value == "mlp"


def test_landscape_settings_survive_a_visit_to_another_page() -> None:
    at = _landscapes({"steps": "50", "optimizer": ["adam:lr=0.05"]})
    at.selectbox(key="landscape.function").set_value("beale").run()
    at.switch_page(COMPARE).run()
    at.query_params.clear()
    at.switch_page(LANDSCAPES).run()
    assert not at.exception
    assert at.selectbox(key="landscape.function").value == "beale"



def test_augmentation_and_reduction_travel_in_the_link_and_the_sidebar() -> None:
    at = _compare({
        "optimizer": ["sgd:lr=0.1"], "augment": ["noise:std=0.3", "flip"], "reduce": "subsample",
        "reduce.fraction": "0.5", "epochs": "2",
    })
    assert not at.exception and not at.warning
    assert at.multiselect(key="augment").value == ["noise", "flip"]
    assert at.selectbox(key="reduce").value == "subsample"
    assert at.query_params["augment"] == ["noise:std=0.3", "flip"]  # the link's settings are kept
    at.multiselect(key="augment").set_value(["noise", "mixup"]).run()
    assert at.query_params["augment"] == ["noise:std=0.3", "mixup"]
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    config = registry().jobs()[-1].work.config
    assert [a.to_spec() for a in config.augment] == ["noise:std=0.3", "mixup"]
    assert config.reduce is not None and config.reduce.params["fraction"] == 0.5


def test_a_reduction_this_data_cannot_take_is_an_error_on_run_not_a_crash() -> None:
    at = _compare({"optimizer": ["sgd:lr=0.1"], "dataset": "moons", "reduce": "pca", "reduce.components": "8"})
    assert not at.exception and not at.warning
    next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception
    assert any("reduce.components" in e.value and "features" in e.value for e in at.error)


def test_the_store_is_tried_again_once_it_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26: the sidebar said "the run store is not reachable" for good after the store was
    back (the first try was cached for the server's life). A failed store is tried again."""
    import ui.status

    blocked = tmp_path / "store"
    blocked.write_text("a file where the store's folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocked / 'mlflow.db'}")
    monkeypatch.setattr(ui.status, "STORE_RETRY_SECONDS", 0.0, raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert any("not reachable" in e.value for e in at.sidebar.error), [e.value for e in at.sidebar.error]
    blocked.unlink()
    blocked.mkdir()  # the store is back
    at.run()
    assert not at.exception and not [e.value for e in at.sidebar.error if "not reachable" in e.value]
