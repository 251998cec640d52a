"""Compression: prune, quantize and distil a trained model, and measure what each really saves."""

import streamlit as st

from dlopt_core.config import ConfigError
from ui import compress_form as form
from ui.compress_view import X_CHOICES, compression_view, start
from ui.kit import find, run_row
from ui.status import page_frame
from ui.widgets import code_span, seed_state

page_frame("Compression · dlopt")
st.title("Compression")
st.caption(
    "Make a trained model smaller or faster, and see what it costs: every variant's accuracy, "
    "parameters, saved bytes and latency are measured here, and each badge says what kind of saving it is."
)

form.BINDING.preamble()
setup = form.setup_sidebar()

st.subheader("Baseline")
baseline = form.baseline_source()
st.subheader("Methods")
methods = form.method_inputs()
sweep = form.sweep_inputs()

config = None
try:
    config = form.build_config(setup, methods, sweep)
    form.BINDING.sync(config)
    if baseline:
        config = form.baseline_setup(config, baseline)
    elif baseline is False:
        config = None  # a finished run is wanted, and none is usable yet (said above)
    if config is not None:
        # Here, not in the worker: a method this model cannot take is refused before Run.
        form.check(config, baseline.state if baseline else None)
except (ConfigError, ValueError) as err:  # ValueError: a device this machine does not have
    config = None
    st.error(f"Fix this before running: {code_span(str(err))}")

if config is not None:
    job = find(config.key())
    state = baseline.state if baseline else None
    run_row([job] if job else [], lambda: start(config, state))
    if job is None:
        st.info("Press **Run** to train the baseline (or load its weights) and measure every method.")
    else:
        seed_state("compress.view.x", "bytes")
        x_axis = st.segmented_control(
            "Pareto chart against", list(X_CHOICES), key="compress.view.x", required=True, format_func=X_CHOICES.get,
        )
        compression_view(job, x_axis=x_axis)
