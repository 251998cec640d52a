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
from dlopt_core.catalog.optimizers import OPTIMIZERS, OptimizerSpec, get_optimizer
from dlopt_core.plots.sensitivity import lr_text
from ui.widgets import lr_input, param_input

_uids = itertools.count()
# A registry's lr range is where tuning searches, so its ends are already unusual values; an
# lr more than this factor past an end is far outside it.
FAR_OUTSIDE = 2.0


def stacked_latex(lines: Iterable[str]) -> str:
    """Registry equations (one per line) as one LaTeX block, left-aligned for ``st.latex``."""
    return r"\begin{aligned}" + r" \\ ".join(f"&{line}" for line in lines) + r"\end{aligned}"


def lr_note(spec: OptimizerSpec, lr: float) -> str | None:
    """A warning when ``lr`` is far outside the optimizer's usual range (3 significant digits)."""
    low, high = spec.lr_range
    usual = f"{spec.label}'s usual range {lr_text(low)} – {lr_text(high)}"
    if lr > FAR_OUTSIDE * high:
        return f"{lr_text(lr)} is {lr_text(lr / high)}x above {usual}; it may diverge"
    if 0 < lr < low / FAR_OUTSIDE:
        return f"{lr_text(lr)} is {lr_text(low / lr)}x below {usual}; it may barely move"
    return None


def explain_optimizer(spec: OptimizerSpec) -> None:
    """The update rule as torch computes it, and when the optimizer shines, folded away."""
    # A popover, not an expander: its panel may be wider than a narrow box, so long rules
    # (L-BFGS, Muon) stay readable at 820 px with three boxes a row.
    with st.popover("update rule", use_container_width=True):
        st.latex(stacked_latex(spec.update_rule))
        st.caption(f"η: the learning rate at this step. **When it shines:** {spec.shines}")


def optimizer_label(name: str, params_by_name: dict[str, dict[str, Any]]) -> str:
    """``name``'s label with the hyperparameters (a link gave) that differ from its defaults."""
    params = params_by_name.get(name)
    changed = OptimizerConfig.make(name=name, params=params).changed() if params else []
    return " ".join([OPTIMIZERS[name].label, *changed])


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


def optimizer_slots(prefix: str, *, per_row: int = 3, range_notes: bool = True) -> list[dict[str, Any]]:
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
            full = spec.full_batch_only and "full batch" not in spec.description.lower()
            st.caption(spec.description + (" **Full batch only.**" if full else ""))
            lr = lr_input(lr_key(prefix, uid, name), spec.default_lr, spec.lr_range)
            if range_notes and (note := lr_note(spec, lr)):
                st.caption(f":orange[{note}]")
            explain_optimizer(spec)
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
