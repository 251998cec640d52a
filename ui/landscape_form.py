"""The Loss landscapes page's form: widgets -> LandscapeConfig, mirrored in the URL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dlopt_core.config import OptimizerConfig
from dlopt_core.experiments.landscape import FUNCTIONS, LandscapeConfig, LrSearch, get_function
from dlopt_core.experiments.landscape_tune import LandscapeTuneWork, tune_key
from dlopt_core.runner.work import Job
from dlopt_core.plots import lr_text
from ui.optimizer_slots import lr_key, optimizer_slots, set_slots
from ui.binding import Binding
from ui.kit import attach_or_start, find, live_job, problems, progress
from ui.status import browser_id
from ui.widgets import param_input, seed_state

PREFIX = "landscape"
DEFAULT = LandscapeConfig.make(
    optimizers=(
        OptimizerConfig.make(name="sgd", lr=0.001),
        OptimizerConfig.make(name="momentum", lr=0.001),
        OptimizerConfig.make(name="adam", lr=0.05),
        OptimizerConfig.make(name="rmsprop", lr=0.01),
    ),
    steps=300,
)
_TUNING = f"{PREFIX}._tuning"  # (tuning job id, its key, the lr box of each optimizer) this session waits on
_SEARCHES = f"{PREFIX}._searches"  # (problem, optimizer spec after tuning) -> its LrSearch


def wrapping_columns(key: str, widths: Sequence[int]) -> list[DeltaGenerator]:
    """Side-by-side containers that stack when the page is narrower than ``widths`` (px) summed.

    ``st.columns`` never wraps: at 820 px it squeezed the contour into 290 px. A horizontal
    container wraps once its children have a basis width, set here through the CSS classes
    Streamlit gives keyed containers (``st-key-<key>``); the extra width is shared in the
    ratio of ``widths``.
    """
    css = "".join(
        f".st-key-{key} > :has(> .st-key-{key}-{i}) {{ flex: {w} 1 {w}px !important; min-width: 0; }}"
        for i, w in enumerate(widths)
    )
    st.html(f"<style>{css}</style>")
    row = st.container(horizontal=True, key=key)
    return [row.container(key=f"{key}-{i}") for i in range(len(widths))]


def set_state(cfg: LandscapeConfig) -> None:
    """Put ``cfg`` into the widgets' session state (before they are drawn)."""
    s = st.session_state
    s[f"{PREFIX}.function"] = cfg.function
    for k, v in cfg.params.items():
        s[f"{PREFIX}.{cfg.function}.{k}"] = v
    s[f"{PREFIX}.start_x"], s[f"{PREFIX}.start_y"] = cfg.start_point
    s[f"{PREFIX}.steps"], s[f"{PREFIX}.noise"], s[f"{PREFIX}.seed"] = cfg.steps, cfg.noise, cfg.seed
    set_slots(PREFIX, cfg.optimizers)


BINDING = Binding(PREFIX, LandscapeConfig.from_dict, DEFAULT, set_state, probes=(f"{PREFIX}.function",), noun="landscape")


