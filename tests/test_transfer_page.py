"""AppTest for the Transfer and sharing page: both tabs run end to end, the size sweep, links good and junk."""

from __future__ import annotations

import json

import pandas as pd

import pytest
from streamlit.testing.v1 import AppTest

from apptest import open_page
from dlopt_core.runner.jobs import registry

PAGE = "pages/8_Transfer_and_sharing.py"
SMALL_TRANSFER = {"arms": "scratch,probe,lora", "epochs": "2", "seeds": "0,1", "source_epochs": "2"}
SMALL_SHARE = {"tab": "share", "family": "multitask", "epochs": "2", "seeds": "0"}


def _button(at: AppTest, label: str, key: str | None = None):
    return next(b for b in at.button if b.label == label and (key is None or b.key == key))


def _wait(at: AppTest) -> AppTest:
    for job in registry().jobs():
        assert job.wait(240)
    return at.run()


def _figures(at: AppTest) -> list[dict]:
    """Every drawn Plotly figure, as its JSON."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _title(fig: dict) -> str:
    title = fig.get("layout", {}).get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)


def test_the_transfer_tab_runs_every_arm_and_draws_what_each_changed() -> None:
    at = open_page(PAGE, SMALL_TRANSFER)
    assert not at.exception and not at.error
    assert at.query_params["arms"] == "scratch,probe,lora" and "tab" not in at.query_params
    assert any("3 arms × 2 seeds = **6 runs**" in c.value for c in at.caption)
    _button(at, "Run", "run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    frame = at.dataframe[0].value
    assert list(frame["arm"]) == ["From scratch", "Linear probe", "LoRA"]
    assert frame["target_accuracy"].between(0, 1).all() and frame["source_accuracy"][1:].between(0, 1).all()
    assert pd.isna(frame["source_accuracy"][0])  # scratch never saw the source task
    # The probe trains the head only, LoRA its adapters and the head: both far fewer than scratch.
    params = dict(zip(frame["arm"], frame["trainable_params"], strict=True))
    assert params["Linear probe"] < params["LoRA"] < params["From scratch"]
    assert any("Source model: accuracy" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 5  # curves, Pareto, params, two heatmaps
    # The heatmaps follow the chosen arm; a probe changes only its head.
    at.selectbox(key="transfer.view.arm").set_value("probe").run()
    assert not at.exception and at.selectbox(key="transfer.view.arm").value == "probe"


def test_the_size_sweep_trains_scratch_and_a_transfer_arm_at_each_share() -> None:
    at = open_page(PAGE, {**SMALL_TRANSFER, "seeds": "0"})
    assert at.selectbox(key="transfer.size_arm").value == "probe"  # lp-ft is not among the arms
    assert any("6 shares of the target data" in c.value and "**12 runs**" in c.value for c in at.caption)
    _button(at, "Run", "run-sizes").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    assert any("stops paying" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the size curve; the main experiment was not run


def test_the_sharing_tab_checks_what_is_shared_and_compares_pcgrad() -> None:
    at = open_page(PAGE, SMALL_SHARE)
    assert not at.exception and not at.error
    assert at.selectbox(key="share.family").value == "multitask"
    assert at.multiselect(key="share.variants.multitask").value == ["multitask", "separate", "single"]
    assert at.query_params["tab"] == "share"
    _button(at, "Run", "run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    checks = at.dataframe[1].value  # a row per check, a column per variant
    assert checks.loc["shares storage", "multitask"] == "✓ yes" and checks.loc["shares storage", "separate"] == "✗ no"
    params = {v: int(checks.loc[k, "multitask"].replace(",", "")) for k, v in (("params", "tied"), ("params untied", "untied"))}
    assert params["tied"] < params["untied"]
    assert (checks.loc["grad is sum of uses"] == "✓ yes").all() and (checks.loc["decayed once"] == "✓ yes").all()

    _button(at, "Run it again with PCGrad (project conflicting gradients)").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    conflict = [fig for fig in _figures(at) if "cosine" in _title(fig)]
    assert conflict, [_title(fig) for fig in _figures(at)]
    names = " ".join(t.get("name", "") or t.get("legendgroup", "") for t in conflict[0]["data"])
    assert "equal" in names and "pcgrad" in names
    titles = [_title(fig) for fig in _figures(at)]
    for task in ("digit class", "digit >= 5"):  # each task's curves with each rule
        assert f"{task} · equal weights" in titles and f"{task} · PCGrad" in titles, titles


@pytest.mark.parametrize("query, bad", [
    ({"task": "nope", "target_fraction": "7"}, "task"),
    ({"tab": "share", "family": "zzz"}, "family"),
    ({"tab": "bogus", "arms": "probe,probe"}, "arms"),
])
def test_a_junk_link_shows_the_defaults_and_says_what_was_wrong(query: dict, bad: str) -> None:
    at = open_page(PAGE, query)
    assert not at.exception and not at.error
    warning = next(w.value for w in at.warning if "link's settings were not valid" in w.value)
    assert bad in warning
    assert not _button(at, "Run", "run").disabled


def test_a_finished_runs_weights_can_be_the_source_model() -> None:
    """A Compare run on the digits is a source for digits-rotated (its weights, its model); for
    digits-split (five source classes) its ten-class head does not fit, and the page says so."""
    from dlopt_core.config import ComparisonConfig
    from dlopt_core.experiments.compare import Comparison
    from dlopt_core.experiments.observer import tracking_observers
    from dlopt_core.runner.plugins import tracking_start

    cfg = ComparisonConfig.make(data={"name": "digits"}, model={"name": "mlp", "params": {"hidden": "32"}},
                                optimizers=[{"name": "adam", "lr": 0.01}], epochs=3, seeds=[0])
    tracking_start()
    Comparison(cfg).execute(observers=tracking_observers(cfg.KIND, experiment=cfg.EXPERIMENT))

    at = open_page(PAGE, {**SMALL_TRANSFER, "seeds": "0"})
    at.segmented_control(key="transfer.source").set_value("run").run()
    assert not at.exception and not at.error
    assert any("Source model from the run: `mlp:hidden=32`" in c.value for c in at.caption)
    assert any("the finished run's weights as the source model" in c.value for c in at.caption)
    assert at.query_params["source_run"] and at.query_params["model.hidden"] == "32"
    _button(at, "Run", "run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value["arm"]) == ["From scratch", "Linear probe", "LoRA"]

    at.selectbox(key="transfer.task").set_value("digits-split").run()
    assert any("do not fit" in e.value for e in at.error), [e.value for e in at.error]


def test_the_runs_page_lists_transfer_and_sharing_experiments() -> None:
    from cli_inprocess import run_main

    assert run_main("transfer", "--task", "moons-rotated", "--model", "mlp:hidden=8/8", "--epochs", "1",
                    "--source-epochs", "1", "--seeds", "0", "--arms", "probe").returncode == 0
    assert run_main("share", "--family", "tied", "--epochs", "1", "--seeds", "0").returncode == 0
    at = open_page("pages/6_Runs.py")
    assert not at.exception and not at.error
    listed = at.dataframe[0].value
    assert set(listed["kind"]) == {"transfer", "share"} and set(listed["status"]) == {"finished"}
    assert {"transfer", "share"} <= set(at.multiselect(key="runs.kinds").options)
