"""Learning-rate search: an LR range test, then one Optuna study per optimizer, drawn live."""

import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.experiments.search import past_searches
from dlopt_core.experiments.study_storage import study_storage
from ui import search_form as form
from ui.compare_form import schedule_note
from ui.kit import run_row
from ui.search_view import compare_button, read_summaries, search_jobs, search_view, start_search
from ui.status import page_frame
from ui.widgets import code_span

page_frame("LR search · dlopt")
st.title("Learning-rate search")
st.caption(
    "Find each optimizer's best learning rate: a quick LR range test shows where to look, then an "
    "Optuna study per optimizer, all with the same trial budget, searches there. Which optimizer "
    "finds a good result in the fewest trials is the easiest to tune."
)

form.BINDING.preamble()

storage = study_storage()
setup = form.setup_sidebar()
st.subheader("Optimizers and search ranges")
optimizers = form.optimizer_inputs()
st.subheader("Search")
search = form.search_inputs()

config = None
try:
    config = form.build_config(setup, optimizers, search)
except ConfigError as err:
    st.error(f"Fix this before running: {code_span(str(err))}")
schedule_note(config)
form.BINDING.sync(config, workers=search["workers"])

with st.expander("LR range test: where to search", icon=":material/speed:"):
    form.range_test(config)
with st.expander("Reopen a past search", icon=":material/history:"):
    # Listing reads every study in the storage: only while asked, not on every redraw.
    if st.toggle("list the searches in the study storage", key="search.view.past_list"):
        form.reopen_picker(past_searches(storage), config)

if config is not None:
    jobs = search_jobs(config)
    summaries = read_summaries(config, storage)
    held = sum(min(s.finished, s.n_trials) for s in summaries if s is not None)
    total = config.n_trials * len(config.optimizers)
    st.caption(
        f"{len(config.optimizers)} optimizers × {config.n_trials} trials of {config.epochs} epochs, "
        f"{search['workers']} worker{'s' if search['workers'] > 1 else ''} per study. Studies stored in "
        f"`{storage.url}`."
    )
    running = run_row(jobs, lambda: start_search(config, search["workers"]), blocked=held >= total)
    stored = max((s.n_trials for s in summaries if s is not None), default=0)
    if held >= total and not running:
        more = f" ({stored} per optimizer, more than the {config.n_trials} asked)" if stored > config.n_trials else ""
        st.caption(
            f"These studies already hold their trials{more}: raise the trials per optimizer"
            f"{f' above {stored}' if more else ''} to add more to the same studies."
        )
    if not jobs and not any(summaries):
        st.info("Press **Run** to start one study per optimizer.")
    else:
        search_view(config, storage, summaries)
        if not running:
            compare_button(config, summaries)
