"""Learning-rate sensitivity: every optimizer at every lr of a log grid; how much does the lr matter?"""

import streamlit as st

from dlopt_core.config import ConfigError
from ui import sweep_form as form
from ui.compare_form import schedule_note
from ui.status import OTHERS_JOB, may_stop, page_frame, started
from ui.sweep_view import compare_button, find_sweep, start_sweep, sweep_view
from ui.widgets import code_span

page_frame("LR sensitivity · dlopt")
st.title("Learning-rate sensitivity")
st.caption(
    "Each optimizer trains at every learning rate of a log-spaced grid, over several seeds, "
    "and the final validation loss is drawn against the learning rate: where is the best lr, "
    "and how forgiving is the optimizer around it?"
)

form.load_from_url()
form.apply_restore()
if err := st.session_state.pop(f"{form.PREFIX}._url_error", None):
    st.warning(err)

setup = form.setup_sidebar()
st.subheader("Optimizers and learning rates")
grid = form.grid_inputs()
form.full_batch_note(grid)

config = None
try:
    config = form.build_config(setup, grid)
except ConfigError as err:
    st.error(f"Fix this before running: {code_span(str(err))}")
schedule_note(config)

metric = form.metric_toggle(config)
form.sync_url(config, metric)

if config is not None:
    st.caption(form.grid_caption(config))
    job = find_sweep(config)
    running = job is not None and job.active
    buttons = st.columns([1, 1, 4])
    if buttons[0].button("Run", type="primary", disabled=running, width="stretch"):
        if started(lambda: start_sweep(config)) is not None:
            form.remember_job(config)
            # Redraw at once: Run turns disabled and the live view starts polling.
            st.rerun()
    if buttons[1].button("Stop", disabled=not may_stop(job), width="stretch") and may_stop(job):
        job.cancel()
    if running and not may_stop(job):
        st.caption(OTHERS_JOB)
    if job is None:
        st.info("Press **Run** to train every optimizer at every learning rate of the grid.")
        form.offer_previous_job()
    else:
        sweep_view(job, metric=metric)
        if not job.active:
            compare_button(job)
