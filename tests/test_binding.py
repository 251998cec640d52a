"""Every config class round-trips through the places that carry it: the URL, MLflow and the CLI.

Configs are drawn from their classes: each field left at its default or drawn within its declared
range (pydantic's ge / gt / le / lt and lengths), registry choices drawn from the registries with
any subset of their hyperparameters; only configs that validate are kept. A new field of a config
is drawn with no edit here (a plain one from its type, a registry choice from its class).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from dlopt_core.catalog.augmentations import AUGMENTATIONS, check_fits
from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.functions import FUNCTIONS
from dlopt_core.catalog.hyperparams import HyperParam
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.cli import build_parser, compare, compress, landscape, lr_range, search, sweep
from dlopt_core.compression.methods import COMPRESSIONS
from dlopt_core.config import (
    MAX_SEED,
    AugmentConfig,
    ComparisonConfig,
    DataConfig,
    Flat,
    ModelConfig,
    NamedWithParams,
    OptimizerConfig,
    ReduceConfig,
    RunConfig,
    ScheduleConfig,
    param_text,
)
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.compress.config import CompressionConfig, MethodConfig
from dlopt_core.experiments.data_demos import AugmentDemoConfig, ReduceSweepConfig
from dlopt_core.experiments.landscape import LandscapeConfig
from dlopt_core.experiments.lr_range import LRRangeConfig
from dlopt_core.experiments.search import SearchConfig
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.sweep import SweepConfig
from dlopt_core.export import cli_command
from ui.binding import LIST_KEYS, with_defaults

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)
PAGE_CONFIGS = (
    ComparisonConfig, SweepConfig, SearchConfig, CompressionConfig, LandscapeConfig, AugmentDemoConfig,
    ReduceSweepConfig, RunConfig,
)
ALL_CONFIGS = (*PAGE_CONFIGS, StudyConfig, LRRangeConfig)
REGISTRIES: dict[type[NamedWithParams], dict[str, Any]] = {
    OptimizerConfig: OPTIMIZERS, ScheduleConfig: SCHEDULES, DataConfig: DATASETS, ModelConfig: MODELS,
    AugmentConfig: AUGMENTATIONS, ReduceConfig: REDUCTIONS, MethodConfig: COMPRESSIONS,
}
LOG10_LR = st.floats(-7, 3).map(lambda e: 10.0**e)


def hyperparam(p: HyperParam) -> st.SearchStrategy[Any]:
    """A value within ``p``'s declared range."""
    if p.kind == "choice":
        return st.sampled_from(p.choices)
    if p.kind == "bool":
        return st.booleans()
    if p.kind in ("int", "ints"):
        low = math.ceil(p.low) + (1 if not p.low_inclusive and float(p.low).is_integer() else 0)
        high = math.floor(p.high) - (1 if not p.high_inclusive and float(p.high).is_integer() else 0)
        one = st.integers(low, min(high, 10**6))
        return one if p.kind == "int" else st.lists(one, min_size=1, max_size=min(p.max_items, 3)).map(tuple)
    return st.floats(
        p.low, p.high, exclude_min=not p.low_inclusive, exclude_max=not p.high_inclusive, allow_nan=False
    )


@st.composite
def named(draw: st.DrawFn, kind: type[NamedWithParams], names: Sequence[str] | None = None) -> NamedWithParams:
    """A registry entry of ``kind`` (one of ``names``) with a drawn subset of its hyperparameters
    (and extra fields)."""
    name = draw(st.sampled_from(sorted(names if names is not None else REGISTRIES[kind])))
    specs = REGISTRIES[kind][name].hyperparams
    chosen = draw(st.sets(st.sampled_from([p.name for p in specs]))) if specs else set()
    values: dict[str, Any] = {"name": name, "params": {p.name: draw(hyperparam(p)) for p in specs if p.name in chosen}}
    for field in kind.extra_fields():
        if draw(st.booleans()):
            values[field] = draw(field_value(kind, field))
    try:
        return kind.make(**values)
    except ConfigError:
        assume(False)
        raise


