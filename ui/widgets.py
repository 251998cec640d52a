"""Widgets built from registry specs, with state seeded once and kept in session state."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from dlopt_core.catalog.hyperparams import HyperParam

def seed_state(key: str, default: Any) -> None:
    """Give a widget its first value without passing ``value=`` (which fights session state)."""
    if key not in st.session_state:
        st.session_state[key] = default


def param_input(p: HyperParam, key: str, *, default: Any = None) -> Any:
    """A widget for one hyperparameter, bounded by its allowed range (or its choices)."""
    first = p.default if default is None else default
    seed_state(key, p.text(first) if p.kind == "ints" else first)
    if p.kind == "choice":
        return st.selectbox(p.name, p.choices, key=key, help=p.help or None)
    if p.kind == "ints":
        return st.text_input(p.name, key=key, help=p.help or None)
    if p.kind == "bool":
        return st.checkbox(p.name, key=key, help=p.help or None)
    if p.kind == "int":
        return st.number_input(
            p.name, min_value=int(p.low), max_value=int(p.high), step=1, key=key, help=p.help or None
        )
    # An exclusive end is not a value a person can enter: stop just inside it.
    low = float(p.low) if p.low_inclusive else float(p.low) + _step(p) / 100
    high = float(p.high) if p.high_inclusive else float(p.high) - _step(p) / 100
    return st.number_input(
        p.name,
        min_value=low,
        max_value=high,
        key=key,
        format="%g",
        step=_step(p),
        help=p.help or None,
    )


def _step(p: HyperParam) -> float:
    span = p.high - p.low
    return 0.01 if span <= 1 else 0.1 if span <= 10 else 1.0


def lr_input(key: str, default: float, lr_range: tuple[float, float]) -> float:
    """Learning rate entry; any positive value is allowed, the range is a hint.

    A rate that comes back as 0 or blank gets this box's last positive one back: no step is taken
    at 0, and under load a watching tab's boxes came back at 0 (with its seeds blank), an invalid
    form that never saw its job end.
    """
    seed_state(key, default)
    if not st.session_state[key] and (ok := st.session_state.get(f"{key}._ok")):
        st.session_state[key] = ok
    lr = st.number_input(
        "learning rate",
        min_value=0.0,
        key=key,
        format="%g",
        step=default / 10,
        help=f"usual range {lr_range[0]:g} to {lr_range[1]:g}",
    )
    if lr:
        st.session_state[f"{key}._ok"] = lr
    return lr


UPLOADS = "uploads"  # the data sets this browser session uploaded, by name


def remember_upload(name: str) -> None:
    """Add an uploaded data set to this session's list (every page's data-set picker shows it)."""
    names = st.session_state.setdefault(UPLOADS, [])
    if name not in names:
        names.append(name)


def loadable_dataset(name: object) -> bool:
    """Whether ``name`` is a data set this process can load (an upload's files may be gone)."""
    from dlopt_core.catalog.datasets import get_dataset_spec

    try:
        get_dataset_spec(name)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def uploaded_datasets() -> list[str]:
    """This session's uploaded data sets that can still be loaded."""
    return [name for name in st.session_state.get(UPLOADS, []) if loadable_dataset(name)]


def code_span(text: str) -> str:
    """``text`` as one Markdown code span: shown as typed, never as a link, image, formula or colour.

    For text a visitor controls (a link's values, an error message that echoes them) wherever
    Streamlit renders Markdown: ``st.warning``, ``st.error``, ``st.caption``, ``st.markdown``.
    """
    # One line: a blank line would end the span and let the rest be read as Markdown.
    text = " ".join(text.split())
    if not text:
        return ""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""  # the parser drops one space each side
    return f"{fence}{pad}{text}{pad}{fence}"
