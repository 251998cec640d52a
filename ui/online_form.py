"""The Online and continual page's two forms: the drift race (-> StreamConfig) and continual
learning (-> ContinualConfig), each bound to the URL on its own tab."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.config import ConfigError
from dlopt_core.continual import SEQUENCES, STRATEGIES, get_sequence
from dlopt_core.experiments.continual import ContinualConfig
from dlopt_core.experiments.stream import StreamConfig
from dlopt_core.stream import DETECTORS, POLICIES, STREAMS
from ui.binding import Binding, ViewKey
from ui.optimizer_slots import optimizer_slots, set_slots
from ui.widgets import param_input, seed_state

TAB = ViewKey("tab", "online.tab", ("stream", "continual"))
TAB_LABELS = ("Drift race", "Continual learning")

S = "stream"
S_DEFAULT = StreamConfig.make()
_ROWS, _VERSION = f"{S}.learner_rows", f"{S}.learner_version"
_DETECTOR_FIELDS = ("adwin_delta", "ph_threshold", "kswin_alpha", "kswin_window", "tolerance")


def _learner_rows(cfg: StreamConfig) -> list[dict[str, Any]]:
    return [{"optimizer": lr.name, "lr": lr.lr, "policy": lr.policy, "settings": ",".join(lr.changed())}
            for lr in cfg.learners]


def set_stream_state(cfg: StreamConfig) -> None:
    """Put ``cfg`` into the drift race's widgets (before they are drawn)."""
    s = st.session_state
    s[f"{S}.stream"] = cfg.stream
    s[_ROWS] = _learner_rows(cfg)
    s[_VERSION] = s.get(_VERSION, 0) + 1  # a new table editor, so it shows these rows, not old edits
    s[f"{S}.seeds"] = ",".join(map(str, cfg.seeds))
    s[f"{S}.batch_size"], s[f"{S}.window"] = cfg.batch_size, cfg.window
    s[f"{S}.hidden"] = "/".join(map(str, cfg.hidden))
    s[f"{S}.reset_detector"] = cfg.reset_detector
    s[f"{S}.recover_fraction"] = cfg.recover_fraction
    for name in _DETECTOR_FIELDS:
        s[f"{S}.{name}"] = getattr(cfg, name)


STREAM = Binding(
    S, StreamConfig.from_dict, S_DEFAULT, set_stream_state,
    probes=(f"{S}.stream", f"{S}.seeds", f"{S}.batch_size"), views=(TAB,), noun="drift race",
)


