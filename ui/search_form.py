"""The LR search page's form: widgets -> SearchConfig, with the config mirrored in the URL,
and the LR range test that sets an optimizer's search bounds in one click.

The URL carries ``SearchConfig.to_dict()``'s flat keys (optimizers as specs, bounds
comma-joined in their order) plus ``workers``, so a copied link reproduces a search.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.config import ConfigError, OptimizerConfig
from dlopt_core.experiments.lr_range import SUGGESTION_LABELS, SUGGESTIONS, LRRangeConfig, LRRangeWork, range_key
from dlopt_core.experiments.search import PastSearch, SearchConfig
from dlopt_core.experiments.study.config import METRICS, PRUNERS, SAMPLERS, StudyConfig
from dlopt_core.plots import lr_range_figure, lr_text
from ui.optimizer_slots import optimizer_label
from ui.compare_form import set_setup_state, setup_widgets, step_options
from ui.binding import Binding, ViewKey
from dlopt_core.runner.work import Job
from ui.kit import attach_or_start, find, live_job, problems, progress
from ui.status import may_stop, started
from ui.widgets import seed_state

PREFIX = "search"
DEFAULT = SearchConfig.make(
    optimizers=(OptimizerConfig.make(name="sgd"), OptimizerConfig.make(name="adam")), epochs=3, n_trials=12,
)
WORKERS_KEY = f"{PREFIX}.workers"
MAX_WORKERS = 4
_PARAMS = f"{PREFIX}.optimizer_params"  # hyperparameters a link gave, per optimizer name
SAMPLER_LABELS = {
    "tpe": "TPE", "random": "random", "grid": "grid over log-lr", "qmc": "quasi-Monte Carlo",
    "cmaes": "CMA-ES",
}
PRUNER_LABELS = {"none": "none", "median": "median", "hyperband": "Hyperband (successive halving)"}
METRIC_LABELS = {"val_loss": "validation loss (minimise)", "val_metric": "validation accuracy / R² (maximise)"}


def _bound_keys(name: str) -> tuple[str, str]:
    return f"{PREFIX}.lr_min.{name}", f"{PREFIX}.lr_max.{name}"


def set_state(cfg: SearchConfig) -> None:
    """Put ``cfg`` into the widgets' session state (before they are drawn)."""
    s = st.session_state
    set_setup_state(f"{PREFIX}.", cfg)
    s[f"{PREFIX}.optimizers"] = [o.name for o in cfg.optimizers]
    s[_PARAMS] = {o.name: dict(o.params) for o in cfg.optimizers}
    for opt, (low, high) in zip(cfg.optimizers, cfg.bounds()):
        s[_bound_keys(opt.name)[0]], s[_bound_keys(opt.name)[1]] = low, high
    for field in ("sampler", "pruner", "n_trials", "metric", "seed", "search_hyperparams", "search_schedule", "search_batch_size"):
        s[f"{PREFIX}.{field}"] = getattr(cfg, field)


BINDING = Binding(
    PREFIX, SearchConfig.from_dict, DEFAULT, set_state, probes=(f"{PREFIX}.dataset",), noun="search",
    views=(ViewKey("workers", WORKERS_KEY, tuple(range(1, MAX_WORKERS + 1))),),
)


def setup_sidebar() -> dict[str, Any]:
    """Data, model, schedule, budget and step options; returns the raw values."""
    with st.sidebar:
        setup = setup_widgets(
            f"{PREFIX}.", epochs=DEFAULT.epochs, batch_size=DEFAULT.batch_size or 64,
            schedule_help="every trial trains with it (unless the schedule is searched too)",
        )
        step = step_options(engine=False)
    return {**setup, **step}


def _optimizer_label(name: str) -> str:
    return optimizer_label(name, st.session_state.get(_PARAMS, {}))


def _default_bounds(name: str) -> tuple[float, float]:
    study = StudyConfig.make(optimizer=OptimizerConfig.make(name=name))
    return study.lr_min, study.lr_max  # type: ignore[return-value]


