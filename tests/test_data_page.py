"""AppTest for the Data page: the preview, both experiments, and a CSV upload."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from apptest import open_page
from dlopt_core.runner.jobs import registry

DATA = "pages/5_Data.py"


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _wait(at: AppTest) -> AppTest:
    for job in registry().jobs():
        assert job.wait(180)
    return at.run()


def test_the_page_starts_on_digits_with_an_augmentation_preview() -> None:
    at = open_page(DATA)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="data.dataset").value == "digits"
    assert at.sidebar.selectbox(key="data.model").value == "mlp"
    assert at.multiselect(key="data.augment.digits").value == ["affine", "noise"]
    titles = [c for c in at.get("plotly_chart")]
    assert titles, "the preview grid is drawn"
    assert any("augmented versions" in c.value for c in at.caption)


def test_image_only_augmentations_are_not_offered_for_points() -> None:
    at = open_page(DATA)
    at.sidebar.selectbox(key="data.dataset").set_value("moons").run()
    assert not at.exception and not at.error
    offered = at.multiselect(key="data.augment.moons").options  # as shown: the labels
    assert offered == ["Gaussian noise", "Feature dropout", "Mixup"]
    assert any("augmented copies" in c.value for c in at.caption)


def test_the_overfitting_demo_runs_every_variant_and_reports_the_gap() -> None:
    at = open_page(DATA)
    at.sidebar.number_input(key="data.epochs").set_value(3).run()
    _button(at, "Run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["no augmentation", "affine", "noise", "all together"]
    assert set(table["status"]) == {"finished"}
    assert all(v != "—" for v in table["gap (val − train loss)"])


def test_the_reduction_sweep_measures_size_and_accuracy() -> None:
    at = open_page(DATA)
    at.sidebar.number_input(key="data.epochs").set_value(2).run()
    at.multiselect(key="data.methods").set_value(["subsample", "int8"]).run()
    at.text_input(key="data.fractions").input("0.1,0.5").run()
    buttons = [b for b in at.button if b.label == "Run"]
    buttons[-1].click().run()  # the second tab's Run
    at = _wait(at)
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert list(table["variant"]) == ["full data", "subsample 0.1", "subsample 0.5", "int8"]
    sizes = [float(v.split()[0].replace(",", "")) for v in table["stored"]]
    assert sizes[1] < sizes[2] < sizes[0] and sizes[3] < sizes[0]


def test_a_stored_upload_is_a_data_set_of_the_session_on_every_page() -> None:
    # AppTest has no file uploader (the browser test uploads a file); the session's list is what
    # the uploader fills.
    from dlopt_core.catalog.datasets import get_dataset_spec
    from dlopt_core.uploads.parse import parse_csv
    from dlopt_core.uploads.store import store_table

    good = "a,b,label\n" + "\n".join(f"{i},{i % 3},{'x' if i % 2 else 'y'}" for i in range(40))
    name = store_table(parse_csv(good.encode(), target="label"))
    at = open_page(DATA)
    at.session_state["uploads"] = [name]
    at.run()
    label = get_dataset_spec(name).label  # "your data: upload.csv"
    assert label in at.sidebar.selectbox(key="data.dataset").options
    at.sidebar.selectbox(key="data.dataset").set_value(name).run()
    assert not at.exception and not at.error
    at.switch_page("pages/1_Compare_optimizers.py").run()
    assert label in at.sidebar.selectbox(key="dataset").options


def test_settings_survive_a_visit_to_another_page() -> None:
    at = open_page(DATA)
    at.sidebar.selectbox(key="data.dataset").set_value("moons").run()
    at.sidebar.number_input(key="data.epochs").set_value(20).run()
    at.multiselect(key="data.augment.moons").set_value(["dropout"]).run()
    at.switch_page("pages/1_Compare_optimizers.py").run()
    at.switch_page(DATA).run()
    assert not at.exception
    assert at.sidebar.selectbox(key="data.dataset").value == "moons"
    assert at.sidebar.number_input(key="data.epochs").value == 20
    assert at.multiselect(key="data.augment.moons").value == ["dropout"]


def test_a_stopped_run_says_so_in_the_table() -> None:
    import time

    at = open_page(DATA)
    at.sidebar.number_input(key="data.epochs").set_value(3000).run()
    _button(at, "Run").click().run()
    job = registry().jobs()[-1]
    deadline = time.monotonic() + 60
    while job.work.comparison.progress == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _button(at, "Stop").click().run()
    assert job.wait(60)
    at.run()
    table = at.dataframe[0].value
    assert all(s.startswith("cancelled at step") for s in table["status"])
    assert "last val accuracy" in table.columns and "final val accuracy" not in table.columns


def test_a_regression_reduction_sweep_is_drawn_against_r2() -> None:
    import json

    at = open_page(DATA)
    at.sidebar.selectbox(key="data.dataset").set_value("linear").run()
    at.sidebar.number_input(key="data.epochs").set_value(2).run()
    at.multiselect(key="data.methods").set_value(["subsample"]).run()
    at.text_input(key="data.fractions").input("0.5").run()
    [b for b in at.button if b.label == "Run"][-1].click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    chart = next(c for c in at.get("plotly_chart") if "reduce_chart" in c.proto.id)
    assert json.loads(chart.proto.spec)["layout"]["yaxis"]["title"]["text"] == "val R²"


def test_the_settings_travel_in_a_link() -> None:
    query = {"dataset": "moons", "epochs": "20", "augment": ["dropout"], "subset": "0.3",
             "methods": ["subsample", "kmeans"], "fractions": "0.2,0.4"}
    at = open_page(DATA, query)
    assert not at.exception and not at.warning
    assert at.sidebar.selectbox(key="data.dataset").value == "moons"
    assert at.sidebar.number_input(key="data.epochs").value == 20
    assert at.multiselect(key="data.augment.moons").value == ["dropout"]
    assert at.slider(key="data.subset").value == 0.3
    assert at.multiselect(key="data.methods").value == ["subsample", "kmeans"]
    assert at.text_input(key="data.fractions").value == "0.2,0.4"
    # What the link left out is the page's default, and the URL now holds the whole setting.
    assert at.sidebar.selectbox(key="data.optimizer").value == "adam"
    assert at.query_params["subset"] in ("0.3", ["0.3"]) and at.query_params["methods"] == ["subsample", "kmeans"]
    at.sidebar.number_input(key="data.epochs").set_value(30).run()
    assert at.query_params["epochs"] in ("30", ["30"])


def test_a_bad_link_shows_the_defaults_with_a_message() -> None:
    at = open_page(DATA, {"subset": "7", "dataset": "moons"})
    assert not at.exception
    (warning,) = at.warning
    assert "The link's settings were not valid" in warning.value and "subset" in warning.value
    assert at.sidebar.selectbox(key="data.dataset").value == "digits"
    assert at.slider(key="data.subset").value == 0.1
