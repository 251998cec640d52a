"""The Data page's two experiments, as comparisons whose runs differ in their data, not their optimizer.

- :class:`AugmentDemoConfig`: the same model trained on a small share of the training set
  without augmentation, with each chosen augmentation alone and with all of them together:
  does the gap between train and validation loss close?
- :class:`ReduceSweepConfig`: the same model on the full training set and on each way of
  shrinking it, at several sizes: validation accuracy against the bytes the data takes.

Both are plans a :class:`~dlopt_core.experiments.compare.Comparison` runs (``runs()``,
``key()``, ``run_label``), so they train, stream and log as comparisons do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.hyperparams import int_list
from dlopt_core.catalog.reductions import REDUCTIONS, get_reduction
from dlopt_core.config import (
    AugmentConfig,
    OptimizerConfig,
    ReduceConfig,
    RunConfig,
    TrainingSetup,
    check_seeds,
    config_hash,
)
from dlopt_core.engine.loop import load_run_data, reduced_split
from dlopt_core.experiments.compare import Comparison, RunResult

NO_AUGMENT = "no augmentation"
ALL_TOGETHER = "all together"
FULL_DATA = "full data"


class _DataPlan(TrainingSetup):
    """What both experiments share: one optimizer, seeds, and how a comparison runs them."""

    # The MLflow experiment its runs are logged in, and what the Runs page calls them.
    EXPERIMENT: ClassVar[str] = "dlopt-data"
    KIND: ClassVar[str] = "data comparison"

    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.make(name="adam", lr=0.003))
    seeds: tuple[int, ...] = Field((0,), min_length=1, max_length=5)
    engine: ClassVar[str] = "sequential"  # runs differ in their data: none could share a stacked pass
    target_loss: ClassVar[None] = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    def key(self) -> str:
        return config_hash(self)

    def _run(self, **changes: Any) -> RunConfig:
        shared = self.model_dump(include=set(TrainingSetup.model_fields))
        return RunConfig.make(**{**shared, **changes}, optimizer=self.optimizer)


class AugmentDemoConfig(_DataPlan):
    """Train on ``subset`` of the training set with each of ``augment`` alone, all of them, and none."""

    subset: float = Field(0.1, gt=0.0, le=1.0, description="share of the training set, to make it overfit")

    @model_validator(mode="after")
    def _needs_augmentation(self) -> Self:
        if not self.augment:
            raise ValueError("augment: choose at least one augmentation to compare with none")
        return self

    def variants(self) -> list[tuple[str, tuple[AugmentConfig, ...]]]:
        """(label, augmentations): none, each alone, and all together when there are several."""
        out = [(NO_AUGMENT, ())] + [(a.to_spec(), (a,)) for a in self.augment]
        if len(self.augment) > 1:
            out.append((ALL_TOGETHER, self.augment))
        return out

    def _reduce(self) -> ReduceConfig | None:
        return None if self.subset >= 1 else ReduceConfig.make(name="subsample", params={"fraction": self.subset})

    def runs(self) -> list[RunConfig]:
        return [
            self._run(augment=augment, reduce=self._reduce(), seed=seed)
            for _, augment in self.variants() for seed in self.seeds
        ]

    def run_label(self, config: RunConfig) -> str:
        return next(label for label, augment in self.variants() if augment == config.augment)

    def parent_name(self) -> str:
        return f"augmentation {self.key()} ({len(self.variants())} variants, {self.subset:.0%} of the data)"


# The sizes each kind of reduction is swept over.
FRACTIONS = (0.05, 0.1, 0.25, 0.5)
COMPONENTS = (2, 4, 8, 16)


class ReduceSweepConfig(_DataPlan):
    """The full training set against each of ``methods`` at each of its sizes."""

    methods: tuple[str, ...] = Field(("subsample", "balanced", "kmeans", "pca", "float16", "int8"), min_length=1)
    fractions: tuple[float, ...] = Field(FRACTIONS, min_length=1, max_length=8)
    components: tuple[int, ...] = Field(COMPONENTS, min_length=1, max_length=8)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> Any:
        return tuple(v for v in value.split(",") if v) if isinstance(value, str) else value

    @field_validator("fractions", mode="before")
    @classmethod
    def _fractions(cls, value: Any) -> Any:
        return int_list(value, field="fractions", example="0.05,0.1,0.25", kind=float)

    @field_validator("components", mode="before")
    @classmethod
    def _components(cls, value: Any) -> Any:
        return int_list(value, field="components", example="2,4,8")

    @model_validator(mode="after")
    def _valid(self) -> Self:
        for name in self.methods:
            get_reduction(name)  # an unknown name lists the allowed ones
        self.variants()  # each reduction checks its settings against this data set
        return self

    def variants(self) -> list[tuple[str, str, ReduceConfig | None]]:
        """(method, label, reduction): the full data first, then each method at each size."""
        out: list[tuple[str, str, ReduceConfig | None]] = [(FULL_DATA, FULL_DATA, None)]
        for name in self.methods:
            names = {p.name for p in REDUCTIONS[name].hyperparams}
            if "fraction" in names:
                sizes = [{"fraction": f} for f in self.fractions]
            elif "components" in names:
                sizes = [{"components": c} for c in self.components]
            else:
                sizes = [{}]
            for params in sizes:
                reduce = ReduceConfig.make(name=name, params=params)
                self._run(reduce=reduce)  # the data set's own checks (classes, images)
                out.append((name, reduce_label(reduce), reduce))
        return out

    def runs(self) -> list[RunConfig]:
        return [self._run(reduce=reduce, seed=seed) for _, _, reduce in self.variants() for seed in self.seeds]

    def run_label(self, config: RunConfig) -> str:
        return FULL_DATA if config.reduce is None else reduce_label(config.reduce)

    def parent_name(self) -> str:
        return f"data reduction {self.key()} ({len(self.variants())} variants)"


def reduce_label(reduce: ReduceConfig) -> str:
    """``kmeans 0.25``, ``pca 8``, ``int8``: the method and its size, defaults included."""
    spec = get_reduction(reduce.name)
    return " ".join([reduce.name, *(spec_param.text(reduce.params[spec_param.name]) for spec_param in spec.hyperparams)])


@dataclass(frozen=True)
class VariantRow:
    """One variant's result, the mean over its seeds (``None`` until a run has evaluated)."""

    label: str
    method: str
    val_loss: float | None
    best_val_loss: float | None  # the lowest over the evaluations: overfitting shows as last > best
    val_metric: float | None
    train_loss: float | None
    gap: float | None  # validation minus train loss: how much it overfits
    stored_bytes: int
    rows: int
    seconds_per_epoch: float | None
    finished: bool
    status: str  # the runs' own: finished, training, cancelled at step N, diverged at step N, ...


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def variant_rows(comparison: Comparison) -> list[VariantRow]:
    """One row per variant (runs grouped by label), in the plan's order."""
    groups: dict[str, list[RunResult]] = {}
    for r in comparison.runs:
        groups.setdefault(r.label, []).append(r)
    rows = []
    for label, runs in groups.items():
        evals = [next((rec for rec in reversed(r.records) if rec.is_eval), None) for r in runs]
        lows = [min(rec.val_loss for rec in r.records if rec.is_eval and rec.val_loss is not None) for r in runs
                if any(rec.is_eval and rec.val_loss is not None for rec in r.records)]
        done = [e for e in evals if e is not None]
        val = [e.val_loss for e in done if e.val_loss is not None]
        metric = [e.val_metric for e in done if e.val_metric is not None]
        train = [e.train_loss for e in done if e.train_loss is not None]
        config = runs[0].config
        split = reduced_split(config) if config.reduce is not None else None
        if split is None:
            stored, rows_kept = full_size(config)
        else:
            stored, rows_kept = split.stored_bytes + split.extra_bytes, split.n_train
        per_epoch = [r.wall_time / r.records[-1].epoch for r in runs if r.records and r.records[-1].epoch > 0 and r.wall_time > 0]
        statuses = sorted({r.status_text for r in runs})
        rows.append(VariantRow(
            label, config.reduce.name if config.reduce else FULL_DATA,
            _mean(val), _mean(lows), _mean(metric), _mean(train),
            None if not val or not train else _mean(val) - _mean(train),  # type: ignore[operator]
            stored, rows_kept, _mean(per_epoch), all(r.status.ended for r in runs), ", ".join(statuses),
        ))
    return rows


def full_size(config: RunConfig) -> tuple[int, int]:
    """The unreduced training set's bytes as float32 features plus its labels, and its rows."""
    data = load_run_data(config.model_copy(update={"reduce": None}))
    return data.x_train.numel() * 4 + data.y_train.numel() * data.y_train.element_size(), len(data.x_train)