def _plain(info: FieldInfo, t: Any) -> st.SearchStrategy[Any] | None:
    limits = {type(m): m for m in info.metadata}
    if t is bool:
        return st.booleans()
    if get_origin(t) is Literal:
        return st.sampled_from(get_args(t))
    if t is int:
        low = limits[at.Ge].ge if at.Ge in limits else limits[at.Gt].gt + 1 if at.Gt in limits else 0
        high = limits[at.Le].le if at.Le in limits else limits[at.Lt].lt - 1 if at.Lt in limits else MAX_SEED
        return st.integers(low, high)
    if t is float:
        finite = any(getattr(m, "allow_inf_nan", True) is False for m in info.metadata)
        finite = finite or ({at.Ge, at.Gt} & limits.keys() and {at.Le, at.Lt} & limits.keys())
        return st.floats(
            min_value=limits[at.Ge].ge if at.Ge in limits else limits[at.Gt].gt if at.Gt in limits else None,
            max_value=limits[at.Le].le if at.Le in limits else limits[at.Lt].lt if at.Lt in limits else None,
            exclude_min=at.Gt in limits, exclude_max=at.Lt in limits, allow_nan=False, allow_infinity=not finite,
        )
    return None


# Fields whose valid values a validator narrows beyond what their declaration says.
NARROWED: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (SweepConfig, "lr_min"): LOG10_LR, (SweepConfig, "lr_max"): LOG10_LR,
    (LRRangeConfig, "lr_min"): st.floats(1e-9, 1e-2), (LRRangeConfig, "lr_max"): st.floats(0.1, 1e3),
    (StudyConfig, "lr_min"): st.none() | st.floats(1e-9, 1e-4), (StudyConfig, "lr_max"): st.none() | st.floats(1.0, 1e9),
    (StudyConfig, "study_name"): st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    (SearchConfig, "lr_min"): st.lists(st.floats(1e-9, 1e-4), max_size=3).map(tuple),
    (SearchConfig, "lr_max"): st.lists(st.floats(1.0, 1e9), max_size=3).map(tuple),
    (CompressionConfig, "sparsities"): st.lists(st.floats(0.0, 1.0, exclude_max=True), max_size=3).map(tuple),
    (CompressionConfig, "baseline_run"): st.none() | st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    (ReduceSweepConfig, "methods"): st.lists(st.sampled_from(sorted(REDUCTIONS)), min_size=1, max_size=3, unique=True)
    .map(tuple),
    (ReduceSweepConfig, "fractions"): st.lists(st.floats(0.0, 1.0, exclude_min=True), min_size=1, max_size=3).map(tuple),
    (ReduceSweepConfig, "components"): st.lists(st.integers(1, 64), min_size=1, max_size=3).map(tuple),
    (LandscapeConfig, "function"): st.sampled_from(sorted(FUNCTIONS)),
    (LandscapeConfig, "params"): st.just({}),  # drawn with the function, see landscape_config
    (LandscapeConfig, "start"): st.none() | st.tuples(st.floats(-2, 2), st.floats(-1, 2)),
}


# Fields a validator asks for although they have a default (a comparison of augmentations needs one).
WANTED = {(AugmentDemoConfig, "augment")}