def optimizer_inputs() -> dict[str, Any]:
    """Which optimizers, and each one's search range; returns the raw values."""
    seed_state(f"{PREFIX}.optimizers", [o.name for o in DEFAULT.optimizers])
    names = st.multiselect(
        "optimizers", list(OPTIMIZERS), key=f"{PREFIX}.optimizers", format_func=_optimizer_label,
        help="one Optuna study each, all with the same trial budget: a fair comparison of how easy each is to tune",
    )
    lows, highs = [], []
    for name in names:
        low_key, high_key = _bound_keys(name)
        low, high = _default_bounds(name)
        seed_state(low_key, low)
        seed_state(high_key, high)
        cols = st.columns([1, 1, 1], vertical_alignment="bottom")
        cols[0].markdown(f"**{_optimizer_label(name)}** searches the lr in")
        # No widget bounds: SearchConfig checks them and its message says what is allowed.
        lows.append(cols[1].number_input(
            "lowest lr", key=low_key, format="%g", step=low, help="the search range's low end (log scale); type e.g. 1e-5",
        ))
        highs.append(cols[2].number_input(
            "highest lr", key=high_key, format="%g", step=high / 10, help="the search range's high end; type e.g. 10",
        ))
    params = st.session_state.get(_PARAMS, {})
    optimizers = [{"name": n, "params": params.get(n, {})} for n in names]
    return {"optimizers": optimizers, "lr_min": tuple(lows), "lr_max": tuple(highs)}


def search_inputs() -> dict[str, Any]:
    """Sampler, pruner, budget, objective and what else is searched; returns the raw values."""
    for field in ("sampler", "pruner", "n_trials", "metric", "seed", "search_hyperparams", "search_schedule", "search_batch_size"):
        seed_state(f"{PREFIX}.{field}", getattr(DEFAULT, field))
    seed_state(WORKERS_KEY, 1)
    cols = st.columns(4)
    values: dict[str, Any] = {
        "sampler": cols[0].selectbox(
            "sampler", SAMPLERS, key=f"{PREFIX}.sampler", format_func=SAMPLER_LABELS.get,
            help="TPE learns from finished trials where the good rates are; grid tries evenly spaced "
            "log rates; CMA-ES takes continuous parameters only",
        ),
        "pruner": cols[1].selectbox(
            "pruner", PRUNERS, key=f"{PREFIX}.pruner", format_func=PRUNER_LABELS.get,
            help="stops a trial after an epoch when it is behind the others there (it ends 'pruned'); "
            "saves training steps",
        ),
        "n_trials": cols[2].number_input(
            "trials per optimizer", min_value=1, max_value=500, step=1, key=f"{PREFIX}.n_trials",
            help="every optimizer gets the same budget; raising it later adds trials to the same studies",
        ),
    }
    workers = cols[3].number_input(
        "workers per study", min_value=1, max_value=MAX_WORKERS, step=1, key=WORKERS_KEY,
        help="local worker processes that take trials of one study at once; all share the server's job slots",
    )
    with st.expander("objective and what else to search"):
        values["metric"] = st.selectbox("objective", METRICS, key=f"{PREFIX}.metric", format_func=METRIC_LABELS.get)
        values["search_hyperparams"] = st.checkbox(
            "also search the optimizer's other hyperparameters", key=f"{PREFIX}.search_hyperparams",
            help="each within its registry range (momentum, betas, ...)",
        )
        values["search_schedule"] = st.checkbox("also choose the lr schedule", key=f"{PREFIX}.search_schedule")
        values["search_batch_size"] = st.checkbox("also choose the batch size", key=f"{PREFIX}.search_batch_size")
        values["seed"] = st.number_input(
            "seed", min_value=0, step=1, key=f"{PREFIX}.seed", help="every trial's run seed (same weights, same batches)",
        )
    return {"values": values, "workers": int(workers)}


