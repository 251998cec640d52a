"""Runs: every past comparison, sweep and study in the run store; open, overlay and export them."""

import streamlit as st

from ui import runs_view as view
from ui.status import page_frame

page_frame("Runs · dlopt")
st.title("Runs")
st.caption(
    "Everything the run store holds, newest first: open a comparison to see its curves and table "
    "as they looked live, select several to overlay them, export one as a report."
)
current = view.filters()
selected = view.entries_table(view.entries_page(current))
view.selection_views(selected)
