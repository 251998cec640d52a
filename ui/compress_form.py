"""The Compression page's form: the baseline's setup (trained here, or a finished run's weights),
the methods with their settings, and the sweep, turned into a :class:`CompressionConfig`."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dlopt_core.compression.methods import COMPRESSIONS, get_compression
from dlopt_core.config import ConfigError, ModelConfig, RunConfig
from dlopt_core.experiments.compress.baseline import check_methods
from dlopt_core.experiments.compress.config import CompressionConfig, MethodConfig
from ui.compare_form import SETUP_PROBES, one_optimizer, set_setup_state, setup_widgets, step_options
from tracking.weights import RunWeights
from ui.binding import Binding
from ui.run_weights import pick_run_weights
from ui.widgets import code_span, param_input, seed_state

PREFIX = "compress"
DEFAULT = CompressionConfig.make(
    model=ModelConfig.parse("mlp:hidden=128"),
    optimizer={"name": "adam", "lr": 0.003},
    epochs=20,
    methods=[
        MethodConfig.parse(text) for text in (
            "prune_unstructured:sparsity=0.5", "prune_structured:sparsity=0.5", "quantize_int8_dynamic",
            "quantize_int8_weight", "fp16", "distill:student=mlp:hidden=32",
        )
    ],
    sparsities=(0.25, 0.5, 0.75, 0.9),
)
_METHODS = f"{PREFIX}.methods"
_STUDENT = f"{PREFIX}.student"
_SOURCE = f"{PREFIX}.baseline"
_RUN = f"{PREFIX}.baseline_run"


def _method_key(name: str, param: str) -> str:
    return f"{PREFIX}.method.{name}.{param}"


def set_state(cfg: CompressionConfig) -> None:
    """Put ``cfg`` into the widgets' session state, before they are drawn."""
    s = st.session_state
    set_setup_state(f"{PREFIX}.", cfg)
    s[f"{PREFIX}.optimizer"] = cfg.optimizer.name
    s[f"{PREFIX}.lr.{cfg.optimizer.name}"] = cfg.optimizer.lr
    for k, v in cfg.optimizer.params.items():
        s[f"{PREFIX}.opt.{cfg.optimizer.name}.{k}"] = v
    s[_METHODS] = [m.name for m in cfg.methods]
    for m in cfg.methods:
        for k, v in m.params.items():
            s[_method_key(m.name, k)] = v
        if m.student is not None:
            s[_STUDENT] = m.student.to_spec()
    s[f"{PREFIX}.sparsities"] = ",".join(f"{v:g}" for v in cfg.sparsities)
    s[f"{PREFIX}.sensitivity"] = cfg.sensitivity_sparsity is not None
    s[f"{PREFIX}.sensitivity_sparsity"] = cfg.sensitivity_sparsity if cfg.sensitivity_sparsity is not None else 0.5
    s[f"{PREFIX}.compile"], s[f"{PREFIX}.latency_repeats"] = cfg.compile, cfg.latency_repeats
    s[f"{PREFIX}.seed"] = cfg.seed


BINDING = Binding(
    PREFIX, CompressionConfig.from_dict, DEFAULT, set_state, probes=tuple(f"{PREFIX}.{k}" for k in SETUP_PROBES),
    noun="compression",
)


def setup_sidebar() -> dict[str, Any]:
    """The baseline's data, model, schedule, budget, step options and its one optimizer."""
    with st.sidebar:
        setup = setup_widgets(f"{PREFIX}.", epochs=20, schedule_help="the baseline trains with it")
        step = step_options(engine=False)
        optimizer = one_optimizer(f"{PREFIX}.", help="trains the baseline, and any fine-tuning or student", hyperparams=True)
    return {**setup, **step, "optimizer": optimizer}


def baseline_source() -> RunWeights | None | bool:
    """Train the baseline here (``None``), or a finished run's weights (its :class:`RunWeights`;
    ``False`` while none is chosen or it cannot be loaded, with the reason on the page)."""
    seed_state(_SOURCE, "here")
    source = st.segmented_control(
        "baseline", ["here", "run"], key=_SOURCE, required=True,
        format_func={"here": "train it here (the sidebar's setup)", "run": "a finished run's weights"}.get,
    )
    if source == "here":
        return None
    weights = pick_run_weights(_RUN, help="newest first; its data set, model and optimizer become the baseline's setup")
    if weights is False:
        return False
    st.caption(f"Setup from the run: {code_span(weights.config.model.to_spec())} on "
               f"{code_span(weights.config.data.name)}, trained with {code_span(weights.config.optimizer.name)} "
               "(the sidebar's setup is not used).")
    return weights