def stream_inputs() -> dict[str, Any]:
    """The stream and the learners (main area); the model, batches and detectors (sidebar)."""
    seed_state(f"{S}.stream", S_DEFAULT.stream)
    stream = st.selectbox("stream", list(STREAMS), key=f"{S}.stream", format_func=lambda n: STREAMS[n].label)
    st.caption(STREAMS[stream].description)
    st.markdown("**Learners** — an optimizer, its learning rate and what it does when the data changes")
    st.caption("  \n".join(f"**{name}**: {text}" for name, text in POLICIES.items()))
    rows = st.session_state.setdefault(_ROWS, _learner_rows(S_DEFAULT))
    edited = st.data_editor(
        pd.DataFrame(rows, columns=["optimizer", "lr", "policy", "settings"]), key=f"{S}.learners.{st.session_state.get(_VERSION, 0)}",
        num_rows="dynamic", hide_index=True, width="stretch",
        column_config={
            "optimizer": st.column_config.SelectboxColumn("optimizer", options=list(OPTIMIZERS), required=True),
            "lr": st.column_config.NumberColumn("learning rate", min_value=0.0, format="%g", required=True),
            "policy": st.column_config.SelectboxColumn("policy", options=list(POLICIES), required=True),
            "settings": st.column_config.TextColumn("other settings", help="e.g. momentum=0.9,nesterov=true"),
        },
    )
    learners = [_spec(r) for r in edited.to_dict("records") if r.get("optimizer") and not pd.isna(r.get("lr"))]
    with st.sidebar:
        st.header("Model and stream")
        for key, value in ((f"{S}.seeds", ",".join(map(str, S_DEFAULT.seeds))), (f"{S}.batch_size", S_DEFAULT.batch_size),
                           (f"{S}.window", S_DEFAULT.window), (f"{S}.hidden", "/".join(map(str, S_DEFAULT.hidden))),
                           (f"{S}.reset_detector", S_DEFAULT.reset_detector),
                           (f"{S}.recover_fraction", S_DEFAULT.recover_fraction),
                           *((f"{S}.{n}", getattr(S_DEFAULT, n)) for n in _DETECTOR_FIELDS)):
            seed_state(key, value)
        seeds = st.text_input("seeds", key=f"{S}.seeds", help="each seed draws the stream and the starting weights")
        batch = st.number_input("batch size", min_value=1, max_value=1000, step=1, key=f"{S}.batch_size",
                                help="samples per step: each batch is scored, then trained on")
        window = st.number_input("rolling window (steps)", min_value=1, max_value=1000, step=1, key=f"{S}.window")
        hidden = st.text_input("hidden widths", key=f"{S}.hidden", help="the MLP's hidden layers, e.g. 32 or 64/32")
        recover = st.number_input(
            "recovered at (share of the pre-drift accuracy)", min_value=0.01, max_value=1.0, step=0.05,
            key=f"{S}.recover_fraction", format="%g",
            help="a learner has recovered from a drift once its rolling accuracy is back to this share of what it was before",
        )
        st.header("Drift detectors")
        reset = st.selectbox("a reset learner listens to", list(DETECTORS), key=f"{S}.reset_detector",
                             format_func=lambda n: DETECTORS[n].label)
        with st.expander("detector settings"):
            detector = {
                "adwin_delta": st.number_input("ADWIN δ", min_value=1e-9, max_value=0.999, key=f"{S}.adwin_delta", format="%g"),
                "ph_threshold": st.number_input("Page-Hinkley threshold", min_value=0.001, key=f"{S}.ph_threshold", format="%g"),
                "kswin_alpha": st.number_input("KSWIN α", min_value=1e-9, max_value=0.999, key=f"{S}.kswin_alpha", format="%g"),
                "kswin_window": st.number_input("KSWIN window (steps)", min_value=6, step=1, key=f"{S}.kswin_window"),
                "tolerance": st.number_input(
                    "tolerance (steps)", min_value=0, step=1, key=f"{S}.tolerance",
                    help="an alarm this many steps after a drift's end still counts as detecting it",
                ),
            }
    return {"stream": stream, "learners": learners, "seeds": seeds, "batch_size": batch, "window": window,
            "hidden": hidden, "recover_fraction": recover, "reset_detector": reset, **detector}


def _spec(row: dict[str, Any]) -> str:
    """A table row as the learner's spec text (``adam:lr=0.01,beta1=0.8,policy=reset``)."""
    settings = row.get("settings")
    extra = f",{settings.strip(', ')}" if isinstance(settings, str) and settings.strip(", ") else ""
    return f"{row['optimizer']}:lr={float(row['lr'])!r}{extra},policy={row.get('policy') or 'constant'}"


def build_stream(values: dict[str, Any]) -> StreamConfig:
    """Validate the drift race's form; raises :class:`ConfigError` naming the field."""
    if not values["learners"]:
        raise ConfigError("learners: add at least one learner (an optimizer, a learning rate and a policy)")
    return StreamConfig.make(**values)


C = "continual"
C_DEFAULT = ContinualConfig.make()


def set_continual_state(cfg: ContinualConfig) -> None:
    """Put ``cfg`` into the continual form's widgets (before they are drawn)."""
    s = st.session_state
    s[f"{C}.sequence"] = cfg.sequence
    s[f"{C}.strategies"] = list(cfg.strategies)
    set_slots(C, cfg.optimizers)
    s[f"{C}.model"] = cfg.model.name
    for p in MODELS[cfg.model.name].hyperparams:
        value = cfg.model.params.get(p.name, p.default)
        s[f"{C}.model.{cfg.model.name}.{p.name}"] = p.text(value) if p.kind == "ints" else value
    s[f"{C}.epochs"], s[f"{C}.batch_size"] = cfg.epochs, cfg.batch_size
    s[f"{C}.seeds"] = ",".join(map(str, cfg.seeds))
    s[f"{C}.replay_size"], s[f"{C}.ewc_lambda"] = cfg.replay_size, cfg.ewc_lambda
    s[f"{C}.sequence_seed"] = cfg.sequence_seed


