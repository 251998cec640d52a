"""The from-scratch (NumPy) iterates against torch.optim's over the loss contour."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from dlopt_core.reference import loss


def reference_figure(ref: Any, torch_iterates: Any, *, x: Any, y: Any, kind: str) -> go.Figure:
    """The from-scratch and torch iterates over the loss contour in (bias, weight) space."""

    both = np.vstack([ref, torch_iterates])
    lo, hi = both.min(axis=0), both.max(axis=0)
    pad = np.maximum((hi - lo) * 0.25, 0.5)
    b_axis = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 60)
    w_axis = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 60)
    z = [[loss(np.array([b, w]), x, y, kind) for b in b_axis] for w in w_axis]  # type: ignore[arg-type]
    fig = go.Figure(go.Contour(x=b_axis, y=w_axis, z=np.log10(np.array(z)), colorscale="Blues",
                               reversescale=True, showscale=False, opacity=0.6, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=torch_iterates[:, 0], y=torch_iterates[:, 1], mode="lines",
                             line={"color": "#EF553B", "width": 6}, opacity=0.5, name="torch.optim"))
    fig.add_trace(go.Scatter(x=ref[:, 0], y=ref[:, 1], mode="lines+markers", marker={"size": 3},
                             line={"color": "black", "width": 1.5, "dash": "dot"}, name="from scratch (NumPy)"))
    fig.update_layout(height=420, margin={"l": 40, "r": 20, "t": 30, "b": 40},
                      xaxis_title="bias θ₀", yaxis_title="weight θ₁", legend={"orientation": "h", "y": -0.2})
    return fig
