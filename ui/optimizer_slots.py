"""Optimizer boxes shared by pages: any number of registry optimizers, each with its lr.

State lives in session state under a page prefix, so each page keeps its own list; the
same optimizer may appear twice (SGD at two learning rates is a classic comparison).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import streamlit as st

from dlopt_core.config import OptimizerConfig
from dlopt_core.catalog.optimizers import OPTIMIZERS, get_optimizer
from ui.widgets import lr_input, param_input

_uids = itertools.count()


def lr_key(prefix: str, uid: int, name: str) -> str:
    """Session-state key of one box's learning rate (pages write tuned values here)."""
    return f"{prefix}.opt{uid}.{name}.lr"


def set_slots(prefix: str, optimizers: Iterable[OptimizerConfig]) -> None:
    """Replace the page's boxes with ``optimizers`` (from a URL or defaults)."""
    slots = []
    for opt in optimizers:
        uid = next(_uids)
        slots.append(uid)
        st.session_state[f"{prefix}.opt{uid}"] = opt.name
        st.session_state[lr_key(prefix, uid, opt.name)] = opt.lr
        for k, v in opt.params.items():
            st.session_state[f"{prefix}.opt{uid}.{opt.name}.{k}"] = v
    st.session_state[f"{prefix}.slots"] = slots


def slot_ids(prefix: str) -> list[int]:
    return st.session_state.setdefault(f"{prefix}.slots", [])


def _remove(prefix: str, uid: int) -> None:
    st.session_state[f"{prefix}.slots"] = [u for u in slot_ids(prefix) if u != uid]


def _add(prefix: str) -> None:
    uid = next(_uids)
    taken = {st.session_state.get(f"{prefix}.opt{u}") for u in slot_ids(prefix)}
    st.session_state[f"{prefix}.opt{uid}"] = next((n for n in OPTIMIZERS if n not in taken), "adam")
    st.session_state[f"{prefix}.slots"] = [*slot_ids(prefix), uid]


def optimizer_slots(prefix: str, *, per_row: int = 3) -> list[dict[str, Any]]:
    """One bordered box per optimizer: name, learning rate, hyperparameters."""
    chosen = []
    slots = slot_ids(prefix)
    columns = st.columns(per_row) if slots else []
    for n, uid in enumerate(slots):
        with columns[n % per_row].container(border=True):
            top = st.columns([4, 1], vertical_alignment="bottom")
            name = top[0].selectbox(
                "optimizer", list(OPTIMIZERS), key=f"{prefix}.opt{uid}",
                format_func=lambda o: OPTIMIZERS[o].label,
            )
            top[1].button(
                "", icon=":material/close:", key=f"{prefix}.rm{uid}", on_click=_remove,
                args=(prefix, uid), help="remove this optimizer", disabled=len(slots) == 1,
            )
            spec = get_optimizer(name)
            st.caption(spec.description + (" **Full batch only.**" if spec.full_batch_only else ""))
            lr = lr_input(lr_key(prefix, uid, name), spec.default_lr, spec.lr_range)
            params = {}
            if spec.hyperparams:
                with st.expander("hyperparameters"):
                    params = {
                        p.name: param_input(p, f"{prefix}.opt{uid}.{name}.{p.name}") for p in spec.hyperparams
                    }
            chosen.append({"name": name, "lr": lr, "params": params, "uid": uid})
    st.button(
        "add optimizer", icon=":material/add:", key=f"{prefix}.add", on_click=_add, args=(prefix,),
        disabled=len(slots) >= 12,
    )
    return chosen
