"""Loss landscapes: optimizer paths on 2-D test functions, and the tutorial's algorithms from scratch."""

import pandas as pd
import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.experiments.landscape import LandscapeConfig, LandscapeResult, run_landscape
from dlopt_core.plots import landscape_curves_figure, landscape_figure, landscape_surface_figure
from tracking.landscape_log import log_landscape
from ui import landscape_form as form
from ui.reference_view import reference_section
from ui.status import may_stop, page_frame
from ui.widgets import code_span

page_frame("Loss landscapes · dlopt")
st.title("Loss landscapes")
st.caption(
    "Every optimizer from the registry, stepping a point on a 2-D surface. "
    "Press play to watch the paths; tune the learning rates for a fair comparison."
)

form.BINDING.preamble()
tuned = form.apply_tuned()
form.apply_clicked_start()

setup = form.setup_sidebar()
st.subheader("Optimizers")
boxes = form.optimizer_boxes()

config = None
try:
    config = form.build_config(setup, boxes)
except ConfigError as err:
    st.error(f"Fix this first: {code_span(str(err))}")
form.BINDING.sync(config)


@st.cache_data(max_entries=32, show_spinner=False)
def compute(flat: dict) -> LandscapeResult:
    return run_landscape(LandscapeConfig.from_dict(flat))


if config is not None:
    with st.container(horizontal=True, vertical_alignment="center"):
        tune_pressed = st.button(
            "Tune learning rates", icon=":material/tune:",
            help="a short Optuna search per optimizer for the lr with the lowest final value",
        )
        log_pressed = st.button("Log to MLflow", icon=":material/save:")
        surface_3d = st.toggle("3-D surface", key=f"{form.PREFIX}.surface3d")
    searches = {opt.label: found for opt in config.optimizers if (found := form.search_of(config, opt)) is not None}
    if tuned:
        st.success("Learning rates tuned: the boxes above hold the best ones found (3 significant digits).")
        for label, found in searches.items():
            if found.edge is not None or not found.finished:
                st.warning(f"{label}: {form.search_text(found)}.")
    if tune_pressed:
        form.tune(config, boxes)
        st.rerun()  # the sidebar counts the job; its progress shows below
    if (job := form.tuning(config, boxes)) is not None:
        if not job.active:
            st.rerun()  # it ended: its learning rates go into the boxes before they are drawn
        form.tuning_view(job)
        if may_stop(job):
            st.button("Stop tuning", icon=":material/stop_circle:", on_click=job.cancel)

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
    if log_pressed:
        try:
            ids = log_landscape(result)
            st.success(f"Logged {len(ids)} runs to MLflow experiment 'dlopt-landscape'.")
        except Exception as exc:  # the store may be unreachable: say so, keep the page
            st.error(f"MLflow logging failed: {code_span(f'{type(exc).__name__}: {exc}')}")

st.divider()
reference_section()
