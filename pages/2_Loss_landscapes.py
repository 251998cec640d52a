"""Loss landscapes: optimizer paths on 2-D test functions, and the tutorial's algorithms from scratch."""

import streamlit as st

from dlopt_core.config import ConfigError
from tracking.landscape_log import log_landscape
from ui import landscape_form as form
from ui.landscape_view import landscape_view
from ui.reference_view import reference_section
from ui.status import may_stop, page_frame
from ui.widgets import code_span

page_frame("Loss landscapes · dlopt")
st.title("Loss landscapes")
st.caption(
    "Every optimizer from the registry, stepping a point on a 2-D surface. "
    "Press play to watch the paths; tune the learning rates for a fair comparison."
)

form.BINDING.preamble()
tuned = form.apply_tuned()
form.apply_clicked_start()

setup = form.setup_sidebar()
st.subheader("Optimizers")
boxes = form.optimizer_boxes()

config = None
try:
    config = form.build_config(setup, boxes)
except ConfigError as err:
    st.error(f"Fix this first: {code_span(str(err))}")
form.BINDING.sync(config)


if config is not None:
    with st.container(horizontal=True, vertical_alignment="center"):
        tune_pressed = st.button(
            "Tune learning rates", icon=":material/tune:",
            help="a short Optuna search per optimizer for the lr with the lowest final value",
        )
        log_pressed = st.button("Log to MLflow", icon=":material/save:")
        surface_3d = st.toggle("3-D surface", key=f"{form.PREFIX}.surface3d")
    searches = {opt.label: found for opt in config.optimizers if (found := form.search_of(config, opt)) is not None}
    if tuned is not None:
        form.tuned_note(tuned, searches)
    if tune_pressed:
        form.tune(config, boxes)
        st.rerun()  # the sidebar counts the job; its progress shows below
    if (job := form.tuning(config, boxes)) is not None:
        if not job.active:
            st.rerun()  # it ended: its learning rates go into the boxes before they are drawn
        form.tuning_view(job)
        if may_stop(job):
            st.button("Stop tuning", icon=":material/stop_circle:", on_click=job.cancel)

    result = landscape_view(config, searches, surface_3d=surface_3d)
    if log_pressed:
        try:
            ids = log_landscape(result)
            st.success(f"Logged {len(ids)} runs to MLflow experiment '{config.EXPERIMENT}'.")
        except Exception as exc:  # the store may be unreachable: say so, keep the page
            st.error(f"MLflow logging failed: {code_span(f'{type(exc).__name__}: {exc}')}")

st.divider()
reference_section()
