"""The LR sensitivity page's form: widgets -> SweepConfig, with the config mirrored in the URL.

The URL carries ``SweepConfig.to_dict()``'s flat keys, except that each optimizer is written
without a learning rate (the sweep sets it), so a copied link reproduces a sweep.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dlopt_core.catalog.optimizers import OPTIMIZERS, get_optimizer
from dlopt_core.config import ConfigError, OptimizerConfig
from dlopt_core.experiments.compare import metric_name
from dlopt_core.experiments.sweep import SweepConfig
from dlopt_core.plots import lr_text
from dlopt_core.plots.sensitivity import SweepMetric
from ui.optimizer_slots import optimizer_label
from ui.compare_form import set_setup_state, setup_widgets, step_options
from ui.binding import Binding, ViewKey
from ui.widgets import seed_state

PREFIX = "sweep"
DEFAULT = SweepConfig.make(
    optimizers=(
        OptimizerConfig.make(name="sgd"),
        OptimizerConfig.make(name="momentum"),
        OptimizerConfig.make(name="adam"),
    ),
)
METRIC_KEY = f"{PREFIX}.view.metric"
_PARAMS = f"{PREFIX}.optimizer_params"  # hyperparameters a link gave, per optimizer name


def set_state(cfg: SweepConfig) -> None:
    """Put ``cfg`` into the widgets' session state (before they are drawn)."""
    s = st.session_state
    set_setup_state(f"{PREFIX}.", cfg)
    s[f"{PREFIX}.optimizers"] = [o.name for o in cfg.optimizers]
    s[_PARAMS] = {o.name: dict(o.params) for o in cfg.optimizers}
    s[f"{PREFIX}.lr_min"], s[f"{PREFIX}.lr_max"] = cfg.lr_min, cfg.lr_max
    s[f"{PREFIX}.points"] = cfg.points
    s[f"{PREFIX}.seeds"] = ",".join(map(str, cfg.seeds))
    s["engine"] = cfg.engine


def url_dict(cfg: SweepConfig) -> dict[str, Any]:
    """The config's flat keys, optimizers written without the lr the sweep replaces."""
    flat = cfg.to_dict()
    flat["optimizer"] = [f"{o.name}:{','.join(o.changed())}" if o.changed() else o.name for o in cfg.optimizers]
    return flat


BINDING = Binding(
    PREFIX, SweepConfig.from_dict, DEFAULT, set_state, probes=(f"{PREFIX}.dataset",), noun="sweep",
    views=(ViewKey("show", METRIC_KEY, ("loss", "metric")),), to_url=url_dict,
)


def setup_sidebar() -> dict[str, Any]:
    """Data, model, schedule, budget and step options; returns the raw values."""
    with st.sidebar:
        setup = setup_widgets(
            f"{PREFIX}.", epochs=DEFAULT.epochs, batch_size=DEFAULT.batch_size or 64,
            schedule_help="applied to every learning rate of the grid (a step decay halves each of them)",
        )
        step = step_options()
    return {**setup, **step}


def _optimizer_label(name: str) -> str:
    return optimizer_label(name, st.session_state.get(_PARAMS, {}))


def grid_inputs() -> dict[str, Any]:
    """Which optimizers, the lr range, the number of points and the seeds; returns the raw values."""
    seed_state(f"{PREFIX}.optimizers", [o.name for o in DEFAULT.optimizers])
    names = st.multiselect(
        "optimizers", list(OPTIMIZERS), key=f"{PREFIX}.optimizers", format_func=_optimizer_label,
        help="each trains at every learning rate of the grid, its other hyperparameters at their defaults",
    )
    seed_state(f"{PREFIX}.lr_min", DEFAULT.lr_min)
    seed_state(f"{PREFIX}.lr_max", DEFAULT.lr_max)
    seed_state(f"{PREFIX}.points", DEFAULT.points)
    seed_state(f"{PREFIX}.seeds", ",".join(map(str, DEFAULT.seeds)))
    cols = st.columns(4)
    # No widget bounds on the rates: SweepConfig checks them and its message says what is allowed.
    lr_min = cols[0].number_input(
        "lowest lr", key=f"{PREFIX}.lr_min", format="%g", step=1e-4,
        help="the grid's first learning rate; type e.g. 1e-5",
    )
    lr_max = cols[1].number_input(
        "highest lr", key=f"{PREFIX}.lr_max", format="%g", step=0.1,
        help="the grid's last learning rate; type e.g. 10",
    )
    points = cols[2].number_input(
        "points", min_value=2, max_value=64, step=1, key=f"{PREFIX}.points",
        help="learning rates, evenly spaced on a log scale, each to 3 significant digits",
    )
    seeds = cols[3].text_input(
        "seeds", key=f"{PREFIX}.seeds", help="comma-separated; each seed is one more run per lr (a band)",
    )
    params = st.session_state.get(_PARAMS, {})
    optimizers = [{"name": n, "params": params.get(n, {})} for n in names]
    return {"optimizers": optimizers, "lr_min": lr_min, "lr_max": lr_max, "points": points, "seeds": seeds}


def build_config(setup: dict[str, Any], grid: dict[str, Any]) -> SweepConfig:
    """Validate the form; raises :class:`ConfigError` with the field and what is allowed."""
    if not grid["optimizers"]:
        raise ConfigError("optimizers: choose at least one optimizer to sweep")
    cfg = SweepConfig.make(**setup, **grid)
    # Some checks live on the single run (L-BFGS with fp16, ...). Two lrs and one seed per
    # optimizer cover them without building every run of the grid on each rerun.
    cfg.model_copy(update={"points": 2, "seeds": cfg.seeds[:1]}).runs()
    return cfg


def grid_caption(cfg: SweepConfig) -> str:
    """How many runs, and the learning rates as they will train (3 significant digits)."""
    lrs = [lr_text(lr) for lr in cfg.lrs()]
    n_runs = len(cfg.optimizers) * cfg.points * len(cfg.seeds)
    shown = ", ".join(lrs) if len(lrs) <= 16 else f"{', '.join(lrs[:8])}, …, {', '.join(lrs[-4:])}"
    return (
        f"{len(cfg.optimizers)} optimizers × {cfg.points} learning rates × {len(cfg.seeds)} seeds = "
        f"**{n_runs:,} runs**. Learning rates: {shown}."
    )


def metric_toggle(cfg: SweepConfig | None) -> SweepMetric:
    """Loss or accuracy/R² on the y axis."""
    seed_state(METRIC_KEY, "loss")
    labels = {"loss": "validation loss", "metric": metric_name(cfg or DEFAULT)}
    return st.segmented_control("show", list(labels), key=METRIC_KEY, format_func=labels.get, required=True)


def full_batch_note(grid: dict[str, Any]) -> None:
    """Say which chosen optimizers train on the full batch whatever the batch size."""
    if st.session_state.get(f"{PREFIX}.full_batch"):
        return
    specs = [get_optimizer(o["name"]) for o in grid["optimizers"]]
    if full := sorted(spec.label for spec in specs if spec.full_batch_only):
        st.caption(f"{', '.join(full)} {'trains' if len(full) == 1 else 'train'} on the full batch (full-batch only).")
