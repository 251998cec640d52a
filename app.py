"""dlopt home: what the tool does, where it runs, where runs are stored, and the pages."""

import streamlit as st

from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.schedules import SCHEDULES
from tracking.store import settings
from ui.presets import PRESETS
from ui.status import PAGES, device_text, page_frame

page_frame("dlopt")
st.title("dlopt: see how optimizers behave")
st.markdown(
    "Train small PyTorch models with different optimizers, learning-rate schedules and "
    "budgets, side by side, and watch the curves as they train. Every run is logged to "
    "MLflow, so nothing is lost and every result can be reopened."
)
cols = st.columns(3)
cols[0].metric("Optimizers", len(OPTIMIZERS))
cols[1].metric("Schedules", len(SCHEDULES))
cols[2].metric("Data sets", len(DATASETS))

store = settings()
st.subheader("Where it runs")
st.markdown(
    f"- **Device:** {device_text()}\n"
    f"- **Runs stored in:** `{store.mlflow_uri}`\n"
    f"- **Artifacts:** `{store.artifact_root}`"
)
st.caption(
    "Set `DLOPT_HOME` or `MLFLOW_TRACKING_URI` to store runs elsewhere; "
    "`mlflow ui --backend-store-uri` with the address above shows every run."
)
st.subheader("Demo presets")
st.caption("One click opens a page set up to show one lesson; press Run there.")
for preset in PRESETS:
    st.markdown(f"**{preset.title}**")
    row = st.container(horizontal=True)
    for link in preset.links:
        row.page_link(link.page, label=link.label, icon=":material/play_circle:", query_params=link.query)
    st.caption(preset.lesson)
st.subheader("Pages")
for page in PAGES[1:]:
    st.page_link(page.path, label=page.title, icon=page.icon)
    st.caption(page.help)
