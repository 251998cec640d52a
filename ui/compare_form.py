"""The Compare page's form: widgets -> ComparisonConfig, with the config mirrored in the URL.

The URL carries the same flat keys as ``ComparisonConfig.to_dict()`` (optimizers as
``name:lr=...`` specs, as on the command line), so a copied link reproduces a comparison.
"""

from __future__ import annotations

from typing import Any, get_args

import streamlit as st

from dlopt_core.config import ComparisonConfig, Device, EngineChoice, OptimizerConfig, Precision, TrainingSetup, param_specs
from dlopt_core.catalog.augmentations import AUGMENTATIONS, check_fits
from dlopt_core.catalog.datasets import DATASETS, get_dataset_spec
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS, get_optimizer
from dlopt_core.catalog.schedules import SCHEDULES, get_schedule
from ui.binding import Binding, ViewKey
from ui.optimizer_slots import optimizer_slots, set_slots, stacked_latex
from ui.widgets import (
    code_span, loadable_dataset, lr_input, param_input, seed_state, uploaded_datasets,
)

DEFAULT = ComparisonConfig.make(
    optimizers=(
        OptimizerConfig.make(name="sgd", lr=0.1),
        OptimizerConfig.make(name="momentum"),
        OptimizerConfig.make(name="adam"),
    ),
    epochs=10,
)
PREFIX = "compare"
# The setup's widgets from first to last drawn: if Streamlit dropped any one's state, the page
# puts back its last settings, never a selectbox's first option.
SETUP_PROBES = ("dataset", "model", "schedule", "epochs")
# The Compare page's sidebar draws seeds and the engine last: a watching tab under load once kept
# the four above and lost these and the optimizer boxes (a blank seeds box, lr 0, no engine).
PAGE_PROBES = (*SETUP_PROBES, "seeds", "engine")


def refill_blank(key: str, default: Any) -> None:
    """Give a widget back its last valid value (this page's link) when its state came back blank.

    Under load a watching tab's seeds box came back empty and its engine with no value (the
    control has no empty choice) while the other widgets kept theirs: its form was invalid, so it
    never saw its job end (the Compare Stop tests' failure reports, several runs).
    """
    if st.session_state.get(key) in (None, ""):
        st.session_state[key] = st.session_state.get(f"{PREFIX}._last", {}).get(key, default)


def set_setup_state(prefix: str, cfg: TrainingSetup) -> None:
    """Put ``cfg``'s setup into the widgets of :func:`setup_widgets` (keys under ``prefix``) and
    of :func:`step_options`, before they are drawn."""
    s = st.session_state
    s[f"{prefix}dataset"] = cfg.data.name
    for k, v in cfg.data.options.items():
        s[f"{prefix}dataset.{cfg.data.name}.{k}"] = v
    s[f"{prefix}model"] = cfg.model.name
    for p in param_specs(cfg.model):
        value = cfg.model.params[p.name]
        s[f"{prefix}model.{cfg.model.name}.{p.name}"] = p.text(value) if p.kind == "ints" else value
    s[f"{prefix}schedule"] = cfg.schedule.name
    for k, v in cfg.schedule.params.items():
        s[f"{prefix}schedule.{cfg.schedule.name}.{k}"] = v
    s[f"{prefix}epochs"] = cfg.epochs
    s[f"{prefix}augment"] = [a.name for a in cfg.augment]
    s[f"{prefix}augment_params"] = {a.name: dict(a.params) for a in cfg.augment}
    s[f"{prefix}reduce"] = cfg.reduce.name if cfg.reduce else "none"
    if cfg.reduce:
        for k, v in cfg.reduce.params.items():
            s[f"{prefix}reduce.{cfg.reduce.name}.{k}"] = v
    s[f"{prefix}full_batch"] = cfg.batch_size is None
    s[f"{prefix}batch_size"] = cfg.batch_size or 64
    # The step options' widgets are shared by every page (step_options), keys and all.
    s["device"], s["precision"] = cfg.device, cfg.precision
    s["grad_clip"], s["deterministic"] = cfg.grad_clip or 0.0, cfg.deterministic


def set_state(cfg: ComparisonConfig) -> None:
    """Put ``cfg`` into the widgets' session state (before they are drawn)."""
    s = st.session_state
    set_setup_state("", cfg)
    s["seeds"] = ",".join(map(str, cfg.seeds))
    s["target_loss"] = cfg.target_loss
    s["engine"] = cfg.engine
    set_slots(PREFIX, cfg.optimizers)


BINDING = Binding(
    PREFIX, ComparisonConfig.from_dict, DEFAULT, set_state, probes=PAGE_PROBES, noun="comparison",
    views=(
        ViewKey("x", "view.x", ("epoch", "step", "grad_evals", "samples", "wall_time")),
        ViewKey("log_y", "view.log_y", (False, True)),
        ViewKey("band", "view.band", ("minmax", "sd")),
    ),
)