def method_inputs() -> list[dict[str, Any]]:
    """The chosen methods, each with its settings (and distillation's student)."""
    seed_state(_METHODS, [m.name for m in DEFAULT.methods])
    chosen = st.multiselect(
        "methods", list(COMPRESSIONS), key=_METHODS, format_func=lambda n: COMPRESSIONS[n].label,
        help="each is applied to the same trained baseline and measured the same way",
    )
    out = []
    for name in chosen:
        spec = get_compression(name)
        values: dict[str, Any] = {}
        student = None
        if spec.hyperparams or spec.needs_student:
            with st.expander(f"{spec.label}: settings"):
                st.caption(spec.description)
                if spec.needs_student:
                    seed_state(_STUDENT, "mlp:hidden=32")
                    student = st.text_input(
                        "student model", key=_STUDENT,
                        help="a smaller model of the registry, e.g. mlp:hidden=32 (fewer parameters than the baseline)",
                    )
                cols = st.columns(3)
                for i, p in enumerate(spec.hyperparams):
                    with cols[i % 3]:
                        values[p.name] = param_input(p, _method_key(name, p.name))
        out.append({"name": name, "params": values, "student": student})
    return out


def sweep_inputs() -> dict[str, Any]:
    """The sparsities swept, the per-layer sensitivity and how latency is measured."""
    seed_state(f"{PREFIX}.sparsities", ",".join(f"{v:g}" for v in DEFAULT.sparsities))
    seed_state(f"{PREFIX}.sensitivity", True)
    seed_state(f"{PREFIX}.sensitivity_sparsity", 0.5)
    seed_state(f"{PREFIX}.compile", False)
    seed_state(f"{PREFIX}.latency_repeats", DEFAULT.latency_repeats)
    seed_state(f"{PREFIX}.seed", DEFAULT.seed)
    cols = st.columns(2)
    sparsities = cols[0].text_input(
        "also prune at sparsities", key=f"{PREFIX}.sparsities",
        help="comma-separated shares in [0, 1): each pruning method also runs at each (the accuracy-vs-sparsity curves)",
    )
    repeats = cols[1].number_input(
        "timed batches per latency", min_value=3, max_value=1000, step=1, key=f"{PREFIX}.latency_repeats",
        help="latency is the median of this many timed forward passes, after warm-up",
    )
    cols = st.columns(2)
    sensitivity = cols[0].toggle("per-layer sensitivity", key=f"{PREFIX}.sensitivity",
                                 help="the accuracy with only one layer pruned (or int8-quantized): which layers to keep")
    at = cols[0].number_input("at sparsity", min_value=0.0, max_value=0.99, step=0.05, key=f"{PREFIX}.sensitivity_sparsity",
                              disabled=not sensitivity)
    compile_ = cols[1].toggle("also time torch.compile'd models", key=f"{PREFIX}.compile",
                              help="compiling takes seconds per variant on this CPU")
    seed = cols[1].number_input("seed", min_value=0, max_value=2**31 - 1, step=1, key=f"{PREFIX}.seed",
                                help="the baseline's initial weights and batches; students and fine-tuning use it too")
    return {"sparsities": sparsities, "latency_repeats": int(repeats), "compile": compile_,
            "sensitivity_sparsity": at if sensitivity else None, "seed": int(seed)}


def build_config(setup: dict[str, Any], methods: list[dict[str, Any]], sweep: dict[str, Any]) -> CompressionConfig:
    """Validate; raises :class:`ConfigError` with the field and what is allowed."""
    if not methods:
        raise ConfigError("methods: choose at least one way to compress the baseline")
    made = []
    for m in methods:
        try:
            student = ModelConfig.parse(m["student"]) if m["student"] is not None else None
        except ConfigError as err:
            raise ConfigError(f"{m['name']}.student: {err}") from None
        made.append(MethodConfig.make(name=m["name"], params=m["params"], student=student))
    return CompressionConfig.make(**setup, methods=made, **sweep)


def baseline_setup(cfg: CompressionConfig, weights: RunWeights) -> CompressionConfig:
    """``cfg`` with the setup of the finished run whose weights are the baseline."""
    fields = set(RunConfig.model_fields) - {"device"}  # where it trained need not be here: the sidebar's
    return CompressionConfig.make(**{
        **cfg.model_dump(exclude=fields), **weights.config.model_dump(include=fields), "baseline_run": weights.run_id,
    })


@st.cache_resource(max_entries=16, show_spinner=False)
def _problem(key: str, _config: CompressionConfig, _state: Any) -> ConfigError | ValueError | None:
    # Keyed by the config's hash (the baseline run is part of it): a widget elsewhere on the page
    # changing does not load the data and build the model again.
    try:
        check_methods(_config, baseline_state=_state)
    except (ConfigError, ValueError) as err:
        return err
    return None


def check(config: CompressionConfig, baseline_state: Any) -> None:
    """Raise what :func:`check_methods` raises for ``config``, checked once per config."""
    if (problem := _problem(config.key(), config, baseline_state)) is not None:
        raise type(problem)(*problem.args)
