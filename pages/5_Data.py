"""Data: augmentation against overfitting, what shrinking the training data costs, and your own data."""

import streamlit as st

from dlopt_core.config import ConfigError, RunConfig
from ui import data_form as form
from ui.compare_form import schedule_note
from ui.data_view import experiment_view, preview, start
from ui.kit import find, run_row
from ui.status import page_frame
from ui.widgets import code_span, seed_state

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


def run_buttons(config, kind: str) -> str | None:
    """Run, Stop and the live view of one experiment; the x axis chosen for the reduction's chart."""
    job = find(config.key())
    run_row([job] if job else [], lambda: start(config), key=kind)
    if job is not None:
        x_axis = None
        if kind == "reduce":
            seed_state("data.view.x", "bytes")
            x_axis = st.segmented_control(
                "x axis", ["bytes", "rows"], key="data.view.x", required=True,
                format_func={"bytes": "bytes stored", "rows": "share of rows"}.get,
            )
        experiment_view(job, kind=kind, x_axis=x_axis or "bytes")
        return x_axis
    return None


augment_tab, reduce_tab, upload_tab = st.tabs(["Augmentation and mixing", "Shrinking the data", "Your data"])

with augment_tab:
    if base is not None:
        augment = form.augment_inputs(setup)
        seed_state("data.preview_seed", 0)
        cols = st.columns([2, 1], vertical_alignment="bottom")
        cols[0].subheader("What the model sees")
        if cols[1].button("New samples", icon=":material/casino:", width="stretch"):
            st.session_state["data.preview_seed"] += 1
        try:
            preview(RunConfig.make(**setup, augment=augment), augment, st.session_state["data.preview_seed"])
        except ConfigError as err:
            st.error(f"Fix this first: {code_span(str(err))}")
        st.subheader("Does it fight overfitting?")
        seed_state("data.subset", 0.1)
        subset = st.slider(
            "share of the training set", 0.02, 1.0, key="data.subset", step=0.01, format="%.2f",
            help="a small share makes the model overfit, so the effect of augmentation shows",
        )
        try:
            demo = form.augment_demo(setup, augment, subset)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        else:
            st.caption(
                f"{len(demo.variants())} runs on {subset:.0%} of the training set: "
                + ", ".join(label for label, _ in demo.variants()) + "."
            )
            run_buttons(demo, "augment")

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
            x_axis = run_buttons(sweep, "reduce")

with upload_tab:
    st.caption(
        "A CSV with a header row, numeric feature columns and one target column; a NumPy .npz with "
        "arrays x and y; or MNIST's two idx files (images and labels). Each is checked on the server "
        "(size, encoding, ragged rows, missing or non-numeric values, formula-looking cells, a target "
        "with one class; an .npz is read without pickles) and never executed; a valid upload becomes "
        "a data set on every page of this tab (until you reload it)."
    )
    form.upload_form()

if demo is not None and values is not None:
    settings = form.DataSettings(demo, values["methods"], values["fractions"], values["components"])
    form.BINDING.sync(settings, x=x_axis or st.session_state.get("data.view.x", "bytes"))
