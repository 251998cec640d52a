"""The Loss landscapes page's view: the contour (or surface) with every path, the value and
distance curves, and the table of how each optimizer ended."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dlopt_core.experiments.landscape import LandscapeConfig, LandscapeResult, LrSearch, run_landscape
from dlopt_core.plots import landscape_curves_figure, landscape_figure, landscape_surface_figure
from ui import landscape_form as form


@st.cache_data(max_entries=32, show_spinner=False)
def compute(flat: dict[str, Any]) -> LandscapeResult:
    return run_landscape(LandscapeConfig.from_dict(flat))


def landscape_view(config: LandscapeConfig, searches: dict[str, LrSearch], *, surface_3d: bool) -> LandscapeResult:
    """Every optimizer's path on ``config``'s function; ``searches``: the lr tunings by optimizer label."""
    fn = config.test_function
    result = compute(config.to_dict())
    left, right = form.wrapping_columns("landscape_charts", [460, 320])
    with left:
        if surface_3d:
            st.plotly_chart(landscape_surface_figure(result), key="landscape3d", width="stretch")
            st.caption(
                "**What to look for:** the same paths on the surface, its height the value"
                + (" (log scale)" if result.surface.log_scaled else "")
                + ". Drag to turn it: the valleys and ridges that bend the paths stand out. "
                + fn.look_for
            )
        else:
            event = st.plotly_chart(
                landscape_figure(result, click_grid=41), key="landscape", width="stretch",
                on_select="rerun", selection_mode="points",
            )
            st.caption(
                f"**What to look for:** {fn.look_for} Press ▶ play to watch the paths grow; "
                "click anywhere on the plot to start from there."
            )
            form.clicked_start(event)
    with right:
        st.plotly_chart(landscape_curves_figure(result), key="landscape_curves", width="stretch")
        st.caption(
            "**What to look for:** the top panel is the value at each step, the bottom one the "
            f"distance to the nearest {fn.target_label}. A curve that flattens early has stalled "
            "(a plateau, or a local minimum if the distance stays large); one that stops early "
            "diverged or left the window (see the table). A wavy curve is an optimizer overshooting "
            "and coming back."
        )
    table = pd.DataFrame(
        {
            "optimizer": t.label,
            "final value": t.values[-1],
            "distance": t.distances(fn.minima)[-1],
            "steps": len(t.x) - 1,
            "status": t.status_text,
            **({"lr search": form.search_text(searches[t.label], short=True) if t.label in searches else ""}
               if searches else {}),
        }
        for t in result.trajectories
    )
    # Widths that fit the 490 px a page has at 820 px; longer texts show whole on hover.
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "optimizer": st.column_config.TextColumn(width=180),
            "final value": st.column_config.NumberColumn(format="%.3g", width=80),
            "distance": st.column_config.NumberColumn(
                format="%.3g", width=80, help=f"from the last point to the nearest {fn.target_label}",
            ),
            "steps": st.column_config.NumberColumn(width=55),
        },
    )
    st.caption(f"Computed {len(result.trajectories)} trajectories in {result.seconds:.2f} s.")
    return result