def field_value(
    cls: type[Flat] | type[NamedWithParams], field: str, fits: Mapping[type, Sequence[str]] | None = None
) -> st.SearchStrategy[Any]:
    """A value for ``cls.field``: a registry entry (one of ``fits``' names for its kind), a tuple of
    them, or a plain value in its range."""
    fits = fits or {}
    for klass in cls.__mro__:
        if (klass, field) in NARROWED:
            return NARROWED[(klass, field)]
    info = cls.model_fields[field]
    ann = info.annotation
    union = isinstance(ann, UnionType) or get_origin(ann) is Union
    types = [t for t in get_args(ann) if t is not NoneType] if union else [ann]
    nullable = union and len(types) < len(get_args(ann))
    (t,) = types
    limits = {type(m): m for m in info.metadata}
    if get_origin(t) is tuple:
        item = get_args(t)[0]
        strategy = named(item, fits.get(item)) if item in REGISTRIES else st.integers(0, MAX_SEED)
        size = (limits[at.MinLen].min_length if at.MinLen in limits else 0, min(3, limits[at.MaxLen].max_length))
        size = (max(size[0], 1), size[1]) if (cls, field) in WANTED else size
        values = st.lists(strategy, min_size=size[0], max_size=size[1], unique_by=_identity if item in REGISTRIES else None)
        found: st.SearchStrategy[Any] = values.map(tuple)
    elif t in REGISTRIES:
        found = named(t, fits.get(t))
    else:
        plain = _plain(info, t)
        assert plain is not None, f"{cls.__name__}.{field}: no strategy for {t}"
        found = plain
    return st.none() | found if nullable else found


def _identity(entry: NamedWithParams) -> str:
    return entry.name


def fitting(data: DataConfig | None) -> dict[type, list[str]]:
    """The models, augmentations and reductions the data set can take (fewer configs drawn in vain)."""
    spec = DATASETS[data.name if data is not None else DataConfig().name]
    images, classification = spec.image_shape is not None, spec.task == "classification"
    return {
        ModelConfig: [n for n, m in MODELS.items() if images or not m.needs_images],
        AugmentConfig: [n for n in AUGMENTATIONS if check_fits(n, images=images, classification=classification) is None],
        ReduceConfig: [n for n, r in REDUCTIONS.items() if classification or not r.classification_only],
    }


@st.composite
def config(draw: st.DrawFn, cls: type[Flat]) -> Flat:
    """A valid ``cls``: each field left at its default or drawn."""
    values: dict[str, Any] = {}
    for field, info in cls.model_fields.items():
        if info.annotation is NoneType:  # a constant (a sweep has no target loss)
            continue
        if info.is_required() or (cls, field) in WANTED or draw(st.booleans()):
            values[field] = draw(field_value(cls, field, fitting(values.get("data"))))
    if cls is LandscapeConfig:
        fn = FUNCTIONS[values.get("function", "rosenbrock")]
        values["params"] = {p.name: draw(hyperparam(p)) for p in fn.hyperparams if draw(st.booleans())}
    try:
        return cls.make(**values)
    except ConfigError:
        assume(False)
        raise


