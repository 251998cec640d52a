"""AppTest for the LR sensitivity page: fill widgets, press buttons, assert what a user would see."""

from streamlit.testing.v1 import AppTest

from apptest import open_page

from dlopt_core.experiments.sweep import SweepConfig, lr_grid
from dlopt_core.runner.jobs import registry

SWEEP = "pages/3_LR_sensitivity.py"


def _page(query: dict | None = None) -> AppTest:
    return open_page(SWEEP, query)


def _wait_for_job(at: AppTest) -> None:
    job = next(j for j in reversed(registry().jobs()))
    assert job.wait(120)
    at.run()


def _small_sweep(at: AppTest) -> AppTest:
    """2 optimizers x 6 lrs x 1 seed, 2 epochs on wine."""
    at.sidebar.selectbox(key="sweep.dataset").set_value("wine")
    at.sidebar.number_input(key="sweep.epochs").set_value(2)
    at.multiselect(key="sweep.optimizers").set_value(["sgd", "adam"])
    at.number_input(key="sweep.lr_min").set_value(1e-3)
    at.number_input(key="sweep.lr_max").set_value(1.0)
    at.number_input(key="sweep.points").set_value(6)
    at.text_input(key="sweep.seeds").input("0")
    return at.run()


def test_sweep_page_starts_with_defaults() -> None:
    at = _page()
    assert not at.exception and not at.error
    assert at.multiselect(key="sweep.optimizers").value == ["sgd", "momentum", "adam"]
    assert at.number_input(key="sweep.lr_min").value == 1e-4
    assert at.number_input(key="sweep.lr_max").value == 1.0
    assert at.number_input(key="sweep.points").value == 12
    assert at.text_input(key="sweep.seeds").value == "0,1,2"
    assert at.sidebar.number_input(key="sweep.epochs").value == 10
    assert any(b.label == "Run" for b in at.button)
    assert any("108 runs" in c.value and "0.000231" in c.value for c in at.caption)
    assert at.query_params["optimizer"] == ["sgd", "momentum", "adam"]


def test_a_bad_lr_range_shows_an_error_and_no_run_button() -> None:
    at = _page()
    at.number_input(key="sweep.lr_min").set_value(1.0)
    at.number_input(key="sweep.lr_max").set_value(1e-4).run()
    assert not at.exception
    assert any("lr_min" in e.value and "below lr_max" in e.value for e in at.error)
    assert not any(b.label == "Run" for b in at.button)


def test_a_link_with_junk_says_so_and_shows_defaults() -> None:
    at = _page({"points": "abc", "optimizer": ["nope"]})
    assert not at.exception
    assert any("not valid" in w.value and "nope" in w.value for w in at.warning)
    assert at.multiselect(key="sweep.optimizers").value == ["sgd", "momentum", "adam"]


def test_the_url_reproduces_a_sweep() -> None:
    cfg = SweepConfig.make(
        optimizers=[{"name": "rmsprop"}, {"name": "nesterov"}], data={"name": "wine"},
        lr_min=0.001, lr_max=0.5, points=5, seeds=(1, 2), epochs=4,
    )
    flat = {k: v if isinstance(v, list) else str(v) for k, v in cfg.to_dict().items()}
    at = _page(flat)
    assert not at.exception and not at.error
    assert at.multiselect(key="sweep.optimizers").value == ["rmsprop", "nesterov"]
    assert at.number_input(key="sweep.lr_max").value == 0.5
    assert at.number_input(key="sweep.points").value == 5
    assert at.text_input(key="sweep.seeds").value == "1,2"
    assert at.sidebar.selectbox(key="sweep.dataset").value == "wine"
    # The sweep sets each optimizer's lr, so the link carries none.
    assert at.query_params["optimizer"] == ["rmsprop", "nesterov"]


def test_a_small_sweep_finishes_with_a_best_lr_per_optimizer() -> None:
    at = _small_sweep(_page())
    assert not at.error
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["SGD", "Adam"]
    grid = ["0.001", "0.00398", "0.0158", "0.0631", "0.251", "1"]
    assert [f"{lr:.3g}" for lr in lr_grid(1e-3, 1.0, 6)] == grid
    assert all(lr in grid for lr in table["best lr"])
    assert any(c.value.startswith("Final validation loss") for c in at.caption)
    at.segmented_control(key="sweep.view.metric").set_value("metric").run()
    assert not at.exception and at.query_params["show"] == "metric"


def test_compare_at_the_best_learning_rates_carries_them_to_the_compare_page() -> None:
    # The Compare page seen first in this session: it has read its URL once already.
    at = open_page("pages/1_Compare_optimizers.py")
    assert [s.value for s in at.selectbox if s.label == "optimizer"] == ["sgd", "momentum", "adam"]
    at = _small_sweep(at.switch_page(SWEEP).run())
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    best = dict(zip(at.dataframe[0].value["optimizer"], at.dataframe[0].value["best lr"]))
    next(b for b in at.button if b.label == "Compare at the best learning rates").click().run()
    assert not at.exception and not at.error
    assert [s.value for s in at.selectbox if s.label == "optimizer"] == ["sgd", "adam"]
    assert at.sidebar.selectbox(key="dataset").value == "wine"
    assert at.sidebar.number_input(key="epochs").value == 2
    lrs = [n.value for n in at.number_input if n.label == "learning rate"]
    assert lrs == [float(best["SGD"]), float(best["Adam"])]
    assert at.query_params["optimizer"] == [f"sgd:lr={float(best['SGD'])!r}", f"adam:lr={float(best['Adam'])!r}"]


def test_a_link_keeps_an_optimizer_hyperparameter() -> None:
    at = _page({"optimizer": ["sgd", "adam:beta1=0.8"], "points": "4"})
    assert not at.exception and not at.error
    assert at.multiselect(key="sweep.optimizers").value == ["sgd", "adam"]
    assert at.query_params["optimizer"] == ["sgd", "adam:beta1=0.8"]


def test_stop_cancels_a_running_sweep_and_says_where_it_stopped() -> None:
    at = _page()
    at.sidebar.number_input(key="sweep.epochs").set_value(3000).run()
    next(b for b in at.button if b.label == "Run").click().run()
    job = registry().jobs()[-1]
    assert job.active
    next(b for b in at.button if b.label == "Stop").click().run()
    assert job.wait(30) and job.status == "cancelled"
    at.run()
    assert not at.exception
    assert any("stopped at epoch" in c.value and "of 3000" in c.value for c in at.caption)


def test_changing_the_form_after_run_offers_the_way_back() -> None:
    at = _small_sweep(_page())
    next(b for b in at.button if b.label == "Run").click().run()
    _wait_for_job(at)
    at.number_input(key="sweep.points").set_value(5).run()
    assert not at.dataframe
    next(b for b in at.button if b.label.startswith("Your last sweep")).click().run()
    assert at.number_input(key="sweep.points").value == 6
    assert list(at.dataframe[0].value["optimizer"]) == ["SGD", "Adam"]
