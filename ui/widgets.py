"""Widgets built from registry specs, with state seeded once and kept in session state."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from dlopt_core.config import ConfigError
from dlopt_core.catalog.hyperparams import HyperParam

T = TypeVar("T")


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
    """Learning rate entry; any positive value is allowed, the range is a hint."""
    seed_state(key, default)
    return st.number_input(
        "learning rate",
        min_value=0.0,
        key=key,
        format="%g",
        step=default / 10,
        help=f"usual range {lr_range[0]:g} to {lr_range[1]:g}",
    )


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


# Keys a URL may repeat: each value is one registry entry (``optimizer=sgd&optimizer=adam``).
LIST_KEYS = ("optimizer", "augment", "methods")


def query_dict() -> dict[str, Any]:
    """The URL's query parameters; the :data:`LIST_KEYS` are always lists."""
    qp = st.query_params
    return {k: qp.get_all(k) if k in LIST_KEYS else qp.get(k) for k in qp.keys()}


def write_query(flat: dict[str, Any], *, page: str | None = None) -> None:
    """Put ``flat`` in the URL, only when it differs (every write is a browser round trip).

    ``page``: also keep it as that page's last settings, which :func:`config_from_url` puts back
    when Streamlit dropped the page's widget state.
    """
    if page is not None:
        st.session_state[f"{page}._last"] = flat
    wanted = {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in flat.items()}
    if wanted != query_dict():
        st.query_params.from_dict(wanted)


def config_from_url(
    page: str, parse: Callable[[dict[str, Any]], T], default: T, *, probe: str | tuple[str, ...] | None = None
) -> tuple[T, dict[str, Any]] | None:
    """Once per browser session and page: the config the URL describes (or ``default``).

    Returns it with the raw query, or ``None`` after the first call. A link that does not
    validate leaves a message under ``f"{page}._url_error"`` and gives the default; the
    message shows the link's text as code, so a link cannot put Markdown on the page.

    ``probe`` is one or several of the page's widget keys: when one is gone, Streamlit dropped
    the page's widget state (a second tab once kept the data set's and lost the model's, whose
    selectbox then fell back to its first option) (it cleans up widgets a run did not draw: another page's run, and once seen
    on a second tab during a search), and the page's last settings (see :func:`write_query`)
    are returned again; without them, the URL's.
    """
    if st.session_state.get(f"{page}._loaded"):
        probes = (probe,) if isinstance(probe, str) else probe or ()
        if all(p in st.session_state for p in probes):
            return None
        last = st.session_state.get(f"{page}._last")
        if last is not None:
            try:
                return parse(last), last
            except ConfigError:
                pass
    st.session_state[f"{page}._loaded"] = True
    flat = query_dict()
    if not flat:
        return default, flat
    if not flat.get("optimizer"):
        # A link that sets only the setup keeps the default optimizers: its settings still
        # apply (and a bad one is reported, not silently dropped).
        flat = {**flat, "optimizer": default.to_dict()["optimizer"]}
    try:
        qp = st.query_params
        if twice := next((k for k in qp if k not in LIST_KEYS and len(qp.get_all(k)) > 1), None):
            raise ConfigError(f"{twice[:60]}: given more than once; give it once")
        return parse(flat), flat
    except ConfigError as err:
        st.session_state[f"{page}._url_error"] = (
            f"The link's settings were not valid ({code_span(str(err))}); showing defaults."
        )
        return default, flat
