"""Validated, frozen configs for a run and for a comparison of runs.

``to_dict()`` gives flat string-friendly keys (what MLflow logs as params and what the CLI
and URL carry); ``from_dict()`` reads them back. Bad values raise :class:`ConfigError`,
whose message names the field, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dlopt_core.catalog.datasets import get_dataset_spec
from dlopt_core.catalog.models import ACTIVATIONS, get_model_spec
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.catalog.hyperparams import check_params, int_list, parse_spec
from dlopt_core.catalog.schedules import Budget, get_schedule

Device = Literal["auto", "cpu", "cuda", "mps"]
Scalar = float | int | bool
MAX_EPOCHS = 10_000


class ConfigError(ValueError):
    """A config value is not allowed; the message says which, and what is."""


def _format(err: ValidationError, prefix: str) -> str:
    lines = []
    for e in err.errors():
        msg = str(e["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in e["loc"])
        where = ".".join(p for p in (prefix, loc) if p)
        if where and not msg.startswith(f"{where}:") and ":" not in msg.split(" ")[0]:
            msg = f"{where}: {msg} (got {e.get('input')!r})"
        lines.append(msg)
    return "; ".join(lines)


_Model = TypeVar("_Model", bound="Frozen")


class Frozen(BaseModel):
    """Immutable, unknown keys rejected, errors turned into :class:`ConfigError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def make(cls: type[_Model], **values: Any) -> _Model:
        """Validate ``values``; raise :class:`ConfigError` on the first bad field."""
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise ConfigError(_format(err, "")) from None


class NamedWithParams(Frozen):
    """A registry name with its hyperparameters, checked against the registry's ranges."""

    name: str
    params: dict[str, Scalar] = Field(default_factory=dict)

    def _specs(self) -> Any:
        raise NotImplementedError

    @model_validator(mode="after")
    def _check(self) -> Self:
        spec = self._specs()
        kind = type(self).__name__.removesuffix("Config").lower()
        checked = check_params(spec.hyperparams, dict(self.params), prefix=kind)
        if (check := getattr(spec, "check", None)) and (problem := check(checked)):
            raise ValueError(problem)
        object.__setattr__(self, "params", checked)
        return self


class OptimizerConfig(NamedWithParams):
    """An optimizer from the registry, its learning rate and its hyperparameters."""

    lr: float = 0.0

    def _specs(self) -> Any:
        return get_optimizer(self.name)

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

    @classmethod
    def parse(cls, text: str) -> OptimizerConfig:
        """Read ``name:lr=0.1,momentum=0.9`` (the CLI and URL form)."""
        try:
            name, values = parse_spec(text)
        except ValueError as err:
            raise ConfigError(f"optimizer: {err}") from None
        lr = values.pop("lr", None)
        return cls.make(name=name, lr=lr, params=values)

    def to_spec(self) -> str:
        """The inverse of :meth:`parse`."""
        defaults = {p.name: p.default for p in get_optimizer(self.name).hyperparams}
        changed = [f"{k}={_text(v)}" for k, v in self.params.items() if v != defaults[k]]
        return f"{self.name}:{','.join([f'lr={_text(self.lr)}', *changed])}"

    @property
    def label(self) -> str:
        """Short legend text: the name, its lr and hyperparameters that differ from default."""
        spec = get_optimizer(self.name)
        changed = [
            f"{p.name}={_text(self.params[p.name])}"
            for p in spec.hyperparams
            if self.params[p.name] != p.default
        ]
        return " ".join([spec.label, f"lr={_text(self.lr)}", *changed])


class ScheduleConfig(NamedWithParams):
    """A learning-rate schedule from the registry and its hyperparameters."""

    name: str = "constant"

    def _specs(self) -> Any:
        return get_schedule(self.name)


class DataConfig(Frozen):
    """Which data set, its options and the train/validation split."""

    name: str = "digits"
    options: dict[str, Scalar] = Field(default_factory=dict)
    val_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    split_seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        spec = get_dataset_spec(self.name)
        checked = check_params(spec.hyperparams, dict(self.options), prefix="dataset")
        object.__setattr__(self, "options", checked)
        return self


class ModelConfig(Frozen):
    """Which model family and its shape."""

    name: str = "mlp"
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden(cls, value: Any) -> Any:
        value = int_list(value, field="model.hidden", example="64,32")
        if any(int(w) < 1 or int(w) > 4096 for w in value):
            raise ValueError(f"model.hidden: widths must be in [1, 4096], got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        get_model_spec(self.name)
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation: unknown {self.activation!r} (allowed: {', '.join(ACTIVATIONS)})"
            )
        return self


class TrainingSetup(Frozen):
    """What every run of a comparison shares: data, model, schedule, budget, device."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    batch_size: int | None = Field(64, ge=1, le=1_000_000, description="None: full batch")
    device: Device = "auto"

    @field_validator("batch_size", mode="before")
    @classmethod
    def _full(cls, value: Any) -> Any:
        return None if value in ("full", "", "None", "none") else value

    @model_validator(mode="after")
    def _fits(self) -> Self:
        dataset, model = get_dataset_spec(self.data.name), get_model_spec(self.model.name)
        if model.needs_images and dataset.image_shape is None:
            raise ValueError(
                f"model: {self.model.name!r} needs image data; {self.data.name!r} has none "
                f"(image sets: {', '.join(_image_sets())})"
            )
        spec = get_schedule(self.schedule.name)
        if spec.fits and (msg := spec.fits(self.schedule.params, Budget(self.epochs, 1))):
            raise ValueError(msg)
        return self


class RunConfig(TrainingSetup):
    """One training run: a setup, one optimizer and one seed."""

    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.make(name="adam"))
    seed: int = Field(0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _full_batch(self) -> Self:
        if get_optimizer(self.optimizer.name).full_batch_only and self.batch_size is not None:
            raise ValueError(
                f"batch_size: optimizer {self.optimizer.name!r} works on full batches only "
                f"(got {self.batch_size}; use 'full')"
            )
        return self

    def to_dict(self) -> dict[str, str | float | int]:
        """Flat params, exactly what MLflow logs."""
        return {**_setup_dict(self), **_prefixed("optimizer", self.optimizer), "seed": self.seed}

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> RunConfig:
        """Read back :meth:`to_dict` (values may be strings, as MLflow returns them)."""
        values = _setup_values(flat)
        values["optimizer"] = _unprefixed("optimizer", flat)
        values["seed"] = flat.get("seed", 0)
        return cls.make(**values)


class ComparisonConfig(TrainingSetup):
    """Several optimizers times several seeds on one setup."""

    optimizers: tuple[OptimizerConfig, ...] = Field(min_length=1, max_length=20)
    seeds: tuple[int, ...] = Field((0,), min_length=1, max_length=20)
    target_loss: float | None = Field(None, gt=0.0)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        value = int_list(value, field="seeds", example="0,1,2")
        if len(set(value)) != len(value):
            raise ValueError(f"seeds: repeated seed in {value!r}")
        if any(int(s) < 0 for s in value):
            raise ValueError(f"seeds: must be >= 0, got {value!r}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        check_distinct(self.optimizers)
        return self

    def runs(self) -> list[RunConfig]:
        """One run per optimizer and seed; full-batch-only optimizers get the full batch."""
        shared = self.model_dump(exclude={"optimizers", "seeds", "target_loss"})
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
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """Flat keys; ``optimizer`` is a list of ``name:lr=...`` specs."""
        out: dict[str, Any] = {**_setup_dict(self), "seeds": ",".join(map(str, self.seeds))}
        out["optimizer"] = [o.to_spec() for o in self.optimizers]
        if self.target_loss is not None:
            out["target_loss"] = self.target_loss
        return out

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> ComparisonConfig:
        """Read back :meth:`to_dict` (also the URL's query parameters)."""
        specs = flat.get("optimizer", [])
        specs = [specs] if isinstance(specs, str) else list(specs)
        values = _setup_values(flat)
        values["optimizers"] = tuple(OptimizerConfig.parse(s) for s in specs)
        values["seeds"] = flat.get("seeds", "0")
        if flat.get("target_loss") not in (None, ""):
            values["target_loss"] = flat["target_loss"]
        return cls.make(**values)


def check_distinct(optimizers: tuple[OptimizerConfig, ...]) -> None:
    """Each optimizer once: two identical entries would draw as one curve."""
    labels = [o.label for o in optimizers]
    if twice := next((label for label in labels if labels.count(label) > 1), None):
        raise ValueError(f"optimizers: {twice!r} appears twice; change its lr or a hyperparameter")


def _image_sets() -> list[str]:
    from dlopt_core.catalog.datasets import DATASETS

    return [n for n, s in DATASETS.items() if s.image_shape is not None]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


def _prefixed(prefix: str, cfg: NamedWithParams | DataConfig) -> dict[str, Any]:
    params = cfg.options if isinstance(cfg, DataConfig) else cfg.params
    out: dict[str, Any] = {prefix: cfg.name}
    if isinstance(cfg, OptimizerConfig):
        out[f"{prefix}.lr"] = cfg.lr
    out.update({f"{prefix}.{k}": v for k, v in params.items()})
    return out


def _unprefixed(prefix: str, flat: dict[str, Any]) -> dict[str, Any]:
    params = {k.removeprefix(f"{prefix}."): v for k, v in flat.items() if k.startswith(f"{prefix}.")}
    values: dict[str, Any] = {"name": flat.get(prefix)}
    if prefix == "optimizer":
        values["lr"] = params.pop("lr", None)
    if prefix == "dataset":
        values["val_fraction"] = params.pop("val_fraction", 0.2)
        values["split_seed"] = params.pop("split_seed", 0)
        values["options"] = params
    else:
        values["params"] = params
    return {k: v for k, v in values.items() if v is not None}


def _setup_dict(cfg: TrainingSetup) -> dict[str, Any]:
    return {
        **_prefixed("dataset", cfg.data),
        "dataset.val_fraction": cfg.data.val_fraction,
        "dataset.split_seed": cfg.data.split_seed,
        "model": cfg.model.name,
        "model.hidden": ",".join(map(str, cfg.model.hidden)),
        "model.activation": cfg.model.activation,
        "model.dropout": cfg.model.dropout,
        **_prefixed("schedule", cfg.schedule),
        "epochs": cfg.epochs,
        "batch_size": "full" if cfg.batch_size is None else cfg.batch_size,
        "device": cfg.device,
    }


def _setup_values(flat: dict[str, Any]) -> dict[str, Any]:
    model = {
        k: flat[f"model.{k}"] for k in ("hidden", "activation", "dropout") if f"model.{k}" in flat
    }
    values: dict[str, Any] = {
        "data": _unprefixed("dataset", flat),
        "model": {"name": flat.get("model", "mlp"), **model},
        "schedule": _unprefixed("schedule", flat),
    }
    for key in ("epochs", "batch_size", "device"):
        if key in flat:
            values[key] = flat[key]
    if "name" not in values["data"]:
        values["data"]["name"] = "digits"
    if "name" not in values["schedule"]:
        values["schedule"]["name"] = "constant"
    return values
