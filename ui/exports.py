"""A comparison's downloads (HTML report, curves and table CSV) and the command that reruns it,
on the Compare page once it ended and on the Runs page for a stored one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import streamlit as st

from dlopt_core.experiments.compare import Comparison, ComparisonConfig
from dlopt_core.export import cli_command, curves_csv, report_html, table_csv
from ui.status import device_text


def download_row(
    comparison: Comparison, *, config: ComparisonConfig | None, table: pd.DataFrame, name: str, title: str,
    run_ids: Mapping[int, str] | None = None, started: datetime | None = None, first: object = None,
) -> None:
    """Three download buttons after ``first`` (a page link, or nothing), in a row that wraps
    (fixed columns cut their labels at 820 px).

    The files are built on click (``data`` is a callable), not on every redraw.
    """
    row = st.container(horizontal=True)
    if first is not None:
        with row:
            first()  # type: ignore[operator]
    row.download_button(
        "HTML report", icon=":material/download:", file_name=f"{name}.html", mime="text/html",
        data=lambda: report_html(
            comparison, config=config, device=device_text(), table=table.to_dict("records"),
            title=title, run_ids=run_ids, started=started,
        ),
        help="One file: the curves (draws offline), the table, every run, the config, the command, the versions",
        on_click="ignore",
    )
    row.download_button(
        "Curves CSV", icon=":material/download:", file_name=f"{name}-curves.csv", mime="text/csv",
        data=lambda: curves_csv(comparison), help="Every evaluation of every run", on_click="ignore",
    )
    row.download_button(
        "Table CSV", icon=":material/download:", file_name=f"{name}-table.csv", mime="text/csv",
        data=lambda: table_csv(table.to_dict("records")), on_click="ignore",
    )
    if config is not None:
        st.caption("Run it again from a terminal (the copy button is at the code's right):")
        st.code(cli_command(config), language="bash", wrap_lines=True)
