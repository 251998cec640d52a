"""Validated, frozen configs for a run and for a comparison of runs.

One generic pair, :func:`flatten` / :func:`unflatten`, turns any config into flat dotted keys
and back: what MLflow logs as params, what the URL and the CLI carry. A registry choice
(optimizer, schedule, data set, model) flattens to ``name`` plus ``name.key`` for each of
its hyperparameters, so only the ones that apply appear. Bad values raise
:class:`ConfigError`, whose message names the field, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from types import NoneType
from typing import Any, ClassVar, Literal, Self, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dlopt_core.catalog.augmentations import check_fits, get_augmentation
from dlopt_core.catalog.datasets import DATASETS, get_dataset_spec
from dlopt_core.catalog.hyperparams import HyperParam, Value, check_number_text, check_params, int_list, parse_spec
from dlopt_core.catalog.models import get_model_spec
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.reductions import get_reduction
from dlopt_core.catalog.schedules import Budget, get_schedule
from dlopt_core.errors import ConfigError, shown

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "bf16", "fp16"]
# Which engine trains a comparison's runs (dlopt_core.engine.plan); the curves are the same.
EngineChoice = Literal["auto", "batched", "sequential"]
Scalar = float | int | bool
MAX_EPOCHS = 10_000
MAX_SEED = 2**31 - 1  # what torch.manual_seed and NumPy take on every platform


def _format(err: ValidationError, prefix: str) -> str:
    lines = []
    for e in err.errors():
        msg = str(e["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in e["loc"])
        where = ".".join(p for p in (prefix, loc) if p)
        if where and not msg.startswith(f"{where}:") and ":" not in msg.split(" ")[0]:
            msg = f"{where}: {msg} (got {shown(e.get('input'))})"
        lines.append(msg)
    return "; ".join(lines)


_Model = TypeVar("_Model", bound="Frozen")


class Frozen(BaseModel):
    """Immutable, unknown keys rejected, errors turned into :class:`ConfigError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, values: Any) -> Any:
        # pydantic reads "1_000" as 1000 (Python's rule); a link or a log reader would not.
        if isinstance(values, dict):
            kind = getattr(cls, "kind", "")
            for key, value in values.items():
                check_number_text(value, field=f"{kind}.{key}" if kind else key)
        return values

    @classmethod
    def make(cls: type[_Model], **values: Any) -> _Model:
        """Validate ``values``; raise :class:`ConfigError` on the first bad field."""
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise ConfigError(_format(err, "")) from None


class Flat(Frozen):
    """A config that travels as flat keys: MLflow params, a URL's query, the CLI's flags.

    :meth:`to_dict` and :meth:`from_dict` are the generic :func:`flatten` / :func:`unflatten`,
    so a new field reaches every place that carries its config with no edit outside its class.
    """

    @model_validator(mode="before")
    @classmethod
    def _none_word(cls, values: Any) -> Any:
        # flatten writes "none" for a None whose field is set by default (left out, it would read
        # back as the default): a URL, MLflow params and the CLI give it back as text.
        if isinstance(values, dict):
            return {k: None if v == NONE and _none_written(cls, k) else v for k, v in values.items()}
        return values

    def to_dict(self) -> dict[str, Any]:
        """Flat keys (:func:`flatten`), exactly what MLflow logs as params."""
        return flatten(self)

    @classmethod
    def from_dict(cls, flat: Mapping[str, Any]) -> Self:
        """Read back :meth:`to_dict` (values may be strings, as URLs and MLflow give them)."""
        return unflatten(cls, flat)


class NamedWithParams(Frozen):
    """A registry name with its hyperparameters, checked against the registry entry's ranges.

    Subclasses say which registry they read (:meth:`_spec`) and what their errors call them
    (``kind``). Scalar fields besides ``name`` and ``params`` (an optimizer's ``lr``) are
    written like hyperparameters in the flat and spec forms.
    """

    kind: ClassVar[str] = ""
    name: str
    params: dict[str, Value] = Field(default_factory=dict)

    @classmethod
    def _spec(cls, name: str) -> Any:
        raise NotImplementedError

    @classmethod
    def extra_fields(cls) -> tuple[str, ...]:
        return tuple(f for f in cls.model_fields if f not in ("name", "params"))

    @model_validator(mode="after")
    def _check(self) -> Self:
        spec = self._spec(self.name)
        for old, why in getattr(spec, "renamed", {}).items():
            if old in self.params:  # an old link or command: say what replaced the setting
                raise ValueError(f"{self.kind}.{old}: no longer a setting; {why}")
        checked = check_params(spec.hyperparams, dict(self.params), prefix=self.kind)
        if (check := getattr(spec, "check", None)) and (problem := check(checked)):
            raise ValueError(problem)
        object.__setattr__(self, "params", checked)
        return self

    @classmethod
    def parse(cls, text: str) -> Self:
        """Read ``name:key=value,...`` (the CLI and URL form)."""
        try:
            name, values = parse_spec(text)
        except ValueError as err:
            raise ConfigError(f"{cls.kind}: {err}") from None
        fields = {f: values.pop(f) for f in cls.extra_fields() if f in values}
        return cls.make(name=name, **fields, params=values)

    def to_spec(self) -> str:
        """The inverse of :meth:`parse`: the name, its extra fields, and the changed hyperparameters."""
        parts = [f"{f}={value_text(getattr(self, f))}" for f in self.extra_fields()] + self.changed()
        return f"{self.name}:{','.join(parts)}" if parts else self.name

    def changed(self) -> list[str]:
        """``key=value`` for each hyperparameter that differs from its default."""
        spec = self._spec(self.name)
        return [f"{p.name}={p.text(self.params[p.name])}" for p in spec.hyperparams if self.params[p.name] != p.default]


class OptimizerConfig(NamedWithParams):
    """An optimizer from the registry, its learning rate and its hyperparameters."""

    kind: ClassVar[str] = "optimizer"
    lr: float = 0.0

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_optimizer(name)

    @model_validator(mode="before")
    @classmethod
    def _default_lr(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("lr") in (None, "") and "name" in values:
            spec = get_optimizer(values["name"])
            values = {**values, "lr": spec.default_lr}
        return values

    @field_validator("lr")
    @classmethod
    def _lr(cls, lr: float) -> float:
        if not math.isfinite(lr) or lr <= 0 or lr > 1e9:
            raise ValueError(f"optimizer.lr: must be a finite number > 0 and <= 1e9, got {lr!r}")
        return lr

    @property
    def label(self) -> str:
        """Short legend text: the name, its lr and hyperparameters that differ from default."""
        return " ".join([get_optimizer(self.name).label, f"lr={lr_label(self.lr)}", *self.changed()])


class ScheduleConfig(NamedWithParams):
    """A learning-rate schedule from the registry and its hyperparameters."""

    kind: ClassVar[str] = "schedule"
    name: str = "constant"

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_schedule(name)


class AugmentConfig(NamedWithParams):
    """An augmentation (or mixing) from the registry and its hyperparameters."""

    kind: ClassVar[str] = "augment"
    name: str

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_augmentation(name)


class ReduceConfig(NamedWithParams):
    """A way to shrink the training data (fewer rows, features or bits) and its settings."""

    kind: ClassVar[str] = "reduce"
    name: str

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_reduction(name)


class ModelConfig(NamedWithParams):
    """A model family from the registry and its hyperparameters (widths, activation, ...)."""

    kind: ClassVar[str] = "model"
    name: str = "mlp"

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_model_spec(name)


class DataConfig(NamedWithParams):
    """Which data set, its options and the train/validation split."""

    kind: ClassVar[str] = "dataset"
    name: str = "digits"
    val_fraction: float = Field(0.2, gt=0.0, lt=0.9, allow_inf_nan=False)
    split_seed: int = Field(0, ge=0)

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_dataset_spec(name)

    @model_validator(mode="before")
    @classmethod
    def _options_alias(cls, values: Any) -> Any:
        # A data set's hyperparameters read as "options" in forms and older code.
        if isinstance(values, dict) and "options" in values:
            values = {**values, "params": {**values.get("params", {}), **values["options"]}}
            values.pop("options")
        return values

    @property
    def options(self) -> dict[str, Value]:
        """The data set's own hyperparameters (``n_samples``, ``noise``, ...)."""
        return self.params


class TrainingSetup(Flat):
    """What every run of a comparison shares: data, model, schedule, budget, device, step options."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    batch_size: int | None = Field(64, ge=1, le=1_000_000, description="None: full batch")
    device: Device = "auto"
    precision: Precision = "fp32"
    grad_clip: float | None = Field(
        None, gt=0.0, le=1e6, allow_inf_nan=False, description="max gradient norm; None: no clipping"
    )
    deterministic: bool = Field(True, description="on CUDA: reproducible kernels rather than the fastest")
    augment: tuple[AugmentConfig, ...] = Field((), max_length=8, description="applied to each training batch, in order")
    reduce: ReduceConfig | None = Field(None, description="shrink the training data first; None: all of it")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _full(cls, value: Any) -> Any:
        return None if value in ("full", "", "None", "none") else value

    @field_validator("grad_clip", mode="before")
    @classmethod
    def _no_clip(cls, value: Any) -> Any:
        return None if value in ("", "None", "none") else value

    @model_validator(mode="after")
    def _fits(self) -> Self:
        dataset, model = get_dataset_spec(self.data.name), get_model_spec(self.model.name)
        if model.needs_images and dataset.image_shape is None:
            image_sets = [n for n, s in DATASETS.items() if s.image_shape is not None]
            raise ValueError(
                f"model: {self.model.name!r} needs image data; {self.data.name!r} has none "
                f"(image sets: {', '.join(image_sets)})"
            )
        names = [a.name for a in self.augment]
        if twice := next((n for n in names if names.count(n) > 1), None):
            raise ValueError(f"augment: {twice!r} is given twice; give it once")
        for a in self.augment:
            if problem := check_fits(
                a.name, images=dataset.image_shape is not None, classification=dataset.task == "classification"
            ):
                raise ValueError(f"{problem}; {self.data.name!r} is {'image' if dataset.image_shape else 'tabular'} data")
        if self.reduce is not None:
            if get_reduction(self.reduce.name).classification_only and dataset.task != "classification":
                raise ValueError(f"reduce: {self.reduce.name!r} needs class labels; {self.data.name!r} is a regression")
            if self.reduce.name == "pca" and (model.needs_images or any(
                get_augmentation(a.name).needs == "images" for a in self.augment
            )):
                raise ValueError(
                    "reduce: 'pca' turns images into plain features; the CNN and image augmentations need images"
                )
        return self

    @property
    def schedule_note(self) -> str | None:
        """A non-blocking remark when the schedule's settings cannot act within this budget."""
        spec = get_schedule(self.schedule.name)
        return spec.note(self.schedule.params, Budget(self.epochs, 1)) if spec.note else None


class RunConfig(TrainingSetup):
    """One training run: a setup, one optimizer and one seed."""

    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.make(name="adam"))
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _optimizer_fits(self) -> Self:
        check_optimizer_fits(self.optimizer, batch_size=self.batch_size, precision=self.precision)
        return self


class ComparisonConfig(TrainingSetup):
    """Several optimizers times several seeds on one setup."""

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-compare"
    KIND: ClassVar[str] = "comparison"

    optimizers: tuple[OptimizerConfig, ...] = Field(min_length=1, max_length=20)
    seeds: tuple[int, ...] = Field((0,), min_length=1, max_length=20)
    target_loss: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    engine: EngineChoice = Field("auto", description="auto: batched where it applies")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @model_validator(mode="after")
    def _optimizers_fit(self) -> Self:
        check_distinct(self.optimizers)
        for opt in self.optimizers:  # what each run checks, said before any run starts
            batch = None if get_optimizer(opt.name).full_batch_only else self.batch_size
            check_optimizer_fits(opt, batch_size=batch, precision=self.precision)
        return self

    def runs(self) -> list[RunConfig]:
        """One run per optimizer and seed; full-batch-only optimizers get the full batch."""
        shared = self.model_dump(exclude={"optimizers", "seeds", "target_loss", "engine"})
        out = []
        for opt in self.optimizers:
            batch = None if get_optimizer(opt.name).full_batch_only else self.batch_size
            for seed in self.seeds:
                out.append(
                    RunConfig.make(**{**shared, "batch_size": batch}, optimizer=opt, seed=seed)
                )
        return out

    def key(self) -> str:
        """Stable short hash: the same comparison gets the same key in every process."""
        return config_hash(self)


def config_hash(cfg: BaseModel, *, exclude: set[str] | None = None, length: int = 12) -> str:
    """A stable short hash of ``cfg``'s values (less ``exclude``): the same in every process, so
    it names jobs, studies and MLflow runs."""
    blob = json.dumps(cfg.model_dump(mode="json", exclude=exclude), sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:length]


def check_seeds(value: Any) -> Any:
    """A list of distinct seeds in [0, MAX_SEED], from a list or ``"0,1,2"``."""
    value = int_list(value, field="seeds", example="0,1,2")
    if len(set(value)) != len(value):
        raise ValueError(f"seeds: repeated seed in {shown(value)}")
    if any(not 0 <= int(s) <= MAX_SEED for s in value):
        raise ValueError(f"seeds: each must be in [0, {MAX_SEED}], got {shown(value)}")
    return value


def check_optimizer_fits(opt: OptimizerConfig, *, batch_size: int | None, precision: Precision) -> None:
    """Raise ``ValueError`` when ``opt`` cannot train with this batch size or precision."""
    spec = get_optimizer(opt.name)
    if spec.full_batch_only and batch_size is not None:
        raise ValueError(
            f"batch_size: optimizer {opt.name!r} works on full batches only (got {batch_size}; use 'full')"
        )
    if spec.needs_closure and precision == "fp16":
        raise ValueError(
            f"precision: fp16 needs loss scaling, which {opt.name!r} (a closure "
            "optimizer) cannot use; choose bf16 or fp32"
        )


def check_distinct(optimizers: tuple[OptimizerConfig, ...]) -> None:
    """Each optimizer once: two identical entries would draw as one curve."""
    labels = [o.label for o in optimizers]
    if twice := next((label for label in labels if labels.count(label) > 1), None):
        raise ValueError(f"optimizers: {twice!r} appears twice; change its lr or a hyperparameter")


# How flatten writes a None whose field is set by default; batch_size's reads as what it means.
NONE = "none"
_NONE_WORDS = {"batch_size": "full"}

# Flat names that differ from the field name: "dataset" reads better in MLflow and URLs, and
# a list of optimizer specs repeats one query key.
_FLAT_NAMES = {"data": "dataset", "optimizers": "optimizer"}


def lr_label(lr: float) -> str:
    """A learning rate for a legend: 1e+09, 0.05, 3 (repr's 1000000000.0 misreads), still unique."""
    short = f"{lr:.6g}"
    return short if float(short) == lr else repr(lr)


def value_text(value: Any) -> str:
    """A config value as text that reads back to it: ``true``, a float's shortest repr, ``0,1,2``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def param_text(value: Any) -> str:
    """A flat value as one string (an MLflow parameter): a list of specs joined by spaces,
    which :func:`unflatten` splits again (a spec never holds a space)."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def flatten(cfg: Frozen) -> dict[str, Any]:
    """Flat dotted keys for MLflow params, URLs and the CLI; :func:`unflatten` reads them back.

    Unset optional values (``None``) are left out (written ``none`` where the field is set by
    default, ``full`` for ``batch_size``), and a registry choice brings only its own
    hyperparameters, so every key applies to the run.
    """
    out: dict[str, Any] = {}
    for field in type(cfg).model_fields:
        value, key = getattr(cfg, field), _FLAT_NAMES.get(field, field)
        if value is None and _none_written(type(cfg), field):
            out[key] = _NONE_WORDS.get(field, NONE)
            continue
        if value is None or value == ():
            continue
        if isinstance(value, NamedWithParams):
            out[key] = value.name
            out.update({f"{key}.{f}": getattr(value, f) for f in value.extra_fields()})
            spec = value._spec(value.name)
            out.update({f"{key}.{p.name}": p.text(value.params[p.name]) for p in spec.hyperparams})
        elif isinstance(value, tuple) and value and isinstance(value[0], NamedWithParams):
            out[key] = [v.to_spec() for v in value]
        else:
            out[key] = value_text(value) if isinstance(value, tuple) else value
    return out


def _none_written(cls: type[Frozen], field: str) -> bool:
    """Whether :func:`flatten` writes ``field``'s None as a word: it may be None and is not by default."""
    info = cls.model_fields.get(field)
    return info is not None and not info.is_required() and info.get_default(call_default_factory=True) is not None and (
        NoneType in get_args(info.annotation)
    )


_M = TypeVar("_M", bound=Frozen)


def unflatten(cls: type[_M], flat: Mapping[str, Any]) -> _M:
    """Build ``cls`` from :func:`flatten`'s keys (values may be strings, or a list of one where a
    URL repeats the key); defaults fill the rest."""
    values: dict[str, Any] = {}
    for field, info in cls.model_fields.items():
        key = _FLAT_NAMES.get(field, field)
        kind, given = _named_type(info.annotation), flat.get(key)
        if kind is not None and get_origin(info.annotation) is tuple:
            # A string holds one spec, or several separated by spaces (see param_text).
            specs = given.split() if isinstance(given, str) else list(given or [])
            values[field] = tuple(kind.parse(s) for s in specs)
            continue
        # A URL holds a key that lists registry specs (``optimizer``) as a list, one value too.
        if isinstance(given, list) and len(given) == 1:
            given = given[0]
        if kind is not None:
            sub = {k.removeprefix(f"{key}."): v for k, v in flat.items() if k.startswith(f"{key}.")}
            if given in (None, "") and not sub:
                continue
            named: dict[str, Any] = {f: sub.pop(f) for f in kind.extra_fields() if f in sub}
            if given not in (None, ""):
                named["name"] = given
            values[field] = {**named, "params": sub}
        elif given not in (None, ""):
            values[field] = given
    return cls.make(**values)


def _named_type(annotation: Any) -> type[NamedWithParams] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, NamedWithParams):
            return candidate
    return None


def param_specs(cfg: NamedWithParams) -> tuple[HyperParam, ...]:
    """The hyperparameters the registry declares for ``cfg``'s entry."""
    return cfg._spec(cfg.name).hyperparams