CONTINUAL = Binding(
    C, ContinualConfig.from_dict, C_DEFAULT, set_continual_state,
    probes=(f"{C}.sequence", f"{C}.strategies", f"{C}.seeds", f"{C}.epochs"), views=(TAB,), noun="continual experiment",
)


def continual_inputs() -> dict[str, Any]:
    """The task sequence, the strategies and the optimizers (main area); the budget (sidebar)."""
    seed_state(f"{C}.sequence", C_DEFAULT.sequence)
    seed_state(f"{C}.strategies", list(C_DEFAULT.strategies))
    cols = st.columns([2, 3])
    sequence = cols[0].selectbox("task sequence", list(SEQUENCES), key=f"{C}.sequence",
                                 format_func=lambda n: SEQUENCES[n].label)
    strategies = cols[1].multiselect(
        "strategies", list(STRATEGIES), key=f"{C}.strategies", format_func=lambda n: STRATEGIES[n].label,
        help="how each optimizer learns task after task: plain fine-tuning, replaying stored rows, or EWC's penalty",
    )
    st.caption(get_sequence(sequence).description + "  \n" + "  \n".join(
        f"**{spec.label}**: {spec.description}" for spec in STRATEGIES.values()
    ))
    st.markdown("**Optimizers**")
    optimizers = optimizer_slots(C, range_notes=False)
    with st.sidebar:
        st.header("Model and budget")
        seed_state(f"{C}.model", C_DEFAULT.model.name)
        name = st.selectbox("model", list(MODELS), key=f"{C}.model", format_func=lambda n: MODELS[n].label)
        model = {p.name: param_input(p, f"{C}.model.{name}.{p.name}") for p in MODELS[name].hyperparams}
        for key, value in ((f"{C}.epochs", C_DEFAULT.epochs), (f"{C}.batch_size", C_DEFAULT.batch_size),
                           (f"{C}.seeds", ",".join(map(str, C_DEFAULT.seeds))),
                           (f"{C}.replay_size", C_DEFAULT.replay_size), (f"{C}.ewc_lambda", C_DEFAULT.ewc_lambda),
                           (f"{C}.sequence_seed", C_DEFAULT.sequence_seed)):
            seed_state(key, value)
        epochs = st.number_input("epochs per task", min_value=1, max_value=1000, step=1, key=f"{C}.epochs")
        batch = st.number_input("batch size", min_value=1, step=1, key=f"{C}.batch_size")
        seeds = st.text_input("seeds", key=f"{C}.seeds", help="comma-separated; each pair trains once per seed")
        st.header("Strategy settings")
        replay = st.number_input("replay buffer (rows)", min_value=1, max_value=100_000, step=50, key=f"{C}.replay_size",
                                 help="the most stored rows replay mixes into each batch (reservoir sampling)")
        ewc = st.number_input("EWC λ", min_value=0.0, step=10.0, key=f"{C}.ewc_lambda", format="%g",
                              help="the penalty's weight on moving the weights the earlier tasks' Fisher marks important")
        sequence_seed = st.number_input("sequence seed", min_value=0, step=1, key=f"{C}.sequence_seed",
                                        help="draws each task's rows (and the pixel permutations)")
    return {
        "sequence": sequence, "strategies": strategies,
        "optimizers": [{"name": o["name"], "lr": o["lr"], "params": o["params"]} for o in optimizers],
        "model": {"name": name, "params": model}, "epochs": epochs, "batch_size": batch, "seeds": seeds,
        "replay_size": replay, "ewc_lambda": ewc, "sequence_seed": sequence_seed,
    }


def build_continual(values: dict[str, Any]) -> ContinualConfig:
    """Validate the continual form; raises :class:`ConfigError` naming the field."""
    if not values["strategies"]:
        raise ConfigError("strategies: choose at least one strategy")
    return ContinualConfig.make(**values)


def continual_caption(cfg: ContinualConfig) -> str:
    """How many runs of what."""
    n = len(cfg.optimizers) * len(cfg.strategies) * len(cfg.seeds)
    return (f"{len(cfg.optimizers)} optimizers × {len(cfg.strategies)} strategies × {len(cfg.seeds)} seeds = "
            f"**{n} runs**, each {len(cfg.tasks)} tasks of {cfg.epochs} epochs.")
