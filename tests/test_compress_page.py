"""AppTest for the Compression page: defaults, a small run end to end, a finished run as the baseline, bad input."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import open_page
from dlopt_core.runner.jobs import registry

PAGE = "pages/7_Compression.py"


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _wait(at: AppTest) -> AppTest:
    for job in registry().jobs():
        assert job.wait(240)
    return at.run()


def _small(at: AppTest, methods: list[str]) -> AppTest:
    at.sidebar.number_input(key="compress.epochs").set_value(2).run()
    at.multiselect(key="compress.methods").set_value(methods).run()
    at.text_input(key="compress.sparsities").input("0.5,0.9").run()
    at.number_input(key="compress.latency_repeats").set_value(3).run()
    return at


def test_the_page_starts_with_every_kind_of_method_and_a_sparsity_sweep() -> None:
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="compress.dataset").value == "digits"
    assert set(at.multiselect(key="compress.methods").value) >= {"prune_structured", "quantize_int8_dynamic", "distill"}
    assert at.text_input(key="compress.sparsities").value == "0.25,0.5,0.75,0.9"
    assert any("Press **Run**" in i.value for i in at.info)


def test_a_small_compression_measures_every_variant_against_the_baseline() -> None:
    at = _small(open_page(PAGE), ["prune_unstructured", "prune_structured", "fp16"])
    _button(at, "Run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    table: pd.DataFrame = at.dataframe[0].value
    variants = list(table["variant"])
    assert variants[0] == "baseline"
    # Each pruning method at its own sparsity and at both swept ones; fp16 once.
    assert sum("prune_unstructured" in v for v in variants) == 2 and sum("prune_structured" in v for v in variants) == 2
    assert any("fp16" in v for v in variants)
    masked = table[table["variant"].str.contains("prune_unstructured")]
    assert set(masked["saving"]) == {"masked only"} and all(s.endswith("kB") for s in masked["sparse (CSR)"])
    assert not (table["ms, batch 1"] == "n/a").any()
    download = next(d for d in at.get("download_button"))
    assert download.proto.label == "Download the table (CSV)"


def test_no_method_or_a_bad_sparsity_is_an_error_and_no_run() -> None:
    at = open_page(PAGE)
    at.multiselect(key="compress.methods").set_value([]).run()
    assert any("choose at least one" in e.value for e in at.error)
    assert not [b for b in at.button if b.label == "Run"]
    at.multiselect(key="compress.methods").set_value(["prune_structured"]).run()
    at.text_input(key="compress.sparsities").input("0.5,1.2").run()
    assert any("sparsities" in e.value and "[0, 1)" in e.value for e in at.error)
    assert not at.exception


def test_a_junk_link_shows_the_defaults_and_says_why() -> None:
    at = open_page(PAGE, {"methods": "prune_structured:sparsity=7", "epochs": "x"})
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert at.text_input(key="compress.sparsities").value == "0.25,0.5,0.75,0.9"


def test_a_finished_runs_weights_are_the_baseline_and_its_setup_comes_with_them() -> None:
    from dlopt_core.cli import main

    # A run on wine with an MLP of 16: its weights, not the sidebar's digits setup, are compressed.
    assert main(["compare", "--dataset", "wine", "--model", "mlp:hidden=16", "--epochs", "2",
                 "--optimizer", "adam:lr=0.01", "--engine", "sequential"]) == 0
    at = _small(open_page(PAGE), ["prune_structured"])
    at.segmented_control(key="compress.baseline").set_value("run").run()
    assert not at.exception and not at.error
    assert "mlp:hidden=16 on wine" in at.selectbox(key="compress.baseline_run").format_func(
        at.selectbox(key="compress.baseline_run").value)
    assert any("Setup from the run" in c.value for c in at.caption)
    # The default student (mlp:hidden=32) is larger than this teacher: refused before Run.
    at.multiselect(key="compress.methods").set_value(["prune_structured", "distill"]).run()
    assert any("must not be larger than the teacher" in e.value for e in at.error)
    at.multiselect(key="compress.methods").set_value(["prune_structured"]).run()
    _button(at, "Run").click().run()
    at = _wait(at)
    assert not at.exception and not at.error
    table: pd.DataFrame = at.dataframe[0].value
    base = table[table["variant"] == "baseline"].iloc[0]
    assert base["params"] == f"{13 * 16 + 16 + 16 * 3 + 3:,}"  # wine: 13 features, 3 classes; the run's MLP


def test_without_runs_with_weights_the_page_says_how_to_get_one() -> None:
    at = open_page(PAGE)
    at.segmented_control(key="compress.baseline").set_value("run").run()
    assert not at.exception
    assert any("No finished run has stored weights yet" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "Run"]


def test_a_method_the_model_cannot_take_is_refused_before_run() -> None:
    at = open_page(PAGE)
    at.sidebar.selectbox(key="compress.model").set_value("linear").run()
    at.multiselect(key="compress.methods").set_value(["prune_structured", "fp16"]).run()
    assert any("prune_structured" in e.value for e in at.error), [e.value for e in at.error]
    assert not [b for b in at.button if b.label == "Run"] and not at.exception


def test_a_link_that_sets_only_the_budget_keeps_the_default_methods_and_sweep() -> None:
    at = open_page(PAGE, {"epochs": "5", "model": "mlp", "model.hidden": "32"})
    assert not at.exception and not at.warning
    assert at.sidebar.number_input(key="compress.epochs").value == 5
    assert at.sidebar.text_input(key="compress.model.mlp.hidden").value == "32"
    assert at.text_input(key="compress.sparsities").value == "0.25,0.5,0.75,0.9"
    assert "distill" in at.multiselect(key="compress.methods").value


def test_a_variant_slower_than_the_baseline_is_named_with_how_much() -> None:
    from dlopt_core.experiments.compress.rows import CompressionRow
    from ui.compress_view import slower_text

    def row(method: str, ms: float) -> CompressionRow:
        return CompressionRow(method=method, label=method, badge="", settings={}, latency_b1_ms=ms)

    text = slower_text([row("baseline", 0.02), row("quantize_int8_dynamic", 0.5), row("fp16", 0.021)])
    assert "quantize_int8_dynamic (25.0x)" in text and "fp16 (" not in text
    assert slower_text([row("baseline", 0.02), row("fp16", 0.021)]) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_device_this_machine_lacks_is_a_message_not_a_traceback() -> None:
    at = open_page(PAGE)
    at.sidebar.selectbox(key="device").set_value("cuda").run()
    assert not at.exception
    assert any("cuda" in e.value.lower() for e in at.error)
    assert not [b for b in at.button if b.label == "Run"]


def test_a_link_with_several_methods_applies_them_all() -> None:
    at = open_page(PAGE, {"methods": ["prune_unstructured:sparsity=0.5", "prune_structured:sparsity=0.7"], "seed": "3"})
    assert not at.exception and not at.warning
    assert at.multiselect(key="compress.methods").value == ["prune_unstructured", "prune_structured"]
    assert at.number_input(key="compress.method.prune_structured.sparsity").value == 0.7
