"""Transfer learning and parameter sharing: what reusing weights buys and what it costs."""

import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.sharing import get_family
from ui import transfer_form as form
from ui.kit import find, page_tabs, run_row
from ui.status import page_frame, started
from ui.transfer_view import size_section, share_view, start_share, start_transfer, transfer_view
from ui.widgets import code_span

page_frame("Transfer and sharing · dlopt")
st.title("Transfer learning and parameter sharing")
st.caption(
    "Reuse weights two ways: fine-tune a model trained on a source task for a target task (seven ways, "
    "from a linear probe to LoRA), or let one set of weights serve several places or tasks. Every arm "
    "and variant trains with the same seeds and budget, so the differences are theirs."
)

tab, area = page_tabs(form.TAB, form.TAB_LABELS)
with area:
    if tab == "transfer":
        form.TRANSFER.preamble()
        values = form.transfer_inputs()
        source = form.source_weights()
        config = None
        try:
            if source is not False:  # False: a finished run is wanted, and none is usable yet (said above)
                config = form.build_transfer(values, source)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        form.TRANSFER.sync(config, tab=tab)
        state = source.state if source else None
        if config is not None:
            st.caption(form.plan_caption(config))
            job = find(config.key())
            run_row([job] if job else [], lambda: start_transfer(config, state),
                    on_start=lambda: form.TRANSFER.remember(config))
            if job is None:
                st.info("Press **Run** to pretrain the source model and fine-tune every arm on the target.")
                form.TRANSFER.offer_last(lambda cfg: find(cfg.key()))
            else:
                transfer_view(job)
            size_section(config, state)
    else:
        form.SHARE.preamble()
        values = form.share_inputs()
        config = None
        try:
            config = form.build_share(values)
        except ConfigError as err:
            st.error(f"Fix this before running: {code_span(str(err))}")
        form.SHARE.sync(config, tab=tab)
        if config is not None:
            job = find(config.key())
            run_row([job] if job else [], lambda: start_share(config), on_start=lambda: form.SHARE.remember(config))
            if job is None:
                st.info("Press **Run** to train every variant and check what it really shares.")
                form.SHARE.offer_last(lambda cfg: find(cfg.key()))
            else:
                jobs = [job]
                if get_family(config.family).combines:
                    other = form.other_combine(config)
                    if (other_job := find(other.key())) is not None:
                        jobs.append(other_job)
                    elif not job.active and st.button(f"Run it again with {form.COMBINE[other.combine]}"):
                        if started(lambda: start_share(other)) is not None:
                            st.rerun()
                share_view(jobs)
