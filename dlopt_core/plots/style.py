"""Colours shared by every figure family."""

from __future__ import annotations

import math

from plotly.colors import qualitative

PALETTE = qualitative.Plotly + qualitative.D3


def rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` as a CSS ``rgba()`` with ``alpha``."""
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def stride(n: int, most: int) -> list[int]:
    """Indices that thin a path of ``n`` points to about ``most``, keeping the last one."""
    step = max(1, math.ceil(n / most))
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx
