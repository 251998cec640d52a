"""Learning-rate sensitivity: every optimizer at every lr of a log grid; how much does the lr matter?"""

import streamlit as st

from dlopt_core.config import ConfigError
from ui import sweep_form as form
from ui.compare_form import schedule_note
from ui.kit import find, run_row
from ui.status import page_frame
from ui.sweep_view import compare_button, start_sweep, sweep_view
from ui.widgets import code_span

page_frame("LR sensitivity · dlopt")
st.title("Learning-rate sensitivity")
st.caption(
    "Each optimizer trains at every learning rate of a log-spaced grid, over several seeds, "
    "and the final validation loss is drawn against the learning rate: where is the best lr, "
    "and how forgiving is the optimizer around it?"
)

form.BINDING.preamble()

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
form.BINDING.sync(config, show=metric)

if config is not None:
    st.caption(form.grid_caption(config))
    job = find(config.key())
    run_row([job] if job else [], lambda: start_sweep(config), on_start=lambda: form.BINDING.remember(config))
    if job is None:
        st.info("Press **Run** to train every optimizer at every learning rate of the grid.")
        form.BINDING.offer_last(lambda cfg: find(cfg.key()))
    else:
        sweep_view(job, metric=metric)
        if not job.active:
            compare_button(job)
