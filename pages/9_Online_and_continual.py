"""Online and continual learning: which optimizer keeps up when the data changes, and which forgets."""

import streamlit as st

from dlopt_core.config import ConfigError
from ui import online_form as form
from ui.kit import find, page_tabs, run_row
from ui.online_view import continual_view, start_continual, start_stream, stream_view
from ui.status import page_frame
from ui.widgets import code_span

page_frame("Online and continual · dlopt")
st.title("Online and continual learning")
st.caption(
    "Data that changes while a model learns: a stream that drifts (which optimizer keeps up, and which "
    "detector notices), and a sequence of tasks (which optimizer and strategy forget least)."
)

tab, area = page_tabs(form.TAB, form.TAB_LABELS)
with area:
    if tab == "stream":
        form.STREAM.preamble()
        values = form.stream_inputs()
        config = None
        try:
            config = form.build_stream(values)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        form.STREAM.sync(config, tab=tab)
        if config is not None:
            st.caption(
                f"{len(config.learners)} learners × {len(config.seeds)} seeds = **{len(config.learners) * len(config.seeds)} "
                f"runs**, each {config.n_steps:,} steps of {config.batch_size} samples; true drifts at steps "
                + ", ".join(f"{a:,}–{b:,}" if b > a else f"{a:,}" for a, b in config.drifts) + "."
            )
            job = find(config.key())
            run_row([job] if job else [], lambda: start_stream(config), on_start=lambda: form.STREAM.remember(config))
            if job is None:
                st.info("Press **Run** to race every learner on the stream, scoring each batch before training on it.")
                form.STREAM.offer_last(lambda cfg: find(cfg.key()))
            else:
                stream_view(job)
    else:
        form.CONTINUAL.preamble()
        values = form.continual_inputs()
        config = None
        try:
            config = form.build_continual(values)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        form.CONTINUAL.sync(config, tab=tab)
        if config is not None:
            st.caption(form.continual_caption(config))
            job = find(config.key())
            run_row([job] if job else [], lambda: start_continual(config),
                    on_start=lambda: form.CONTINUAL.remember(config))
            if job is None:
                st.info("Press **Run** to train every optimizer with every strategy, task after task.")
                form.CONTINUAL.offer_last(lambda cfg: find(cfg.key()))
            else:
                continual_view(job)
