"""Loss landscapes: optimizer paths on 2-D test functions, and the tutorial's algorithms from scratch."""

import pandas as pd
import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.experiments.landscape import LandscapeConfig, LandscapeResult, run_landscape
from dlopt_core.plots import landscape_curves_figure, landscape_figure, landscape_surface_figure
from tracking.landscape_log import log_landscape
from ui import landscape_form as form
from ui.reference_view import reference_section
from ui.status import page_frame

page_frame("Loss landscapes · dlopt")
st.title("Loss landscapes")
st.caption(
    "Every optimizer from the registry, stepping a point on a 2-D surface. "
    "Press play to watch the paths; tune the learning rates for a fair comparison."
)

form.load_from_url()
if err := st.session_state.pop(f"{form.PREFIX}._url_error", None):
    st.warning(err)
tuned = form.apply_tuned()
form.apply_clicked_start()

setup = form.setup_sidebar()
st.subheader("Optimizers")
boxes = form.optimizer_boxes()

config = None
try:
    config = form.build_config(setup, boxes)
except ConfigError as err:
    st.error(f"Fix this first: {err}")
form.sync_url(config)


@st.cache_data(max_entries=32, show_spinner=False)
def compute(flat: dict) -> LandscapeResult:
    return run_landscape(LandscapeConfig.from_dict(flat))


if config is not None:
    actions = st.columns([1.3, 1.2, 1, 3], vertical_alignment="center")
    tune_pressed = actions[0].button(
        "Tune learning rates", icon=":material/tune:",
        help="a short Optuna search per optimizer for the lr with the lowest final value",
    )
    log_pressed = actions[1].button("Log to MLflow", icon=":material/save:")
    surface_3d = actions[2].toggle("3-D surface", key=f"{form.PREFIX}.surface3d")
    if tuned:
        actions[3].success("Learning rates tuned: the boxes above hold the best ones found.")
    if tune_pressed:
        form.tune(config, boxes)
        st.rerun()

    result = compute(config.to_dict())
    left, right = st.columns([3, 2])
    with left:
        if surface_3d:
            st.plotly_chart(landscape_surface_figure(result), key="landscape3d", width="stretch")
        else:
            event = st.plotly_chart(
                landscape_figure(result, click_grid=41), key="landscape", width="stretch",
                on_select="rerun", selection_mode="points",
            )
            st.caption("Click anywhere on the contour to start from there.")
            form.clicked_start(event)
    with right:
        st.plotly_chart(landscape_curves_figure(result), key="landscape_curves", width="stretch")
    minima = config.test_function.minima
    st.dataframe(
        pd.DataFrame(
            {
                "optimizer": t.label,
                "final value": t.values[-1],
                f"distance to {config.test_function.target_label}": t.distances(minima)[-1],
                "steps taken": len(t.x) - 1,
                "status": t.status_text,
            }
            for t in result.trajectories
        ),
        hide_index=True, width="stretch",
    )
    st.caption(f"Computed {len(result.trajectories)} trajectories in {result.seconds:.2f} s.")
    if log_pressed:
        try:
            ids = log_landscape(result)
            st.success(f"Logged {len(ids)} runs to MLflow experiment 'dlopt-landscape'.")
        except Exception as exc:  # the store may be unreachable: say so, keep the page
            st.error(f"MLflow logging failed: {type(exc).__name__}: {exc}")

st.divider()
reference_section()