def build_config(setup: dict[str, Any], optimizers: dict[str, Any], search: dict[str, Any]) -> SearchConfig:
    """Validate the form; raises :class:`ConfigError` with the field and what is allowed."""
    if not optimizers["optimizers"]:
        raise ConfigError("optimizers: choose at least one optimizer to tune")
    return SearchConfig.make(**setup, **optimizers, **search["values"])


def reopen_picker(searches: list[PastSearch], current: SearchConfig | None) -> None:
    """Pick a search from the storage (they survive a server restart) and show it."""
    if not searches:
        st.caption("No searches in the study storage yet.")
        return
    labels = {p.key: p.label for p in searches}
    key = st.selectbox("past searches, latest first", list(labels), format_func=labels.get, key=f"{PREFIX}.past")
    chosen = next(p for p in searches if p.key == key)
    st.button(
        "Open this search", icon=":material/history:", on_click=BINDING.restore_later, args=(chosen.config.to_dict(),),
        disabled=current is not None and current == chosen.config,
        help="puts its settings in the form; its trials are read from the storage",
    )


def _range_progress(job: Job) -> None:
    work: LRRangeWork = job.work  # type: ignore[assignment]
    seeds = work.config.seeds
    progress(job, work.progress, f"{len(work.curves)} of {len(seeds)} seeds", running="range test")
    if (result := work.result) is not None:
        st.plotly_chart(lr_range_figure(result), key="lr_range_live", width="stretch")


def _set_bounds(name: str, low: float, high: float) -> None:
    st.session_state[_bound_keys(name)[0]], st.session_state[_bound_keys(name)[1]] = low, high


def range_test(config: SearchConfig | None) -> None:
    """The LR range test for one of the chosen optimizers, and a button that sets its bounds from it."""
    if config is None:
        st.caption("Fix the settings above to run a range test.")
        return
    st.caption(
        "A fresh model trains a few hundred mini-batch steps while the lr grows exponentially; where "
        "the loss falls fastest is a good place to search. Three seeds, a few seconds."
    )
    labels = {o.name: _optimizer_label(o.name) for o in config.optimizers}
    cols = st.columns([2, 1], vertical_alignment="bottom")
    name = cols[0].selectbox("optimizer to test", list(labels), format_func=labels.get, key=f"{PREFIX}.range_optimizer")
    opt = next(o for o in config.optimizers if o.name == name)
    test = LRRangeConfig.from_setup(config, opt)
    job = find(range_key(test))
    running = job is not None and job.active
    if cols[1].button("Run the range test", icon=":material/speed:", width="stretch", disabled=running):
        if started(lambda: attach_or_start(range_key(test), lambda: LRRangeWork(test))) is not None:
            st.rerun()  # the sidebar counts it; its seeds draw below as they end
    if job is None:
        return
    if running:
        if may_stop(job):
            st.button("Stop the range test", icon=":material/stop_circle:", on_click=job.cancel)
        live_job(job, _range_progress, name="search.range", what="range test")
        return
    problems(job, what="range test")
    if (result := job.work.result) is None:  # type: ignore[attr-defined]
        return
    st.plotly_chart(lr_range_figure(result), key="lr_range", width="stretch")
    found = [
        f"{SUGGESTION_LABELS[n]} **{lr_text(v)}**" for n in SUGGESTIONS if (v := getattr(result.suggestions, n)) is not None
    ]
    exploded = sum(c.exploded for c in result.curves)
    st.caption(
        f"Suggestions (median over seeds {', '.join(map(str, test.seeds))}; band: lowest to highest seed): "
        f"{', '.join(found) or 'none: the loss never fell'}. "
        f"{exploded} of {len(result.curves)} seeds stopped when the loss exploded. Took {result.elapsed_s:.1f} s."
    )
    bounds = result.search_bounds()
    if bounds is None:
        st.warning("The range test suggested nothing to search around: the loss did not fall at any rate tried.")
        return
    low, high = bounds
    st.button(
        f"Search {labels[name]} from {lr_text(low)} to {lr_text(high)}", icon=":material/straighten:",
        on_click=_set_bounds, args=(name, low, high), type="primary",
        help="a decade below the lowest suggestion up to where the loss bottomed out",
    )

