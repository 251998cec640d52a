"""AppTest for the Compression page: defaults, a small run end to end, a finished run as the baseline, bad input."""

from __future__ import annotations

import pandas as pd
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
