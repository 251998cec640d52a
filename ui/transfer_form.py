"""The Transfer page's two forms: the transfer lab (-> TransferConfig) and the parameter-sharing
comparator (-> ShareConfig), each bound to the URL on its own tab."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.config import ConfigError
from dlopt_core.experiments.share import ShareConfig
from dlopt_core.experiments.transfer import TransferConfig, check_source
from dlopt_core.sharing import FAMILIES, get_variant
from dlopt_core.transfer.arms import ARMS
from dlopt_core.transfer.tasks import TASKS, get_task
from tracking.weights import RunWeights
from ui.binding import Binding, ViewKey
from ui.compare_form import one_optimizer
from ui.run_weights import pick_run_weights
from ui.widgets import code_span, param_input, seed_state

TAB = ViewKey("tab", "transfer.tab", ("transfer", "share"))
TAB_LABELS = ("Transfer learning", "Parameter sharing")

T = "transfer"
T_DEFAULT = TransferConfig.make()
_T_MODEL = MODELS["mlp"]
_SOURCE, _RUN = f"{T}.source", f"{T}.source_run"
SOURCES = {"here": "pretrain it here (the sidebar's model)", "run": "a finished run's weights"}


def set_transfer_state(cfg: TransferConfig) -> None:
    """Put ``cfg`` into the transfer form's widgets (before they are drawn)."""
    s = st.session_state
    s[f"{T}.task"] = cfg.task
    s[f"{T}.fraction"] = round(cfg.target_fraction * 100)
    s[f"{T}.arms"] = list(cfg.arms)
    for p in _T_MODEL.hyperparams:
        value = cfg.model.params.get(p.name, p.default)
        s[f"{T}.model.{p.name}"] = p.text(value) if p.kind == "ints" else value
    s[f"{T}.optimizer"] = cfg.optimizer.name
    s[f"{T}.lr.{cfg.optimizer.name}"] = cfg.optimizer.lr
    s[f"{T}.schedule"] = cfg.schedule.name
    s[f"{T}.epochs"], s[f"{T}.batch_size"] = cfg.epochs, cfg.batch_size or 32
    s[f"{T}.seeds"] = ",".join(map(str, cfg.seeds))
    s[f"{T}.source_epochs"] = cfg.source_epochs
    s[f"{T}.lora_rank"], s[f"{T}.layer_decay"] = cfg.lora_rank, cfg.layer_decay
    s[f"{T}.unfreeze_every"] = cfg.unfreeze_every
    s[_SOURCE] = "run" if cfg.source_run else "here"
    if cfg.source_run:
        s[_RUN] = cfg.source_run


def _without_data(flat: dict[str, Any]) -> dict[str, Any]:
    # The task names its data set: a link that changes the task must not keep the default's.
    return {k: v for k, v in flat.items() if k.split(".")[0] != "dataset"}


TRANSFER = Binding(
    T, lambda flat: TransferConfig.from_dict(_without_data(flat)), T_DEFAULT, set_transfer_state,
    to_url=lambda cfg: _without_data(cfg.to_dict()),
    probes=(f"{T}.task", f"{T}.arms", f"{T}.seeds", f"{T}.optimizer"), views=(TAB,), noun="transfer experiment",
)