def clicked_start(event: object) -> None:
    """Remember a point clicked on the contour as the new start (applied before the next run)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    clicked = next(((p["x"], p["y"]) for p in points if "x" in p and "y" in p), None)
    if clicked is None or clicked == st.session_state.get(f"{PREFIX}._last_click"):
        return
    st.session_state[f"{PREFIX}._last_click"] = clicked
    st.session_state[f"{PREFIX}._start"] = clicked
    st.rerun()


def apply_clicked_start() -> None:
    """Move the start inputs to the clicked point, before they are drawn."""
    if (start := st.session_state.pop(f"{PREFIX}._start", None)) is not None:
        st.session_state[f"{PREFIX}.start_x"], st.session_state[f"{PREFIX}.start_y"] = start


def apply_tuned() -> Job | None:
    """Write the learning rates of a tuning job that ended into the boxes (before they are drawn);
    :func:`tuning` names the job and the boxes. Returns the job whose rates were written."""
    waiting = st.session_state.get(_TUNING)
    if waiting is None or (job := find(waiting[1])) is None or job.id != waiting[0] or job.active:
        return None
    del st.session_state[_TUNING]
    problems(job, what="lr tuning")
    work: LandscapeTuneWork = job.work  # type: ignore[assignment]
    tuned, searches = {}, dict(st.session_state.get(_SEARCHES, {}))
    for index, found in sorted(work.found.items()):
        opt = work.config.optimizers[index]
        tuned[waiting[2][index]] = found.lr
        searches[_problem(work.config), opt.model_copy(update={"lr": found.lr}).to_spec()] = found
    st.session_state.update(tuned)
    st.session_state[_SEARCHES] = searches
    return job


def tuned_note(job: Job, searches: dict[str, LrSearch]) -> None:
    """How the tuning that just filled the boxes went, and every best lr on an edge of its range."""
    work: LandscapeTuneWork = job.work  # type: ignore[assignment]
    done, n = len(work.found), len(work.config.optimizers)
    if done == n:
        st.success("Learning rates tuned: the boxes above hold the best ones found (3 significant digits).")
    elif done:
        st.warning(f"Tuning {job.status} after {done} of {n} optimizers: their boxes hold the best rates "
                   "found, the others keep theirs.")
    else:
        st.info(f"Tuning {job.status} before any optimizer was tuned: the boxes keep their rates.")
    for label, found in searches.items():
        if found.edge is not None or not found.finished:
            st.warning(f"{label}: {search_text(found)}.")


def _reset_start() -> None:
    fn = get_function(st.session_state[f"{PREFIX}.function"])
    st.session_state[f"{PREFIX}.start_x"], st.session_state[f"{PREFIX}.start_y"] = fn.start


def setup_sidebar() -> dict[str, Any]:
    """Function, start point, steps and noise; returns the raw values."""
    with st.sidebar:
        st.header("Landscape")
        name = st.selectbox(
            "function", list(FUNCTIONS), key=f"{PREFIX}.function",
            format_func=lambda n: FUNCTIONS[n].label, on_change=_reset_start,
        )
        fn = get_function(name)
        st.caption(f"f(x, y) = {fn.formula}")
        params = {p.name: param_input(p, f"{PREFIX}.{name}.{p.name}") for p in fn.hyperparams}
        seed_state(f"{PREFIX}.start_x", fn.start[0])
        seed_state(f"{PREFIX}.start_y", fn.start[1])
        cols = st.columns(2)
        x = cols[0].number_input("start x", key=f"{PREFIX}.start_x", format="%g", step=0.1)
        y = cols[1].number_input("start y", key=f"{PREFIX}.start_y", format="%g", step=0.1)
        seed_state(f"{PREFIX}.steps", 300)
        steps = st.number_input("steps", min_value=1, max_value=20_000, step=50, key=f"{PREFIX}.steps")
        seed_state(f"{PREFIX}.noise", 0.0)
        noise = st.number_input(
            "gradient noise", min_value=0.0, key=f"{PREFIX}.noise", format="%g", step=0.1,
            help="standard deviation added to every gradient (seeded): 0 is gradient descent, more is SGD-like",
        )
        seed_state(f"{PREFIX}.seed", 0)
        seed = st.number_input("noise seed", min_value=0, step=1, key=f"{PREFIX}.seed")
    return {"function": name, "params": params, "start": (x, y), "steps": steps, "noise": noise, "seed": seed}


def optimizer_boxes() -> list[dict[str, Any]]:
    """The optimizer boxes, two to a row: four squeezed each to 110 px at 820 px wide."""
    # No "outside the usual range" notes: the registry's ranges are for networks, and a 2-D
    # toy function's tuned lr (Adam at 0.36) often sits far above them.
    return optimizer_slots(PREFIX, per_row=2, range_notes=False)


def build_config(setup: dict[str, Any], boxes: list[dict[str, Any]]) -> LandscapeConfig:
    """Validate the form; raises :class:`ConfigError` naming the field."""
    opts = tuple({k: v for k, v in b.items() if k != "uid"} for b in boxes)
    return LandscapeConfig.make(**setup, optimizers=opts)


def tuning(config: LandscapeConfig, boxes: list[dict[str, Any]]) -> Job | None:
    """The job this browser started to tune this config's learning rates, while it runs or until
    this session has put its rates in the boxes (:func:`apply_tuned`; after a reload too).

    Another browser's tuning is its own, and one that ended before this session saw it is old:
    neither changes this session's boxes or link.
    """
    job = find(tune_key(config))
    if job is None or not job.steerable_by(browser_id()):
        return None
    waiting = st.session_state.get(_TUNING)
    if not job.active and (waiting is None or waiting[0] != job.id):
        return None
    keys = [lr_key(PREFIX, box["uid"], opt.name) for opt, box in zip(config.optimizers, boxes)]
    st.session_state[_TUNING] = (job.id, job.key, keys)
    return job


def tune(config: LandscapeConfig, boxes: list[dict[str, Any]]) -> None:
    """Start tuning each optimizer's lr with Optuna in the background (or attach to it)."""
    job = attach_or_start(tune_key(config), lambda: LandscapeTuneWork(config))
    keys = [lr_key(PREFIX, box["uid"], opt.name) for opt, box in zip(config.optimizers, boxes)]
    st.session_state[_TUNING] = (job.id, job.key, keys)


def tuning_view(job: Job) -> None:
    """How far the tuning is, live; its end puts the learning rates in the boxes."""
    work: LandscapeTuneWork = job.work  # type: ignore[assignment]
    n = len(work.config.optimizers)
    live_job(job, lambda j: progress(j, work.progress, f"{len(work.found)} of {n} optimizers tuned",
                                     running="tuning learning rates"), name="landscape.tune", what="lr tuning")


def _problem(config: LandscapeConfig) -> str:
    # Everything but the optimizers: a search holds for this function, start, steps and noise.
    return repr(sorted((k, str(v)) for k, v in config.to_dict().items() if k != "optimizer"))


def search_of(config: LandscapeConfig, opt: OptimizerConfig) -> LrSearch | None:
    """The tuning that gave ``opt`` its lr on this problem, while its box still holds that lr."""
    return st.session_state.get(_SEARCHES, {}).get((_problem(config), opt.to_spec()))


def search_text(found: LrSearch, *, short: bool = False) -> str:
    """The searched range, with a warning when the best lr sits on one of its ends or none finished."""
    span = f"{lr_text(found.low)} – {lr_text(found.high)}"
    if not found.finished:
        return f"⚠ none of {span} finished" if short else f"no lr in {span} ran its steps inside the window"
    if found.edge is None:
        return f"inside {span}"
    end = "top" if found.edge == "high" else "bottom"
    if short:
        return f"⚠ {end} end of {span}"
    beyond = "larger" if found.edge == "high" else "smaller"
    return f"the best lr, {lr_text(found.lr)}, is on the {end} end of the range searched ({span}): a {beyond} one may do better"
