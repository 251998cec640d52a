"""The Data page's form: the setup, one optimizer, the augmentations, the reduction sweep and
uploads, turned into the core's configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from dlopt_core.catalog.augmentations import AUGMENTATIONS, check_fits
from dlopt_core.catalog.datasets import get_dataset_spec
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.uploads.parse import DataFileError, csv_column_names, parse_upload
from dlopt_core.uploads.store import store_table
from dlopt_core.config import ConfigError
from dlopt_core.experiments.data_demos import AugmentDemoConfig, ReduceSweepConfig
from ui.binding import Binding, ViewKey
from ui.compare_form import SETUP_PROBES, one_optimizer, set_setup_state, setup_widgets, step_options
from ui.widgets import code_span, param_input, remember_upload, seed_state

PREFIX = "data"
TASKS = {"auto": "detect", "classification": "classification", "regression": "regression"}


@dataclass(frozen=True)
class DataSettings:
    """What the Data page's link carries: the setup, the optimizer and the augmentation comparison
    (validated), and the reduction sweep's choices as typed (its tab says what is wrong with them)."""

    demo: AugmentDemoConfig
    methods: tuple[str, ...]
    fractions: str
    components: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.demo.to_dict(), "methods": list(self.methods), "fractions": self.fractions,
                "components": self.components}

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> DataSettings:
        methods = flat.get("methods", ())
        methods = methods.split(",") if isinstance(methods, str) else methods
        return cls(AugmentDemoConfig.from_dict(flat), tuple(methods), str(flat.get("fractions", "")),
                   str(flat.get("components", "")))


# 100 epochs on a tenth of digits: long enough that the validation loss turns up (overfitting).
DEFAULT = DataSettings(
    AugmentDemoConfig.make(epochs=100, augment=[{"name": "affine"}, {"name": "noise"}], subset=0.1),
    methods=tuple(REDUCTIONS), fractions="0.05,0.1,0.25,0.5", components="2,4,8,16",
)


def set_state(cfg: DataSettings) -> None:
    """Put ``cfg`` into the widgets' session state (before they are drawn)."""
    s, demo = st.session_state, cfg.demo
    set_setup_state(f"{PREFIX}.", demo)
    s[f"{PREFIX}.optimizer"] = demo.optimizer.name
    s[f"{PREFIX}.lr.{demo.optimizer.name}"] = demo.optimizer.lr
    s[f"{PREFIX}.augment.{demo.data.name}"] = [a.name for a in demo.augment]
    for a in demo.augment:
        for k, v in a.params.items():
            s[f"{PREFIX}.aug.{a.name}.{k}"] = v
    s[f"{PREFIX}.subset"] = demo.subset
    s[f"{PREFIX}.methods"] = list(cfg.methods)
    s[f"{PREFIX}.fractions"], s[f"{PREFIX}.components"] = cfg.fractions, cfg.components


BINDING = Binding(
    PREFIX, DataSettings.from_dict, DEFAULT, set_state, noun="experiment",
    probes=tuple(f"{PREFIX}.{k}" for k in SETUP_PROBES),
    views=(ViewKey("x", f"{PREFIX}.view.x", ("bytes", "rows")),),
)


def setup_sidebar() -> dict[str, Any]:
    """Data, model, schedule, budget and step options, and the one optimizer every variant uses."""
    with st.sidebar:
        setup = setup_widgets(
            f"{PREFIX}.", epochs=100, batch_size=64,
            schedule_help="every variant trains with it", data_options=False,
        )
        step = step_options(engine=False)
        optimizer = one_optimizer(f"{PREFIX}.", help="every variant trains with it, so only the data differs")
    return {**setup, **step, "optimizer": optimizer}


def _fits(name: str, setup: dict[str, Any]) -> bool:
    try:
        spec = get_dataset_spec(setup["data"]["name"])
    except ValueError:
        return False
    return check_fits(name, images=spec.image_shape is not None, classification=spec.task == "classification") is None


