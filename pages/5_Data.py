"""Data: augmentation against overfitting, what shrinking the training data costs, and your own data."""

import streamlit as st

from dlopt_core.config import ConfigError, RunConfig
from ui import data_form as form
from ui.compare_form import schedule_note
from ui.data_view import experiment_section, preview_section
from ui.status import page_frame
from ui.widgets import code_span

page_frame("Data · dlopt")
st.title("Data")
st.caption(
    "The data side of optimization: augmentation and mixing fight overfitting, shrinking the "
    "training data trades accuracy for size, and your own data joins every page. One model and one "
    "optimizer throughout, so only the data differs between the curves."
)

form.BINDING.preamble()
setup = form.setup_sidebar()
base = demo = values = x_axis = None
try:
    base = RunConfig.make(**setup)
except ConfigError as err:
    st.error(f"Fix this before running: {code_span(str(err))}")
schedule_note(base)

augment_tab, reduce_tab, upload_tab = st.tabs(["Augmentation and mixing", "Shrinking the data", "Your data"])

with augment_tab:
    if base is not None:
        augment = form.augment_inputs(setup)
        preview_section(setup, augment)
        st.subheader("Does it fight overfitting?")
        subset = form.subset_input()
        try:
            demo = form.augment_demo(setup, augment, subset)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        else:
            st.caption(
                f"{len(demo.variants())} runs on {subset:.0%} of the training set: "
                + ", ".join(label for label, _ in demo.variants()) + "."
            )
            experiment_section(demo, "augment")

with reduce_tab:
    if base is not None:
        values = form.reduce_inputs(setup)
        try:
            sweep = form.reduce_sweep(setup, values)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        else:
            st.caption(f"{len(sweep.variants())} runs: the full data and " + ", ".join(
                label for _, label, _ in sweep.variants()[1:]) + ".")
            x_axis = experiment_section(sweep, "reduce")

with upload_tab:
    form.upload_form()

if demo is not None and values is not None:
    settings = form.DataSettings(demo, values["methods"], values["fractions"], values["components"])
    form.BINDING.sync(settings, x=x_axis or st.session_state.get("data.view.x", "bytes"))
