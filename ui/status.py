"""The sidebar block every page shows: device, jobs, and where runs are stored."""

from __future__ import annotations

import streamlit as st

from dlopt_core.device import describe_device, resolve_device
from dlopt_core.jobs import registry
from tracking.store import experiment_id, settings


@st.cache_resource(show_spinner="Preparing the run store…")
def prepare_store(uri: str) -> str | None:
    """Create the store's tables once per server, so the first Run does not pay for it."""
    try:
        experiment_id()
    except Exception as exc:  # an unreachable server is shown, not raised
        return f"{type(exc).__name__}: {exc}"
    return None


def device_text() -> str:
    return describe_device(resolve_device("auto"))


def sidebar_status() -> None:
    """Device, running jobs and store, at the bottom of the sidebar."""
    store = settings()
    problem = prepare_store(store.mlflow_uri)
    reg = registry()
    with st.sidebar:
        st.divider()
        st.caption(f"**Device:** {device_text()}")
        st.caption(f"**Jobs:** {reg.running} running · at most {reg.max_workers} at once")
        st.caption(f"**Runs stored in:** `{store.mlflow_uri}`")
        if problem:
            st.error(f"The run store is not reachable: {problem}")
