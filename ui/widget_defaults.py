"""Every keyed widget declares its current value as its default, so the browser never falls back
to a first option or a minimum.

Streamlit sends a widget the value that session state gave it (a link, a restore) only in the
run that set it; the browser applies it once and otherwise builds the widget from the default
declared in the call. On a busy server a browser that re-created a widget after applying that
value (or before receiving it) drew the declared default: a second Compare tab came back with
model linear, epochs 1, no engine and band None, and silently watched another config (the
Compare Stop tests' failure reports; a websocket record showed the widgets sent again without
the value). With the current value declared as the default, the fallback is the right value.

A widget's identity under a key does not include its default (``key_as_main_identity``), so
declaring it changes nothing else. :func:`install` patches Streamlit's widget commands once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

# Widget command -> the parameter that declares its default.
DEFAULT_PARAMS = {
    "number_input": "value", "text_input": "value", "text_area": "value", "checkbox": "value",
    "toggle": "value", "slider": "value", "select_slider": "value", "multiselect": "default",
    "segmented_control": "default", "pills": "default", "selectbox": "index", "radio": "index",
}
_installed = False
_AS_CALLED = object()  # leave the call's own default


def _declared(name: str, param: str, bound: inspect.BoundArguments, value: Any) -> Any:
    """The default to declare for ``value``, or :data:`_AS_CALLED`."""
    args = bound.arguments
    if param == "index":
        options = args.get("options")
        if not isinstance(options, Sequence) or isinstance(options, str) or value not in options:
            return _AS_CALLED
        return list(options).index(value)
    if name == "number_input" and value is not None:
        low, high, step = args.get("min_value"), args.get("max_value"), args.get("step")
        if not isinstance(value, int | float) or (low is not None and value < low) or (high is not None and value > high):
            return _AS_CALLED
        # Streamlit refuses a mix of ints and floats among value, bounds and step.
        if any(isinstance(x, float) for x in (low, high, step)):
            return float(value)
        if any(isinstance(x, int) for x in (low, high, step)) and isinstance(value, float):
            return int(value) if value.is_integer() else _AS_CALLED
    return value


def _with_current_default(name: str, param: str, command: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(command)

    @functools.wraps(command)
    def widget(self: DeltaGenerator, *args: Any, **kwargs: Any) -> Any:
        key = kwargs.get("key")
        if key is not None and key in st.session_state:
            bound = signature.bind_partial(self, *args, **kwargs)
            if param not in bound.arguments:
                if (default := _declared(name, param, bound, st.session_state[key])) is not _AS_CALLED:
                    kwargs[param] = default
        return command(self, *args, **kwargs)

    return widget


def install() -> None:
    """Patch the widget commands (``st.x``, ``st.sidebar.x``, a column's ``.x``) once per process."""
    global _installed
    if _installed:
        return
    for name, param in DEFAULT_PARAMS.items():
        patched = _with_current_default(name, param, getattr(DeltaGenerator, name))
        setattr(DeltaGenerator, name, patched)
        # st.x was bound to the main container when streamlit was imported.
        setattr(st, name, functools.partial(patched, st._main))
    _installed = True
