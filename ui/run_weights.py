"""Pick a finished run from the run store and load its weights (the Compression page's baseline,
the Transfer page's source model)."""

from __future__ import annotations

import streamlit as st

from tracking.weights import RunWeights, WeightsError, load_run_weights, runs_with_weights
from ui.widgets import code_span


def pick_run_weights(key: str, *, help: str) -> RunWeights | bool:
    """A finished run with stored weights, chosen in a selectbox (state under ``key``) and loaded
    once per session; ``False`` while there is none or it cannot be loaded (the reason on the page)."""
    try:
        runs = runs_with_weights(limit=100)
    except Exception as err:  # an unreachable store: say so, keep the page
        st.error(f"The run store cannot be read: {code_span(f'{type(err).__name__}: {err}')}")
        return False
    if not runs:
        st.info("No finished run has stored weights yet: train one on any page (every finished run stores them).")
        return False
    labels = {r.run_id: r.text for r in runs}
    if st.session_state.get(key) not in labels:
        st.session_state[key] = runs[0].run_id
    run_id = st.selectbox("finished run", list(labels), key=key, format_func=labels.get, help=help)
    cache = st.session_state.setdefault(f"{key}._weights", {})
    if run_id not in cache:
        try:
            cache.clear()  # one run's weights at a time in the session
            cache[run_id] = load_run_weights(run_id)
        except WeightsError as err:
            st.error(f"These weights cannot be used: {code_span(str(err))}")
            return False
    return cache[run_id]
