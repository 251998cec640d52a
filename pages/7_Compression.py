"""Compression: prune, quantize and distil a trained model, and measure what each really saves."""

import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.experiments.compress import check_methods
from ui import compress_form as form
from ui.compress_view import X_CHOICES, compression_view, find, start
from ui.status import OTHERS_JOB, may_stop, page_frame, started
from ui.widgets import code_span, seed_state

page_frame("Compression · dlopt")
st.title("Compression")
st.caption(
    "Make a trained model smaller or faster, and see what it costs: every variant's accuracy, "
    "parameters, saved bytes and latency are measured here, and each badge says what kind of saving it is."
)

form.load_from_url()
if err := st.session_state.pop(f"{form.PREFIX}._url_error", None):
    st.warning(err)
setup = form.setup_sidebar()

st.subheader("Baseline")
baseline = form.baseline_source()
st.subheader("Methods")
methods = form.method_inputs()
sweep = form.sweep_inputs()

config = None
try:
    config = form.build_config(setup, methods, sweep)
    form.sync_url(config)
    if baseline:
        config = form.baseline_setup(config, baseline)
    elif baseline is False:
        config = None  # a finished run is wanted, and none is usable yet (said above)
    if config is not None:
        # Here, not in the worker: a method this model cannot take is refused before Run.
        check_methods(config, baseline_state=baseline.state if baseline else None)
except (ConfigError, ValueError) as err:  # ValueError: a device this machine does not have
    config = None
    st.error(f"Fix this before running: {code_span(str(err))}")

if config is not None:
    job = find(config)
    running = job is not None and job.active
    cols = st.columns([1, 1, 4])
    if cols[0].button("Run", type="primary", disabled=running, width="stretch"):
        state = baseline.state if baseline else None
        if started(lambda: start(config, state)) is not None:
            st.rerun()
    if cols[1].button("Stop", disabled=not may_stop(job), width="stretch") and may_stop(job):
        job.cancel()
    if running and not may_stop(job):
        st.caption(OTHERS_JOB)
    if job is None:
        st.info("Press **Run** to train the baseline (or load its weights) and measure every method.")
    else:
        seed_state("compress.view.x", "bytes")
        x_axis = st.segmented_control(
            "Pareto chart against", list(X_CHOICES), key="compress.view.x", required=True, format_func=X_CHOICES.get,
        )
        compression_view(job, x_axis=x_axis)