def transfer_inputs() -> dict[str, Any]:
    """The task, the share of target data, the arms (main area) and the setup (sidebar)."""
    for key, value in ((f"{T}.task", T_DEFAULT.task), (f"{T}.fraction", round(T_DEFAULT.target_fraction * 100)),
                       (f"{T}.arms", list(T_DEFAULT.arms))):
        seed_state(key, value)
    cols = st.columns([2, 1])
    task = cols[0].selectbox("source → target", list(TASKS), key=f"{T}.task", format_func=lambda n: TASKS[n].label)
    percent = cols[1].slider(
        "target training data", 1, 100, step=1, key=f"{T}.fraction", format="%d%%",
        help="the share of the target task's training rows each arm gets: transfer pays most when it is small",
    )
    st.caption(get_task(task).description)
    arms = st.multiselect(
        "arms", list(ARMS), key=f"{T}.arms", format_func=lambda n: ARMS[n].label,
        help="each trains on the target with the same seeds, optimizer and budget",
    )
    with st.sidebar:
        st.header("Model and budget")
        model = {p.name: param_input(p, f"{T}.model.{p.name}") for p in _T_MODEL.hyperparams}
        seed_state(f"{T}.epochs", T_DEFAULT.epochs)
        seed_state(f"{T}.batch_size", T_DEFAULT.batch_size)
        seed_state(f"{T}.source_epochs", T_DEFAULT.source_epochs)
        seed_state(f"{T}.seeds", ",".join(map(str, T_DEFAULT.seeds)))
        epochs = st.number_input("epochs on the target", min_value=1, max_value=1000, step=1, key=f"{T}.epochs")
        batch = st.number_input("batch size", min_value=1, step=1, key=f"{T}.batch_size")
        source_epochs = st.number_input(
            "epochs of pretraining", min_value=1, max_value=1000, step=1, key=f"{T}.source_epochs",
            help="the source model trains this long on the source task first (once per setup: it is cached)",
        )
        seeds = st.text_input("seeds", key=f"{T}.seeds", help="comma-separated; each arm trains once per seed (a band)")
        optimizer = one_optimizer(f"{T}.", help="every arm fine-tunes with it (the source model too)")
        seed_state(f"{T}.schedule", T_DEFAULT.schedule.name)
        schedule = st.selectbox("learning-rate schedule", list(SCHEDULES), key=f"{T}.schedule",
                                format_func=lambda n: SCHEDULES[n].label)
        st.header("Arm settings")
        for key, value in ((f"{T}.lora_rank", T_DEFAULT.lora_rank), (f"{T}.layer_decay", T_DEFAULT.layer_decay),
                           (f"{T}.unfreeze_every", T_DEFAULT.unfreeze_every)):
            seed_state(key, value)
        lora_rank = st.number_input("LoRA rank r", min_value=1, max_value=256, step=1, key=f"{T}.lora_rank")
        layer_decay = st.number_input(
            "layer-wise lr decay", min_value=0.01, max_value=1.0, step=0.05, key=f"{T}.layer_decay", format="%g",
            help="layer i of L fine-tunes at lr × decay^(L − i); the head at lr (timm's rule)",
        )
        unfreeze = st.number_input(
            "gradual: epochs per layer", min_value=1, max_value=1000, step=1, key=f"{T}.unfreeze_every",
            help="the head trains first; one more layer from the top unfreezes every this many epochs",
        )
    return {
        "task": task, "target_fraction": percent / 100, "arms": arms, "model": {"name": "mlp", "params": model},
        "optimizer": optimizer, "schedule": {"name": schedule}, "epochs": epochs, "batch_size": batch,
        "source_epochs": source_epochs, "seeds": seeds, "lora_rank": lora_rank, "layer_decay": layer_decay,
        "unfreeze_every": unfreeze,
    }


def plan_caption(config: TransferConfig) -> str:
    """How many runs of what, and where the source model comes from."""
    source = ("the finished run's weights as the source model" if config.source_run else
              f"{config.source_epochs} epochs of pretraining on the source (once per setup)")
    return (f"{len(config.arms)} arms × {len(config.seeds)} seeds = **{len(config.plan())} runs** of {config.epochs} "
            f"epochs on {config.target_fraction:.0%} of the target's training data, after {source}.")


def source_weights() -> RunWeights | None | bool:
    """Pretrain the source model here (``None``), or a finished run's weights (its :class:`RunWeights`;
    ``False`` while none is chosen or it cannot be loaded, with the reason on the page)."""
    seed_state(_SOURCE, "here")
    source = st.segmented_control("source model", list(SOURCES), key=_SOURCE, required=True, format_func=SOURCES.get)
    if source == "here":
        return None
    weights = pick_run_weights(
        _RUN, help="newest first; its model replaces the sidebar's, and it must have been trained on the task's source data",
    )
    if weights is not False:
        st.caption(f"Source model from the run: {code_span(weights.config.model.to_spec())} trained on "
                   f"{code_span(weights.config.data.name)} with {code_span(weights.config.optimizer.name)}.")
    return weights


def build_transfer(values: dict[str, Any], source: RunWeights | None = None) -> TransferConfig:
    """Validate the transfer form (with a finished run as the source model, its model and run id);
    raises :class:`ConfigError` or ValueError naming the field."""
    if not values["arms"]:
        raise ConfigError("arms: choose at least one arm")
    if source is None:
        return TransferConfig.make(**values)
    config = TransferConfig.make(**{**values, "model": source.config.model, "source_run": source.run_id})
    _check(config, source)
    return config


@st.cache_resource(max_entries=16, show_spinner=False)
def _problem(key: str, _config: TransferConfig, _state: Any) -> ValueError | None:
    # Keyed by the config's hash (the run id is part of it): other widgets changing do not build it again.
    try:
        check_source(_config, _state)
    except ValueError as err:
        return err
    return None


def _check(config: TransferConfig, source: RunWeights) -> None:
    if (problem := _problem(config.key(), config, source.state)) is not None:
        raise ConfigError(str(problem))


S = "share"
S_DEFAULT = ShareConfig.make()