def augment_inputs(setup: dict[str, Any]) -> list[dict[str, Any]]:
    """The augmentations that fit this data, with their hyperparameters; returns the chosen ones."""
    names = [n for n in AUGMENTATIONS if _fits(n, setup)]
    key = f"{PREFIX}.augment.{setup['data']['name']}"
    images = "affine" in names
    seed_state(key, ["affine", "noise"] if images else ["noise", "mixup"])
    chosen = st.multiselect(
        "augmentations", names, key=key, format_func=lambda n: AUGMENTATIONS[n].label,
        help="applied to every training batch, in this order; only those that fit this data set are listed",
    )
    out = []
    if chosen:
        cols = st.columns(min(3, len(chosen)))
        for i, name in enumerate(chosen):
            spec = AUGMENTATIONS[name]
            with cols[i % len(cols)].expander(spec.label):
                st.caption(spec.description)
                params = {p.name: param_input(p, f"{PREFIX}.aug.{name}.{p.name}") for p in spec.hyperparams}
            out.append({"name": name, "params": params})
    return out


def augment_demo(setup: dict[str, Any], augment: list[dict[str, Any]], subset: float) -> AugmentDemoConfig:
    """Validate; raises :class:`ConfigError` with the field and what is allowed."""
    values = {k: v for k, v in setup.items() if k != "reduce"}
    return AugmentDemoConfig.make(**values, augment=augment, subset=subset)


def subset_input() -> float:
    """The share of the training set the augmentation comparison trains on."""
    seed_state(f"{PREFIX}.subset", 0.1)
    return st.slider(
        "share of the training set", 0.02, 1.0, key=f"{PREFIX}.subset", step=0.01, format="%.2f",
        help="a small share makes the model overfit, so the effect of augmentation shows",
    )


def reduce_inputs(setup: dict[str, Any]) -> dict[str, Any]:
    """Which reductions and at which sizes; returns the raw values."""
    try:
        task = get_dataset_spec(setup["data"]["name"]).task
    except ValueError:
        task = "classification"
    names = [n for n, s in REDUCTIONS.items() if task == "classification" or not s.classification_only]
    seed_state(f"{PREFIX}.methods", names)
    # A link may name a method this data cannot take (or none there is): not offered, and dropped.
    st.session_state[f"{PREFIX}.methods"] = [n for n in st.session_state[f"{PREFIX}.methods"] if n in names]
    seed_state(f"{PREFIX}.fractions", "0.05,0.1,0.25,0.5")
    seed_state(f"{PREFIX}.components", "2,4,8,16")
    methods = st.multiselect(
        "methods", names, key=f"{PREFIX}.methods", format_func=lambda n: REDUCTIONS[n].label,
        help="; ".join(f"{s.label}: {s.description}" for s in REDUCTIONS.values()),
    )
    cols = st.columns(2)
    fractions = cols[0].text_input(
        "fractions of the rows", key=f"{PREFIX}.fractions", help="for subsampling and k-means: the shares kept",
    )
    components = cols[1].text_input("PCA dimensions", key=f"{PREFIX}.components", help="for PCA: the dimensions kept")
    return {"methods": tuple(methods), "fractions": fractions, "components": components}


def reduce_sweep(setup: dict[str, Any], values: dict[str, Any]) -> ReduceSweepConfig:
    """Validate; raises :class:`ConfigError` with the field and what is allowed."""
    if not values["methods"]:
        raise ConfigError("methods: choose at least one way to shrink the data")
    return ReduceSweepConfig.make(**{k: v for k, v in setup.items() if k != "reduce"}, **values)


FORMATS = {"csv": "CSV", "npz": "NumPy .npz", "idx": "MNIST idx pair"}
# No type filter for idx files: Streamlit matches ".<type>" endings, and MNIST's unzipped names
# (train-images-idx3-ubyte) have no dot. parse_idx checks the bytes themselves.
IDX_TYPES = None