def setup_widgets(
    prefix: str = "", *, epochs: int = 10, batch_size: int = 64, schedule_help: str | None = None,
    data_options: bool = True,
) -> dict[str, Any]:
    """Data, model, schedule and budget widgets (keys under ``prefix``); returns the raw values.

    Shared by every page that trains: each page keeps its own keys, so its settings stay its own.
    ``data_options``: also augmentation and data reduction (the Data page has its own).
    """
    def key(name: str) -> str:
        return f"{prefix}{name}"

    st.header("Setup")
    offered = [*DATASETS, *uploaded_datasets()]
    linked = st.session_state.get(key("dataset"))
    if linked not in offered and loadable_dataset(linked):  # an upload a link or a past search named
        offered.append(linked)
    dataset = st.selectbox(
        "data set", offered, key=key("dataset"),
        format_func=lambda n: get_dataset_spec(n).label,
        help="scikit-learn's bundled sets, generated ones, and the CSV files this session uploaded (Data page)",
    )
    spec = get_dataset_spec(dataset)
    if dataset in DATASETS:
        st.caption(f"{spec.description}  \n**What it shows:** {spec.shows}")
    else:  # an upload's description holds the file's own text: shown as typed, never as Markdown
        st.caption(code_span(spec.description))
    options = {}
    if spec.hyperparams:
        with st.expander("data set options"):
            options = {p.name: param_input(p, key(f"dataset.{dataset}.{p.name}")) for p in spec.hyperparams}
    model = st.selectbox("model", list(MODELS), key=key("model"), format_func=lambda n: MODELS[n].label)
    st.caption(MODELS[model].description)
    model_params = {p.name: param_input(p, key(f"model.{model}.{p.name}")) for p in MODELS[model].hyperparams}
    schedule = st.selectbox(
        "learning-rate schedule", list(SCHEDULES), key=key("schedule"),
        format_func=lambda n: SCHEDULES[n].label, help=schedule_help,
    )
    sched_spec = get_schedule(schedule)
    st.caption(f"{sched_spec.description}  \n**When it shines:** {sched_spec.shines}")
    with st.popover("lr formula", use_container_width=True):  # wider than the sidebar
        st.latex(stacked_latex(sched_spec.formula))
        st.caption("η₀: each optimizer's lr; t: the optimizer step; T: the steps in the budget.")
    sched_params = {p.name: param_input(p, key(f"schedule.{schedule}.{p.name}")) for p in sched_spec.hyperparams}
    st.subheader("Budget")
    seed_state(key("epochs"), epochs)
    n_epochs = st.number_input("epochs", min_value=1, max_value=10_000, step=1, key=key("epochs"))
    seed_state(key("full_batch"), False)
    full = st.checkbox(
        "full batch (gradient descent)", key=key("full_batch"),
        help="every step sees the whole train set: mini-batch SGD becomes full-batch GD",
    )
    seed_state(key("batch_size"), batch_size)
    batch = None if full else st.number_input("batch size", min_value=1, step=1, key=key("batch_size"))
    values = {
        "data": {"name": dataset, "options": options},
        "model": {"name": model, "params": model_params},
        "schedule": {"name": schedule, "params": sched_params},
        "epochs": n_epochs,
        "batch_size": batch,
    }
    if data_options:
        with st.expander("augmentation and data reduction"):
            values.update(_data_option_widgets(prefix, spec))
    return values


def _data_option_widgets(prefix: str, spec: Any) -> dict[str, Any]:
    """Augmentations (their settings as a link gave them, else the defaults; the Data page shows
    each) and one reduction of the training data with its settings."""
    images, classification = spec.image_shape is not None, spec.task == "classification"
    names = [n for n in AUGMENTATIONS if check_fits(n, images=images, classification=classification) is None]
    seed_state(f"{prefix}augment", [])
    # A link may name an augmentation this data set cannot take: it is not offered, and dropped.
    st.session_state[f"{prefix}augment"] = [n for n in st.session_state[f"{prefix}augment"] if n in names]
    chosen = st.multiselect(
        "augment each batch with", names, key=f"{prefix}augment", format_func=lambda n: AUGMENTATIONS[n].label,
        help="in this order, each at the settings the link gave or its defaults (try them on the Data page)",
    )
    given = st.session_state.get(f"{prefix}augment_params", {})
    reductions = ["none", *(n for n, r in REDUCTIONS.items() if classification or not r.classification_only)]
    seed_state(f"{prefix}reduce", "none")
    if st.session_state[f"{prefix}reduce"] not in reductions:
        st.session_state[f"{prefix}reduce"] = "none"
    reduce = st.selectbox(
        "shrink the training data", reductions, key=f"{prefix}reduce",
        format_func=lambda n: "no: all of it" if n == "none" else REDUCTIONS[n].label,
        help="the validation set stays whole; compare the methods on the Data page",
    )
    params = {} if reduce == "none" else {
        p.name: param_input(p, f"{prefix}reduce.{reduce}.{p.name}") for p in REDUCTIONS[reduce].hyperparams
    }
    return {
        "augment": [{"name": n, "params": given.get(n, {})} for n in chosen],
        "reduce": None if reduce == "none" else {"name": reduce, "params": params},
    }


