"""A compression's config: the baseline's setup and the methods applied to it."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.hyperparams import int_list, parse_spec
from dlopt_core.catalog.models import get_model_spec
from dlopt_core.compression.methods import get_compression
from dlopt_core.config import ModelConfig, NamedWithParams, RunConfig, config_hash
from dlopt_core.errors import ConfigError

BASELINE = "baseline"


class MethodConfig(NamedWithParams):
    """A compression method from the registry, its settings and (for distillation) a student.

    Written ``prune_structured:sparsity=0.5`` or ``distill:student=mlp:hidden=32,temperature=4``;
    a distillation's keys that are not its own belong to the student
    (``distill:student=mlp:hidden=32,activation=tanh``).
    """

    kind: ClassVar[str] = "method"
    name: str
    student: ModelConfig | None = None

    @classmethod
    def _spec(cls, name: str) -> Any:
        return get_compression(name)

    @model_validator(mode="after")
    def _student(self) -> Self:
        spec = get_compression(self.name)
        if spec.needs_student and self.student is None:
            raise ValueError(f"{self.name}: needs student=<model>, e.g. {self.name}:student=mlp:hidden=32")
        if not spec.needs_student and self.student is not None:
            raise ValueError(f"{self.name}: takes no student")
        return self

    @classmethod
    def parse(cls, text: str) -> Self:
        """Read ``name:key=value,...``; see the class docstring for students."""
        try:
            name, values = parse_spec(text)
            spec = get_compression(name)
        except ValueError as err:
            raise ConfigError(f"method: {err}") from None
        student = values.pop("student", None)
        if student is not None:
            own = {p.name for p in spec.hyperparams}
            moved = {k: values.pop(k) for k in list(values) if k not in own}
            model_name = student.partition(":")[0]
            allowed = {p.name for p in get_model_spec(model_name).hyperparams} if model_name in _model_names() else set()
            if unknown := sorted(set(moved) - allowed):
                raise ConfigError(
                    f"{name}.{unknown[0]}: unknown setting (allowed: {', '.join(own) or 'none'}; for the student "
                    f"{model_name}: {', '.join(sorted(allowed)) or 'none'})"
                )
            if moved:
                student += ("," if ":" in student else ":") + ",".join(f"{k}={v}" for k, v in moved.items())
            student_config = ModelConfig.parse(student)
            return cls.make(name=name, student=student_config, params=values)
        return cls.make(name=name, params=values)

    def to_spec(self) -> str:
        """The inverse of :meth:`parse`."""
        parts = ([f"student={self.student.to_spec()}"] if self.student is not None else []) + self.changed()
        return f"{self.name}:{','.join(parts)}" if parts else self.name


def _model_names() -> set[str]:
    from dlopt_core.catalog.models import MODELS

    return set(MODELS)


class CompressionConfig(RunConfig):
    """The baseline's setup (data, model, optimizer, budget, seed) and the methods to apply to it.

    ``sparsities``: each method with a sparsity also runs at each of these (the
    accuracy-vs-sparsity curves). ``baseline_run``: the MLflow run whose weights are the
    baseline (they are passed in beside the config); unset, the baseline is trained here.
    """

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-compress"
    KIND: ClassVar[str] = "compression"

    methods: tuple[MethodConfig, ...] = Field(min_length=1, max_length=24)
    sparsities: tuple[float, ...] = Field((), max_length=20)
    baseline_run: str | None = Field(None, max_length=64)
    latency_repeats: int = Field(20, ge=3, le=1000, description="timed forward passes per latency")
    compile: bool = Field(False, description="also time torch.compile'd models (seconds per model)")
    sensitivity_sparsity: float | None = Field(
        0.5, ge=0.0, lt=1.0, allow_inf_nan=False, description="per-layer sensitivity at this sparsity; None: skip",
    )

    @field_validator("sparsities", mode="before")
    @classmethod
    def _sparsities(cls, value: Any) -> Any:
        value = int_list(value, field="sparsities", example="0.25,0.5,0.9", kind=float)
        if isinstance(value, (list, tuple)):
            bad = [v for v in value if not isinstance(v, (int, float)) or not 0 <= float(v) < 1]
            if bad:
                raise ValueError(f"sparsities: each must be in [0, 1), got {bad[0]!r}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        labels = [v.to_spec() for v in self.variants()]
        if twice := next((label for label in labels if labels.count(label) > 1), None):
            raise ValueError(f"methods: {twice!r} appears twice")
        return self

    def variants(self) -> list[MethodConfig]:
        """The methods, each sweepable one also at every one of ``sparsities`` (in order, no repeats)."""
        out: list[MethodConfig] = []
        for m in self.methods:
            out.append(m)
            if get_compression(m.name).sweeps_sparsity:
                for s in self.sparsities:
                    variant = m.model_copy(update={"params": {**m.params, "sparsity": float(s)}})
                    if all(v.to_spec() != variant.to_spec() for v in out):
                        out.append(variant)
        return out

    def baseline_config(self) -> RunConfig:
        """The baseline's run config (what a run of it logs)."""
        return RunConfig.make(**self.model_dump(include=set(RunConfig.model_fields)))

    def key(self) -> str:
        return "compress-" + config_hash(self)