def _uploaded_files(fmt: str) -> list[tuple[str, bytes]]:
    """The chosen format's file(s) as (name, bytes); empty until every one is there."""
    limit = "at most 20 MB"
    if fmt == "csv":
        files = [st.file_uploader("CSV file", type=["csv"], key=f"{PREFIX}.upload",
                                  help=f"numeric features and one target column; {limit}")]
    elif fmt == "npz":
        files = [st.file_uploader(".npz archive", type=["npz"], key=f"{PREFIX}.upload_npz",
                                  help=f"np.savez(file, x=inputs, y=labels); images as (rows, height, width); {limit}")]
    else:
        cols = st.columns(2)
        files = [
            cols[0].file_uploader("images (idx3)", type=IDX_TYPES, key=f"{PREFIX}.upload_images",
                                  help=f"e.g. train-images-idx3-ubyte.gz; {limit}"),
            cols[1].file_uploader("labels (idx1)", type=IDX_TYPES, key=f"{PREFIX}.upload_labels",
                                  help=f"e.g. train-labels-idx1-ubyte.gz; {limit}"),
        ]
    if any(f is None for f in files):
        return []
    return [(f.name, f.getvalue()) for f in files]


def upload_form() -> None:
    """A CSV, an .npz or an idx pair, its target and task: checked on the server, then a data
    set of this session."""
    st.caption(
        "A CSV with a header row, numeric feature columns and one target column; a NumPy .npz with "
        "arrays x and y; or MNIST's two idx files (images and labels). Each is checked on the server "
        "(size, encoding, ragged rows, missing or non-numeric values, formula-looking cells, a target "
        "with one class; an .npz is read without pickles) and never executed; a valid upload becomes "
        "a data set on every page of this tab (until you reload it)."
    )
    fmt = st.segmented_control("file format", list(FORMATS), format_func=FORMATS.get, default="csv",
                               required=True, key=f"{PREFIX}.format")
    files = _uploaded_files(fmt)
    if not files:
        return
    header: list[str] = []
    if fmt == "csv":
        try:  # checked before a widget offers them: 9 million names once crashed the tab
            header = csv_column_names(files[0][1], source=files[0][0])
        except DataFileError as err:
            st.error(f"Not imported: {code_span(str(err))}")
            return
    cols = st.columns([1.6, 1, 1.4], vertical_alignment="bottom")
    target = None
    if fmt == "csv":
        target = cols[0].selectbox("target column", header[::-1] or [""], key=f"{PREFIX}.target",
                                   help="what the model predicts; every other column is a feature")
    task = cols[1].selectbox("task", list(TASKS), key=f"{PREFIX}.task", format_func=TASKS.get,
                             help="detect: text or at most 20 whole-number values are classes, otherwise regression")
    if cols[2].button("Add this data set", type="primary", width="stretch"):
        try:
            table = parse_upload(files, target=target, task=task)
            name = store_table(table)
        except (DataFileError, ConfigError) as err:
            st.error(f"Not imported: {code_span(str(err))}")
            return
        remember_upload(name)
        n, d = table.shape
        shape = f"{n:,} images of {table.image_shape[1]}x{table.image_shape[2]}" if table.image_shape else f"{n:,} rows, {d} features"
        classes = f"{len(table.classes)} classes" if table.task == "classification" else "regression"
        st.session_state[f"{PREFIX}._added"] = (
            f"Added {code_span(get_dataset_spec(name).label)}: {shape}, {classes}. It is in the "
            "data-set list of every page in this tab until you reload it (stored by content hash "
            f"`{table.sha256[:12]}`; runs on it log that name)."
        )
        st.rerun()  # the sidebar, drawn before this form, lists the new data set
    if added := st.session_state.pop(f"{PREFIX}._added", None):
        st.success(added)
