"""The experiment kit, on every page built on it: a second browser attaches to the running job,
may not stop it, sees how it ended, and gets the page's settings back when Streamlit drops them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from apptest import open_page
from dlopt_core.runner.jobs import registry
from ui.status import OTHERS_JOB

# Each page with a link for a job long enough to still run while a second browser opens it
# (minutes of training, cancelled by the test), and the setup widget the link set.
PAGES = {
    "compare": ("pages/1_Compare_optimizers.py", {"optimizer": ["sgd", "adam"], "epochs": "5000"}, "epochs", 5000),
    "sweep": ("pages/3_LR_sensitivity.py", {"optimizer": ["sgd"], "points": "3", "epochs": "5000"}, "sweep.epochs", 5000),
    "compression": ("pages/7_Compression.py", {"methods": ["fp16"], "epochs": "5000"}, "compress.epochs", 5000),
    "data": ("pages/5_Data.py", {"augment": ["noise"], "epochs": "5000"}, "data.epochs", 5000),
    "search": ("pages/4_LR_search.py", {"optimizer": ["sgd"], "epochs": "5000", "n_trials": "4"}, "search.epochs", 5000),
    "transfer": ("pages/8_Transfer_and_sharing.py", {"epochs": "1000", "seeds": "0"}, "transfer.epochs", 1000),
    "share": ("pages/8_Transfer_and_sharing.py", {"tab": "share", "epochs": "5000", "seeds": "0"}, "share.epochs", 5000),
    "stream": ("pages/9_Online_and_continual.py", {"batch_size": "1", "seeds": "0,1,2,3,4,5,6,7,8,9"}, "stream.batch_size", 1),
    "continual": ("pages/9_Online_and_continual.py", {"tab": "continual", "epochs": "1000", "seeds": "0"}, "continual.epochs", 1000),
}


def _button(at: AppTest, label: str, key: str | None = None):
    return next(b for b in at.button if b.label == label and (key is None or b.key == key))


def _run_key(page: str) -> str | None:
    return "run-augment" if page == "data" else None


@pytest.mark.parametrize("page", list(PAGES))
def test_a_second_browser_attaches_may_not_stop_and_sees_the_end(page: str) -> None:
    path, query, probe, value = PAGES[page]
    owner = open_page(path, query)
    assert not owner.exception and not owner.error, [e.value for e in owner.error]
    before = {j.key for j in registry().jobs() if j.active}
    _button(owner, "Run", _run_key(page)).click().run()
    assert not owner.exception
    mine = [j for j in registry().jobs() if j.active and j.key not in before]
    assert mine, "Run started a job"
    stop_key = "stop-augment" if page == "data" else None
    assert not _button(owner, "Stop", stop_key).disabled
    assert not any(OTHERS_JOB in c.value for c in owner.caption)

    # Another browser with the same link: the same job, watched, its Stop off, a note saying so.
    # (Every AppTest session is one browser, so the job passes to another owner, as if that
    # browser had pressed Run; the browser tests check that two browsers get two ids.)
    for job in mine:
        job.owner = "another browser"
    watcher = open_page(path, query)
    assert not watcher.exception
    assert _button(watcher, "Run", _run_key(page)).disabled
    assert _button(watcher, "Stop", stop_key).disabled
    assert any(OTHERS_JOB in c.value for c in watcher.caption)
    assert watcher.get("progress"), "the watcher draws the running job"
    assert len({j.key for j in registry().jobs() if j.active} - before) == len(mine), "attached, not started again"

    # Streamlit drops the state of widgets a run did not draw (here: a visit to the home page; once
    # seen on a second tab): the page puts its settings back, not the widgets' first options.
    watcher.switch_page("app.py").run()
    assert probe not in watcher.session_state
    watcher.switch_page(path).run()
    assert not watcher.exception
    widget = next(w for w in [*watcher.sidebar.number_input, *watcher.number_input] if w.key == probe)
    assert widget.value == value
    assert _button(watcher, "Stop", stop_key).disabled, "still the same job, still not the watcher's"

    for job in mine:  # the other browser presses Stop
        job.cancel()
    for job in mine:
        assert job.wait(60)
    watcher.run()
    assert not watcher.exception
    text = " ".join(p.proto.text for p in watcher.get("progress"))
    ended = "stored" if page == "search" else "cancelled"
    assert ended in text, text
    assert not _button(watcher, "Run", _run_key(page)).disabled


def test_a_seeds_box_or_engine_that_comes_back_blank_gets_the_links_value() -> None:
    """A watching tab under load once came back with a blank seeds box and no engine (a control
    with no empty choice): its form was invalid, so it never saw its job end."""
    at = open_page("pages/1_Compare_optimizers.py", {"optimizer": ["sgd:lr=0.2"], "seeds": "3,4", "engine": "sequential"})
    assert at.text_input(key="seeds").value == "3,4"
    at.session_state["seeds"] = ""
    at.session_state["engine"] = None
    at.run()
    assert not at.exception and not at.error
    assert at.text_input(key="seeds").value == "3,4" and at.session_state["engine"] == "sequential"
    assert at.query_params["seeds"] == "3,4"


def test_a_learning_rate_that_comes_back_zero_gets_its_last_positive_value() -> None:
    """The same watching tab's optimizer boxes came back at lr 0: no step is taken at 0, so the box
    gets its last positive rate back (on every page that uses the learning-rate box)."""
    at = open_page("pages/1_Compare_optimizers.py", {"optimizer": ["sgd:lr=0.2"]})
    box = next(w for w in at.number_input if w.key.endswith(".lr"))
    assert box.value == 0.2
    at.session_state[box.key] = 0.0
    at.run()
    assert not at.exception and not at.error
    assert at.number_input(key=box.key).value == 0.2
    key = box.key
    at.number_input(key=key).set_value(0.05).run()
    assert at.number_input(key=key).value == 0.05
    at.session_state[key] = None
    at.run()
    assert at.number_input(key=key).value == 0.05 and at.query_params["optimizer"] == "sgd:lr=0.05"


def _slow_live_view() -> None:
    """A page whose live view draws slowly (a busy server): it counts its full runs."""
    import time
    from types import SimpleNamespace

    import streamlit as st

    from dlopt_core.runner.work import Job
    from ui.kit import live

    st.session_state["full_runs"] = st.session_state.get("full_runs", 0) + 1
    st.number_input("epochs", min_value=1, key="epochs")
    job = Job(key="slow", label="slow", work=SimpleNamespace(tracking_errors=[], unwritten=0))  # pending: active

    def draw(jobs: object) -> None:
        time.sleep(0.3)  # 2.5 x 0.3 s is over 1.5 x the 0.3 s interval: the interval must grow
        st.write("drawn")

    live(lambda: [job], draw, name="slow", what="test")


def test_a_live_view_never_reruns_the_page_from_inside_a_full_run() -> None:
    """A rerun called inside a full run drops that run's unsent widgets; Streamlit sends a widget
    the value a link set only in the run that set it, so a tab opened on a busy server drew its
    form at first options and minimums (a second Compare tab showed model linear, epochs 1 and
    watched another config). The longer interval waits for the fragment's own rerun."""
    at = AppTest.from_function(_slow_live_view, default_timeout=60)
    at.session_state["epochs"] = 3000  # as a link's preamble sets it
    at.run()
    assert not at.exception
    assert at.session_state["full_runs"] == 1
    assert at.number_input(key="epochs").value == 3000


def test_every_widget_declares_its_current_value_as_its_default() -> None:
    """The browser builds a widget from its declared default when it missed the run that set its
    value (a busy server): a second Compare tab came back with model linear, epochs 1,
    determinism off and no band, and watched another config. The declared default is now the
    value itself, on every page (a widget's identity under a key does not include it)."""
    at = open_page("pages/1_Compare_optimizers.py", {
        "optimizer": ["sgd:lr=0.2"], "epochs": "3000", "model": "mlp", "seeds": "3,4", "engine": "sequential",
    })
    assert not at.exception
    assert at.number_input(key="epochs").proto.default == 3000
    model = at.selectbox(key="model")
    assert model.options[model.proto.default] == "MLP" != model.options[0]
    assert at.text_input(key="seeds").proto.default == "3,4"
    assert at.checkbox(key="deterministic").proto.default is True
    lr = next(w for w in at.number_input if w.key.endswith(".lr"))
    assert lr.proto.default == 0.2
    # The user's change becomes the declared default of the next run, under the same widget.
    at.number_input(key="epochs").set_value(7).run()
    assert at.number_input(key="epochs").value == 7 and at.number_input(key="epochs").proto.default == 7
