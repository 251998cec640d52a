"""The tutorial's algorithms from scratch, next to torch.optim, on the page."""

from __future__ import annotations

import inspect

import numpy as np
import streamlit as st

from dlopt_core.plots import reference_figure
from dlopt_core.reference import (
    ALGORITHMS, GROWTH, batches, divergence_step, gradient, path_losses, reference_path, relative_difference,
    stable_lr, torch_path, tutorial_data,
)
from ui.landscape_form import wrapping_columns

PROBLEMS = {"squared": "linear regression", "logistic": "logistic regression"}


def reference_section() -> None:
    """Pick an algorithm; see its NumPy code, its path and torch's, and their difference."""
    st.subheader("The tutorial's algorithms from scratch")
    st.caption(
        "NumPy implementations of the tutorial's worked example (linear regression with the "
        "squared loss, or logistic regression) run on the same data, start and sample order "
        "as torch.optim. The two paths should lie on top of each other."
    )
    # A wrapping row, not st.columns: five columns at 820 px left each widget 90 px.
    with st.container(horizontal=True):
        name = st.selectbox("algorithm", list(ALGORITHMS), format_func=lambda n: ALGORITHMS[n].label,
                            key="ref.algo", width=250)
        kind = st.selectbox("problem", list(PROBLEMS), key="ref.kind", format_func=PROBLEMS.get, width=190)
        lr = st.number_input("learning rate", min_value=1e-6, max_value=10.0, value=0.05, format="%g",
                             key="ref.lr", width=150)
        algo = ALGORITHMS[name]
        batch = 100 if algo.full_batch else st.number_input("batch size", 1, 100, 8, key="ref.batch", width=130)
        steps = st.number_input("steps", 1, 2000, 100, key="ref.steps", width=130)

    x, y = tutorial_data(kind)
    epochs = int(np.ceil(steps * batch / len(x))) + 1
    order = list(batches(len(x), int(batch), epochs, seed=0))[: int(steps)]
    start = np.zeros(2)
    ours = reference_path(x, y, start, algorithm=name, lr=lr, order=order, kind=kind)
    theirs = torch_path(x, y, start, algorithm=name, lr=lr, order=order, kind=kind)
    losses = path_losses(ours, x, y, kind)
    stops = [s for s in (divergence_step(losses), divergence_step(path_losses(theirs, x, y, kind))) if s is not None]
    # A diverged run is drawn up to the first step past the limit: where it flew off.
    shown = min(stops) + 1 if stops else len(ours)
    if stops:
        hint = ""
        if name == "gd" and kind == "squared":
            hint = f" On this problem gradient descent converges only for lr < 2 / λ_max = {stable_lr(x):.3g}."
        st.warning(
            f"{algo.label} at lr = {lr:g} **diverges**: from step {shown - 1} on, the loss stays above "
            f"{GROWTH:g}x its start ({losses[0]:.3g} → {losses[-1]:.3g} at step {len(losses) - 1}).{hint} "
            f"Lower the learning rate; the chart and the difference below cover steps 0 to {shown - 1}."
        )
    code_column, chart_column = wrapping_columns("reference_row", [440, 380])
    with code_column:
        # The whole source, wrapped rather than scrolled sideways, and the gradient it calls.
        st.code(
            inspect.getsource(algo.numpy_fn) + "\n\n# the gradient every step calls\n" + inspect.getsource(gradient),
            language="python", wrap_lines=True,
        )
    with chart_column:
        st.plotly_chart(
            reference_figure(ours[:shown], theirs[:shown], x=x, y=y, kind=kind), key="reference", width="stretch",
        )
        st.caption(
            "**What to look for:** the black dotted path (NumPy) runs inside the thick red one "
            "(torch.optim), step for step. Set the batch size to 1 and the path turns noisy: each "
            "step sees one sample. Raise the learning rate until the path zig-zags across the "
            "valley, then flies off: that is divergence."
        )
        st.metric(
            "relative difference from torch.optim", f"{relative_difference(ours[:shown], theirs[:shown]):.1e}",
            help=(
                "The largest distance between matching NumPy and torch iterates, divided by the "
                "largest |θ| on torch's path. float64 rounding is about 1e-16 per operation, so "
                "anything near 1e-15 means the same algorithm. Largest absolute difference: "
                f"{float(np.max(np.abs(ours[:shown] - theirs[:shown]))):.2e}."
            ),
        )