def set_share_state(cfg: ShareConfig) -> None:
    """Put ``cfg`` into the sharing form's widgets (before they are drawn)."""
    s = st.session_state
    s[f"{S}.family"] = cfg.family
    s[f"{S}.variants.{cfg.family}"] = list(cfg.variants)
    s[f"{S}.combine"] = cfg.combine
    s[f"{S}.optimizer"] = cfg.optimizer.name
    s[f"{S}.lr.{cfg.optimizer.name}"] = cfg.optimizer.lr
    s[f"{S}.schedule"] = cfg.schedule.name
    s[f"{S}.epochs"], s[f"{S}.batch_size"] = cfg.epochs, cfg.batch_size
    s[f"{S}.seeds"] = ",".join(map(str, cfg.seeds))
    s[f"{S}.width"], s[f"{S}.depth"] = cfg.width, cfg.depth


def _parse_share(flat: dict[str, Any]) -> ShareConfig:
    # A partial link naming another family got the default family's variants from the defaults
    # (binding.with_defaults): they are not that family's, so it gets all of its own.
    if flat.get("family") != S_DEFAULT.family and flat.get("variants") == ",".join(S_DEFAULT.variants):
        flat = {k: v for k, v in flat.items() if k != "variants"}
    return ShareConfig.from_dict(flat)


SHARE = Binding(
    S, _parse_share, S_DEFAULT, set_share_state,
    probes=(f"{S}.family", f"{S}.seeds", f"{S}.optimizer"), views=(TAB,), noun="sharing experiment",
)
COMBINE = {"equal": "equal weights (sum the task losses)", "pcgrad": "PCGrad (project conflicting gradients)"}


def share_inputs() -> dict[str, Any]:
    """The family and its variants (main area), the trunk's gradient rule, and the setup (sidebar)."""
    seed_state(f"{S}.family", S_DEFAULT.family)
    cols = st.columns([2, 3])
    family = cols[0].selectbox("what is shared", list(FAMILIES), key=f"{S}.family", format_func=lambda n: FAMILIES[n].label)
    spec = FAMILIES[family]
    seed_state(f"{S}.variants.{family}", list(spec.variants))
    variants = cols[1].multiselect(
        "variants", list(spec.variants), key=f"{S}.variants.{family}", format_func=lambda n: get_variant(n).label,
        help="each trains with the same seeds, optimizer and budget",
    )
    st.caption(spec.description + "  \n" + "  \n".join(
        f"**{get_variant(v).label}**: {get_variant(v).description}" for v in spec.variants
    ))
    combine = "equal"
    if spec.combines:
        seed_state(f"{S}.combine", "equal")
        combine = st.segmented_control(
            "the trunk's gradient", list(COMBINE), key=f"{S}.combine", format_func=COMBINE.get, required=True,
            help="how the two tasks' gradients are combined on the shared trunk (the heads take their own task's)",
        )
    with st.sidebar:
        st.header("Model and budget")
        for key, value in ((f"{S}.width", S_DEFAULT.width), (f"{S}.depth", S_DEFAULT.depth),
                           (f"{S}.epochs", S_DEFAULT.epochs), (f"{S}.batch_size", S_DEFAULT.batch_size),
                           (f"{S}.seeds", ",".join(map(str, S_DEFAULT.seeds)))):
            seed_state(key, value)
        width = st.number_input("width", min_value=2, max_value=1024, step=1, key=f"{S}.width",
                                help="the autoencoder's code size; the MLPs' and the trunk's hidden width")
        depth = st.number_input("depth", min_value=1, max_value=32, step=1, key=f"{S}.depth",
                                help="hidden layers of the deep MLP and of the multi-task trunk")
        epochs = st.number_input("epochs", min_value=1, max_value=10_000, step=1, key=f"{S}.epochs")
        batch = st.number_input("batch size", min_value=1, step=1, key=f"{S}.batch_size")
        seeds = st.text_input("seeds", key=f"{S}.seeds", help="comma-separated; each variant trains once per seed")
        optimizer = one_optimizer(f"{S}.", help="every variant trains with it")
        seed_state(f"{S}.schedule", S_DEFAULT.schedule.name)
        schedule = st.selectbox("learning-rate schedule", list(SCHEDULES), key=f"{S}.schedule",
                                format_func=lambda n: SCHEDULES[n].label)
    return {
        "family": family, "variants": variants, "combine": combine, "optimizer": optimizer,
        "schedule": {"name": schedule}, "epochs": epochs, "batch_size": batch, "seeds": seeds,
        "width": width, "depth": depth,
    }


def build_share(values: dict[str, Any]) -> ShareConfig:
    """Validate the sharing form; raises :class:`ConfigError` naming the field."""
    if not values["variants"]:
        raise ConfigError("variants: choose at least one variant")
    return ShareConfig.make(**values)


def other_combine(cfg: ShareConfig) -> ShareConfig:
    """The same multi-task experiment with the trunk's other gradient rule."""
    return cfg.model_copy(update={"combine": "pcgrad" if cfg.combine == "equal" else "equal"})

