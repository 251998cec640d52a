"""Hostile links and failing pages: a clear message naming the field, never a traceback or Markdown."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui.sweep_form
from ui.widgets import code_span

ROOT = Path(__file__).resolve().parents[1]
COMPARE, LANDSCAPES, SWEEP = "pages/1_Compare_optimizers.py", "pages/2_Loss_landscapes.py", "pages/3_LR_sensitivity.py"
COMPRESS = "pages/7_Compression.py"
ILL = {"dataset": "ill_conditioned"}
# What config_from_url shows: the link's error as one code span, so none of it is Markdown.
URL_ERROR = re.compile(r"The link's settings were not valid \((`+)( ?)(.+)\2\1\); showing defaults\.", re.S)


def _page(path: str, query: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    return at.switch_page(path).run()


@pytest.mark.parametrize("path, query, field", [
    # Both once showed a Python traceback with file paths.
    (COMPARE, {"optimizer": ["adam"], **ILL, "dataset.n_features": "100", "dataset.n_samples": "20"}, "dataset.n_features"),
    (LANDSCAPES, {"optimizer": ["rprop:eta_minus=1"]}, "optimizer.eta_minus"),
    (COMPARE, {"optimizer": ["rprop:eta_plus=0.5"], "batch_size": "full"}, "optimizer.eta_plus"),
    (COMPARE, {"optimizer": ["rprop:eta_plus=1"], "batch_size": "full"}, "optimizer.eta_plus"),
    (COMPARE, {"optimizer": ["adam:lr=nan"]}, "optimizer.lr"),
    (COMPARE, {"optimizer": ["adam:lr=1e999"]}, "optimizer.lr"),
    (COMPARE, {"optimizer": ["adam:beta1=inf"]}, "optimizer.beta1"),
    (COMPARE, {"optimizer": ["adam:foo=1"]}, "optimizer.foo"),
    (COMPARE, {"optimizer": ["adam:lr=0.1,lr=0.2"]}, "lr given twice"),
    (COMPARE, {"optimizer": ["adam:=1"]}, "expected key=value"),
    (COMPARE, {"optimizer": ["adam"], "epochs": ["2", "3"]}, "epochs: given more than once"),
    (COMPARE, {"optimizer": ["adam"], "epochs": "99999999999999999999"}, "epochs"),
    (COMPARE, {"optimizer": ["adam"], "seeds": "0,99999999999999999999"}, "seeds"),
    (COMPARE, {"optimizer": ["lbfgs"], "precision": "fp16"}, "precision"),
    (COMPARE, {"optimizer": ["adam"], "target_loss": "inf"}, "target_loss"),
    (COMPARE, {"optimizer": ["adam"], "grad_clip": "nan"}, "grad_clip"),
    (COMPARE, {"optimizer": ["adam"], "dataset.val_fraction": "nan"}, "val_fraction"),
    (COMPARE, {"optimizer": ["adam"], "dataset": "moons", "dataset.n_samples": "1e999"}, "dataset.n_samples"),
    (COMPARE, {"optimizer": ["x" * 5000]}, "optimizer: unknown name"),
    (COMPARE, {"optimizer": ["a`b"]}, "optimizer: unknown name 'a`b'"),
    (LANDSCAPES, {"optimizer": ["adam"], "start": "nan,nan"}, "start"),
    (LANDSCAPES, {"optimizer": ["adam"], "steps": "1e999"}, "steps"),
    (SWEEP, {"optimizer": ["adam"], "seeds": "0,99999999999999999999"}, "seeds"),
    (SWEEP, {"optimizer": ["adam"], "lr_min": "nan"}, "lr_min"),
    (SWEEP, {"optimizer": ["[click here](http://evil.example/)"]}, "optimizer"),
    (COMPRESS, {"methods": ["prune_structured:sparsity=1.5"]}, "sparsity"),
    (COMPRESS, {"methods": ["distill"]}, "needs student"),
    (COMPRESS, {"methods": ["<script>alert(1)</script>"]}, "method"),
    (COMPRESS, {"sparsities": "0.5,nan"}, "sparsities"),
    (COMPRESS, {"latency_repeats": "1e999"}, "latency_repeats"),
])
def test_a_hostile_link_gives_a_clear_message_and_the_defaults(path: str, query: dict, field: str) -> None:
    at = _page(path, query)
    assert not at.exception and not at.error
    [warning] = [w.value for w in at.warning if "not valid" in w.value]
    match = URL_ERROR.fullmatch(warning)
    assert match, warning
    assert field in match.group(3)
    assert len(warning) < 400  # the link's text is cut, not echoed whole


@pytest.mark.parametrize("text, span", [
    ("[x](http://evil.example/)", "`[x](http://evil.example/)`"),
    ("a\n\n# heading", "`a # heading`"),  # a blank line would end the span
    ("`x` or ``y``", "``` `x` or ``y`` ```"),
    ("", ""),
])
def test_code_span_keeps_link_text_verbatim(text: str, span: str) -> None:
    assert code_span(text) == span


def test_a_page_that_fails_shows_an_error_id_and_logs_the_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("secret detail in /srv/app/secret.py")

    monkeypatch.setattr(ui.sweep_form, "setup_sidebar", broken)
    with caplog.at_level(logging.ERROR):
        at = _page(SWEEP, {})
    assert not at.exception
    [message] = [e.value for e in at.error]
    error_id = re.search(r"error id ([0-9a-f]{8})", message).group(1)
    shown = " ".join(e.value for kind in (at.title, at.markdown, at.caption, at.error, at.warning, at.code) for e in kind)
    assert "secret" not in shown and "RuntimeError" not in shown
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])


@pytest.mark.parametrize("control", ["stop", "rerun"])
def test_st_stop_and_st_rerun_are_not_errors(control: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    setup = ui.sweep_form.setup_sidebar

    def interrupted() -> dict:
        calls.append(control)
        if len(calls) == 1:
            st.stop() if control == "stop" else st.rerun()
        return setup()

    monkeypatch.setattr(ui.sweep_form, "setup_sidebar", interrupted)
    at = _page(SWEEP, {})
    assert not at.exception and not at.error
    assert any(b.label == "Run" for b in at.button) == (control == "rerun")


@pytest.mark.browser
@pytest.mark.parametrize("text", ["[click here](http://evil.example/)", "![x](http://evil.example/x.png)"])
def test_markdown_in_a_link_is_shown_as_text(text: str, app_server: str, browser) -> None:
    context = browser.new_context()
    asked: list[str] = []

    def refuse(route) -> None:
        asked.append(route.request.url)
        route.abort()

    context.route("http://evil.example/**", refuse)
    page = context.new_page()
    try:
        page.goto(f"{app_server}/Compare_optimizers?{urlencode({'optimizer': text})}")
        warning = page.get_by_text("The link's settings were not valid")
        warning.wait_for(timeout=60_000)
        assert text in warning.inner_text()
        assert page.locator("a[href*='evil.example']").count() == 0
        assert page.locator("img[src*='evil.example']").count() == 0
        assert asked == []
    finally:
        context.close()
