"""The tutorial's algorithms from scratch, next to torch.optim, on the page."""

from __future__ import annotations

import inspect

import numpy as np
import streamlit as st

from dlopt_core.plots import reference_figure
from dlopt_core.reference import ALGORITHMS, batches, reference_path, torch_path, tutorial_data


def reference_section() -> None:
    """Pick an algorithm; see its NumPy code, its path and torch's, and their difference."""
    st.subheader("The tutorial's algorithms from scratch")
    st.caption(
        "NumPy implementations of the tutorial's worked example (linear regression with the "
        "squared loss, or logistic regression) run on the same data, start and sample order "
        "as torch.optim. The two paths should lie on top of each other."
    )
    cols = st.columns(5)
    name = cols[0].selectbox("algorithm", list(ALGORITHMS), format_func=lambda n: ALGORITHMS[n].label, key="ref.algo")
    kind = cols[1].selectbox("problem", ["squared", "logistic"], key="ref.kind",
                             format_func={"squared": "linear regression", "logistic": "logistic regression"}.get)
    lr = cols[2].number_input("learning rate", min_value=1e-6, max_value=10.0, value=0.05, format="%g", key="ref.lr")
    algo = ALGORITHMS[name]
    batch = 100 if algo.full_batch else cols[3].number_input("batch size", 1, 100, 8, key="ref.batch")
    steps = cols[4].number_input("steps", 1, 2000, 100, key="ref.steps")

    x, y = tutorial_data(kind)
    epochs = int(np.ceil(steps * batch / len(x))) + 1
    order = list(batches(len(x), int(batch), epochs, seed=0))[: int(steps)]
    start = np.zeros(2)
    ours = reference_path(x, y, start, algorithm=name, lr=lr, order=order, kind=kind)
    theirs = torch_path(x, y, start, algorithm=name, lr=lr, order=order, kind=kind)
    if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs))):
        st.warning("This learning rate diverges; lower it to compare the paths.")
        return
    diff = float(np.max(np.abs(ours - theirs)))
    rel = float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)))
    left, right = st.columns([1, 1])
    with left:
        st.code(inspect.getsource(algo.numpy_fn), language="python")
    with right:
        st.plotly_chart(reference_figure(ours, theirs, x=x, y=y, kind=kind), key="reference", width="stretch")
        st.metric("largest difference from torch.optim", f"{diff:.2e}", help=f"relative: {rel:.2e}")