def one_optimizer(prefix: str, *, help: str, hyperparams: bool = False) -> dict[str, Any]:
    """The one optimizer of a page whose variants all train alike (keys under ``prefix``):
    its name, lr (Adam starts at 0.003) and, with ``hyperparams``, its other settings."""
    st.header("Optimizer")
    seed_state(f"{prefix}optimizer", "adam")
    name = st.selectbox(
        "optimizer", list(OPTIMIZERS), key=f"{prefix}optimizer", format_func=lambda n: OPTIMIZERS[n].label, help=help,
    )
    spec = get_optimizer(name)
    lr = lr_input(f"{prefix}lr.{name}", 0.003 if name == "adam" else spec.default_lr, spec.lr_range)
    chosen: dict[str, Any] = {"name": name, "lr": lr}
    if hyperparams:
        chosen["params"] = {p.name: param_input(p, f"{prefix}opt.{name}.{p.name}") for p in spec.hyperparams}
    return chosen


def schedule_note(config: TrainingSetup | None) -> None:
    """A non-blocking warning when the schedule cannot act within the budget (both training pages)."""
    if config is not None and (note := config.schedule_note):
        st.warning(f"Schedule: {note}", icon=":material/info:")


def setup_sidebar() -> dict[str, Any]:
    """The Compare page's sidebar: the shared setup, seeds, a target loss and the step options."""
    with st.sidebar:
        setup = setup_widgets()
        refill_blank("seeds", ",".join(map(str, DEFAULT.seeds)))
        seeds = st.text_input("seeds", key="seeds", help="comma-separated; several seeds draw a band")
        target = st.number_input(
            "target train loss", min_value=0.0, key="target_loss", format="%g", placeholder="auto",
            help=(
                "the results table reports the steps each optimizer takes to reach it. Empty: 90 % of "
                "the way from the start to the optimum (linear models), else to the lowest loss any run reached"
            ),
        )
        step = step_options()
    return {**setup, "seeds": seeds, "target_loss": target or None, **step}


def step_options(*, engine: bool = True) -> dict[str, Any]:
    """Device, precision, clipping and determinism: how each step runs; ``engine``: also the
    batched/sequential choice (pages whose runs train one at a time leave it out)."""
    seed_state("device", "auto")
    seed_state("precision", "fp32")
    seed_state("grad_clip", 0.0)
    seed_state("deterministic", True)
    seed_state("engine", "auto")
    refill_blank("engine", "auto")
    with st.expander("device, precision and engine"):
        device = st.selectbox("device", list(get_args(Device)), key="device", help="auto: CUDA, then MPS, then CPU")
        precision = st.selectbox(
            "precision", list(get_args(Precision)), key="precision",
            help="mixed precision through autocast; fp16 adds loss scaling",
        )
        clip = st.number_input(
            "clip gradient norm", min_value=0.0, key="grad_clip", format="%g", help="0: no clipping",
        )
        deterministic = st.checkbox(
            "reproducible on GPU", key="deterministic",
            help="on CUDA, deterministic kernels (the same seed gives the same curves); off: the fastest "
            "kernels. CPU runs are reproducible either way.",
        )
        if not engine:
            return {"device": device, "precision": precision, "grad_clip": clip or None, "deterministic": deterministic}
        choice = st.segmented_control(
            "engine", list(get_args(EngineChoice)), key="engine", required=True,
            help="batched: runs of one model shape train as one stacked model in one pass (the same "
            "curves, several times faster); auto: batched for 2 or more such runs; sequential: one "
            "run after another. L-BFGS, Muon, the CNN and fp16 always train on their own.",
        )
    return {
        "device": device, "precision": precision, "grad_clip": clip or None,
        "deterministic": deterministic, "engine": choice,
    }


def optimizer_boxes() -> list[dict[str, Any]]:
    """The optimizer boxes, and a note when some of them train on the full batch."""
    chosen = optimizer_slots(PREFIX)
    if not st.session_state.get("full_batch"):
        full = [OPTIMIZERS[c["name"]].label for c in chosen if OPTIMIZERS[c["name"]].full_batch_only]
        if full:
            names = sorted(set(full))
            verb = "trains" if len(names) == 1 else "train"
            others = "; the others use the batch size" if len(full) < len(chosen) else ""
            st.caption(f"{', '.join(names)} {verb} on the full batch (full-batch only){others}.")
    return chosen


def build_config(setup: dict[str, Any], optimizers: list[dict[str, Any]]) -> ComparisonConfig:
    """Validate the form; raises :class:`ConfigError` with the field and what is allowed."""
    opts = tuple({k: v for k, v in o.items() if k != "uid"} for o in optimizers)
    return ComparisonConfig.make(**setup, optimizers=opts)