def in_url(flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` written to the URL as ``ui.binding.write_query`` does, and read back as ``query_dict``
    does (the keys of :data:`LIST_KEYS` always as lists)."""
    written = {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in flat.items()}
    return {k: (v if isinstance(v, list) else [v]) if k in LIST_KEYS else v for k, v in written.items()}


def as_mlflow_params(flat: dict[str, Any]) -> dict[str, str]:
    """The params tracking logs for a config (``param_text`` of each flat value; MLflow keeps strings)."""
    return {k: param_text(v) for k, v in flat.items()}


# -- URL and MLflow ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_a_config_round_trips_through_the_url_and_mlflow_params(cls: type[Flat]) -> None:
    @FAST
    @given(config(cls))
    def check(cfg: Flat) -> None:
        flat = cfg.to_dict()
        assert cls.from_dict(in_url(flat)) == cfg
        if cls is not LandscapeConfig:  # each of its MLflow runs holds one optimizer: see below
            assert cls.from_dict(as_mlflow_params(flat)) == cfg

    check()


@pytest.mark.parametrize("cls", PAGE_CONFIGS, ids=lambda c: c.__name__)
def test_a_partial_link_keeps_its_keys_and_takes_the_defaults_for_the_rest(cls: type[Flat]) -> None:
    @FAST
    @given(config(cls), config(cls), st.data())
    def check(cfg: Flat, default: Flat, data: st.DataObject) -> None:
        flat = in_url(cfg.to_dict())
        tops = sorted({k.split(".")[0] for k in flat})
        kept = data.draw(st.sets(st.sampled_from(tops)), label="kept")
        partial = {k: v for k, v in flat.items() if k.split(".")[0] in kept}
        try:
            merged = cls.from_dict(with_defaults(partial, default))
        except ConfigError:
            assume(False)  # the link's keys do not fit the default's others (an L-BFGS link, batch 64)
            raise
        mine, theirs = cfg.to_dict(), default.to_dict()
        for key, value in merged.to_dict().items():
            assert value == (mine if key.split(".")[0] in kept else theirs)[key], key

    check()


@FAST
@given(config(CompressionConfig))
def test_a_compression_variant_params_give_back_its_baseline(cfg: CompressionConfig) -> None:
    # tracking/compression_log.py logs each variant with its baseline's run config, then method keys.
    params = as_mlflow_params(cfg.baseline_config().to_dict()) | {"method": "prune_structured", "method.sparsity": "0.5"}
    assert RunConfig.from_dict({k: v for k, v in params.items() if k.split(".")[0] != "method"}) == cfg.baseline_config()


@FAST
@given(config(LandscapeConfig))
def test_a_landscape_run_params_give_back_its_config(cfg: LandscapeConfig) -> None:
    # tracking/landscape_log.py logs one run per optimizer: the config's other keys, then the
    # optimizer's name, its lr (repr) and its hyperparameters (str).
    shared = {k: str(v) for k, v in cfg.to_dict().items() if k != "optimizer"}
    for opt in cfg.optimizers:
        hyper = {"lr": repr(opt.lr), **{k: str(v) for k, v in opt.params.items()}}
        back = OptimizerConfig.make(name=opt.name, lr=hyper.pop("lr"), params=hyper)
        assert back == opt
        assert LandscapeConfig.from_dict({**shared, "optimizer": [back.to_spec()]}) == cfg.model_copy(
            update={"optimizers": (opt,)}
        )


# -- CLI --------------------------------------------------------------------------------------

PARSER = build_parser()


@FAST
@given(config(ComparisonConfig))
def test_the_rerun_command_gives_back_the_comparison(cfg: ComparisonConfig) -> None:
    argv = shlex.split(cli_command(cfg))
    assert argv[:4] == ["python", "-m", "dlopt_core", "compare"]
    assert compare.build_config(PARSER.parse_args(argv[3:])) == cfg


CLI = {
    "sweep": (SweepConfig, sweep), "lr-range": (LRRangeConfig, lr_range), "search": (StudyConfig, search),
    "compress": (CompressionConfig, compress), "landscape": (LandscapeConfig, landscape),
    "compare": (ComparisonConfig, compare),
}


@pytest.mark.parametrize("command", sorted(set(CLI) - {"compare"}))  # compare: the rerun command above
def test_a_config_round_trips_through_its_command_line(command: str) -> None:
    cls, module = CLI[command]

    @FAST
    @given(config(cls))
    def check(cfg: Flat) -> None:
        if cls is CompressionConfig:  # the command line names weights by their file, not their MLflow run
            cfg = cfg.model_copy(update={"baseline_run": None})
        words = shlex.split(shlex.join([command, *module.argv(cfg)]))
        assert module.build_config(PARSER.parse_args(words)) == cfg

    check()


@pytest.mark.parametrize("command", sorted(CLI))
def test_the_command_line_takes_its_defaults_from_the_config_class(command: str) -> None:
    cls, module = CLI[command]
    required = {"sweep": ["--optimizer", "adam"], "lr-range": ["--optimizer", "adam"], "search": ["--optimizer", "adam"],
                "compress": ["--method", "fp16"], "landscape": ["--optimizer", "adam"], "compare": ["--optimizer", "adam"]}
    built = module.build_config(PARSER.parse_args([command, *required[command]]))
    for field, info in cls.model_fields.items():
        if not info.is_required() and field not in ("optimizer", "start", "lr_min", "lr_max"):
            assert getattr(built, field) == info.get_default(call_default_factory=True), field
