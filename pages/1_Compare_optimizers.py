"""Compare optimizers: pick a setup and several optimizers, press Run, watch the curves."""

import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.plots import X_LABELS, lr_schedule_data, lr_schedule_figure
from dlopt_core.catalog.schedules import get_schedule
from ui import compare_form as form
from ui.compare_view import comparison_view, start_comparison
from ui.kit import find, run_row
from ui.status import page_frame
from ui.widgets import code_span

page_frame("Compare optimizers · dlopt")
st.title("Compare optimizers")
st.caption(
    "Every optimizer starts from the same weights and sees the same batches; "
    "curves update live while they train."
)

form.BINDING.preamble()
setup = form.setup_sidebar()
st.subheader("Optimizers")
optimizers = form.optimizer_boxes()

config = None
try:
    config = form.build_config(setup, optimizers)
except ConfigError as err:
    st.error(f"Fix this before running: {code_span(str(err))}")
form.schedule_note(config)

view_cols = st.columns(2, vertical_alignment="bottom")
# A selectbox, not a segmented control: five options do not fit a narrow window side by side.
x_axis = view_cols[0].selectbox("x-axis", list(X_LABELS), key="view.x", format_func=X_LABELS.get)
log_y = view_cols[0].toggle("log-scale loss", key="view.log_y")
band = view_cols[1].segmented_control(
    "band over seeds", ["minmax", "sd"], key="view.band", required=True,
    format_func={"minmax": "min-max", "sd": "±1 sd"}.get,
)
form.BINDING.sync(config, x=x_axis, log_y=log_y, band=band)

if config is not None:
    job = find(config.key())
    run_row([job] if job else [], lambda: start_comparison(config), on_start=lambda: form.BINDING.remember(config))
    note = None
    if get_schedule(config.schedule.name).depends_on_validation:
        note = "learning-rate schedule (drops happen when validation loss stalls)"
    planned = lr_schedule_data(config)
    if job is None:
        st.plotly_chart(lr_schedule_figure(planned, note=note), width="stretch", key="lr_schedule_chart")
        st.info("Press **Run** to train. The planned learning rates are drawn above.")
        form.BINDING.offer_last(lambda cfg: find(cfg.key()))
    else:
        comparison_view(job, x=x_axis, log_y=log_y, band=band, planned_lr=planned)
