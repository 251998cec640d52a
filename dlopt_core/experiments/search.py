"""A learning-rate search: one Optuna study per optimizer on one setup, with the same budget.

Fair by construction: every optimizer gets its own study with the same trial budget, sampler,
pruner and seed, so "which optimizer is easy to tune" is read off the studies side by side
(best-so-far against trials). :class:`SearchConfig` is what the LR search page holds and
links carry; :meth:`SearchConfig.studies` gives the studies, :func:`search_works` the
background work that fills them with local workers, and :func:`past_searches` finds the
searches a storage holds (they outlive the server that ran them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from optuna.trial import TrialState
from pydantic import Field, field_validator, model_validator

from dlopt_core.catalog.hyperparams import int_list
from dlopt_core.catalog.optimizers import OPTIMIZERS, get_optimizer
from dlopt_core.config import (
    MAX_SEED,
    config_hash,
    ComparisonConfig,
    OptimizerConfig,
    TrainingSetup,
    check_distinct,
)
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.study.config import CONFIG_ATTR, Metric, Pruner, Sampler, StudyConfig
from dlopt_core.experiments.study.store import storage_handle
from dlopt_core.experiments.study.summary import StudySummary
from dlopt_core.experiments.study.worker import StudyWork
from dlopt_core.experiments.study_storage import StudyStorage

MAX_OPTIMIZERS = 8
MAX_TRIALS_PER_OPTIMIZER = 500
# What a study config has that makes it one optimizer's part of a search (left out of the
# search's identity: studies of other optimizers on the same setup and search join it).
_PER_OPTIMIZER = {"optimizer", "lr_min", "lr_max", "n_trials", "study_name"}


class SearchConfig(TrainingSetup):
    """Several optimizers' learning-rate studies on one setup, each with ``n_trials`` trials.

    ``lr_min`` and ``lr_max`` hold one bound per optimizer, in the order of ``optimizers``;
    empty means each optimizer's default range (its registry range widened, see
    :data:`~dlopt_core.experiments.study.config.LR_WIDEN`).
    """

    optimizers: tuple[OptimizerConfig, ...] = Field(min_length=1, max_length=MAX_OPTIMIZERS)
    lr_min: tuple[float, ...] = ()
    lr_max: tuple[float, ...] = ()
    search_hyperparams: bool = False
    search_schedule: bool = False
    search_batch_size: bool = False
    sampler: Sampler = "tpe"
    pruner: Pruner = "median"
    n_trials: int = Field(12, ge=1, le=MAX_TRIALS_PER_OPTIMIZER, description="trials per optimizer")
    metric: Metric = "val_loss"
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("lr_min", "lr_max", mode="before")
    @classmethod
    def _bounds(cls, value: Any, info: Any) -> Any:
        return int_list(value, field=info.field_name, example="1e-4,0.01", kind=float)

    @model_validator(mode="after")
    def _studies_valid(self) -> Self:
        check_distinct(self.optimizers)
        if names := [o.name for o in self.optimizers if [p.name for p in self.optimizers].count(o.name) > 1]:
            raise ValueError(
                f"optimizers: {names[0]!r} appears twice; a search has one study per optimizer"
            )
        for field in ("lr_min", "lr_max"):
            given = getattr(self, field)
            if given and len(given) != len(self.optimizers):
                raise ValueError(
                    f"{field}: one bound per optimizer ({len(self.optimizers)}), got {len(given)}"
                )
        self.studies()  # each study's own checks (bounds in order, grid with one parameter, ...)
        return self

    def studies(self) -> list[StudyConfig]:
        """One study per optimizer, in order; a study's error names its optimizer."""
        shared = self.model_dump(exclude={"optimizers", "lr_min", "lr_max"})
        out = []
        for i, opt in enumerate(self.optimizers):
            bounds = {
                "lr_min": self.lr_min[i] if self.lr_min else None,
                "lr_max": self.lr_max[i] if self.lr_max else None,
            }
            try:
                out.append(StudyConfig.make(**shared, **bounds, optimizer=opt))
            except ConfigError as err:
                raise ValueError(f"{get_optimizer(opt.name).label}: {err}") from None
        return out

    def key(self) -> str:
        """Stable short hash of the setup and the search method (not the optimizers, bounds or
        budget): every study on it belongs to this search, see :func:`search_key`."""
        return search_key(self.studies()[0])

    def bounds(self) -> list[tuple[float, float]]:
        """Each optimizer's search range, defaults filled in."""
        return [(s.lr_min, s.lr_max) for s in self.studies()]  # type: ignore[misc]

    @classmethod
    def from_studies(cls, studies: Sequence[StudyConfig]) -> SearchConfig:
        """The search these studies make (same setup and method); the largest budget."""
        first = studies[0]
        if any(search_key(s) != search_key(first) for s in studies):
            raise ConfigError("studies: these studies have different setups; a search shares one")
        shared = first.model_dump(exclude=_PER_OPTIMIZER)
        return cls.make(
            **shared,
            optimizers=tuple(s.optimizer for s in studies),
            lr_min=tuple(s.lr_min for s in studies),  # type: ignore[misc]
            lr_max=tuple(s.lr_max for s in studies),  # type: ignore[misc]
            n_trials=max(s.n_trials for s in studies),
        )


def search_key(study: StudyConfig) -> str:
    """The search a study belongs to: a hash of its setup and method, without the optimizer."""
    return config_hash(study, exclude=_PER_OPTIMIZER, length=10)


def comparison_at_tuned(config: SearchConfig, summaries: Sequence[StudySummary]) -> ComparisonConfig:
    """The setup with each optimizer at its best trial's lr (and searched hyperparameters), the
    study's seed; optimizers with no completed trial are left out (ConfigError if none has one).

    A searched schedule or batch size is not carried over: a comparison shares one of each,
    and the tuned optimizers may disagree; the setup's own is used.
    """
    best = {s.optimizer: s.best for s in summaries if s.best is not None}
    optimizers = []
    for opt in config.optimizers:
        if (trial := best.get(opt.name)) is None:
            continue
        hyper = {k.removeprefix("optimizer."): v for k, v in trial.params.items() if k.startswith("optimizer.")}
        optimizers.append(OptimizerConfig.make(name=opt.name, lr=trial.lr, params={**opt.params, **hyper}))
    if not optimizers:
        raise ConfigError("optimizers: no study has a completed trial yet")
    shared = config.model_dump(include=set(TrainingSetup.model_fields))
    return ComparisonConfig.make(**shared, optimizers=tuple(optimizers), seeds=(config.seed,))


def search_works(
    config: SearchConfig, *, workers: int = 1, storage: str | None = None, track: bool = True,
) -> list[StudyWork]:
    """The background work that fills every study: ``workers`` workers per study.

    Interleaved (every study's worker 0, then every study's worker 1, ...): on a queue of a few
    slots the studies advance side by side, and a study that is already full lets its later
    workers end at once.
    """
    if not 1 <= workers <= 16:
        raise ConfigError(f"workers: between 1 and 16 local worker processes, got {workers}")
    studies = config.studies()
    return [StudyWork(s, storage=storage, worker=w, track=track) for w in range(workers) for s in studies]


@dataclass(frozen=True)
class PastSearch:
    """A search found in a storage: its studies (newest search first in :func:`past_searches`)."""

    key: str
    config: SearchConfig
    study_names: tuple[str, ...]
    finished: tuple[int, ...]  # per study: complete + pruned trials
    last_activity: datetime | None

    @property
    def label(self) -> str:
        """One line for a picker: what, how searched, with which optimizers, how far, when."""
        c = self.config
        searched = [name for flag, name in (
            (c.search_hyperparams, "+hyperparameters"), (c.search_schedule, "+schedule"), (c.search_batch_size, "+batch size"),
        ) if flag]
        done = ", ".join(
            f"{get_optimizer(o.name).label} {n} of {c.n_trials}" for o, n in zip(c.optimizers, self.finished)
        )
        when = f" · {self.last_activity:%Y-%m-%d %H:%M}" if self.last_activity else ""
        return (
            f"{c.data.name} · {c.model.name} · {c.epochs} epochs · {c.sampler}/{c.pruner} {' '.join(searched)}"
            f" · seed {c.seed} · trials done: {done}{when}"
        ).replace("  ", " ")


def past_searches(storage: StudyStorage | str | None = None, *, limit: int = 50) -> list[PastSearch]:
    """The searches in ``storage``, newest activity first; studies not made by dlopt are left out."""
    handle = storage_handle(storage)
    groups: dict[str, list[tuple[StudyConfig, str, int, datetime | None]]] = {}
    for frozen in handle.storage.get_all_studies():
        stored = frozen.user_attrs.get(CONFIG_ATTR)
        if stored is None:
            continue
        try:
            study = StudyConfig.from_dict(stored)
        except ConfigError:
            continue  # a study from an older dlopt whose config no longer validates
        study_id = handle.storage.get_study_id_from_name(frozen.study_name)
        trials = handle.storage.get_all_trials(study_id, deepcopy=False)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        stamps = [t.datetime_complete or t.datetime_start for t in trials]
        last = max((s for s in stamps if s is not None), default=None)
        groups.setdefault(search_key(study), []).append((study, frozen.study_name, finished, last))
    out = []
    for key, members in groups.items():
        # One study per optimizer: a renamed or resumed duplicate keeps the most advanced.
        by_optimizer: dict[str, tuple[StudyConfig, str, int, datetime | None]] = {}
        for m in members:
            held = by_optimizer.get(m[0].optimizer.name)  # a search has one study per optimizer name
            if held is None or m[2] > held[2]:
                by_optimizer[m[0].optimizer.name] = m
        # Registry order, as the page lists optimizers: the same search reads the same each time.
        order = list(OPTIMIZERS)
        chosen = sorted(by_optimizer.values(), key=lambda m: (order.index(m[0].optimizer.name), m[0].optimizer.label))
        try:
            config = SearchConfig.from_studies([m[0] for m in chosen])
        except ConfigError:
            continue
        stamps = [m[3] for m in chosen if m[3] is not None]
        out.append(PastSearch(
            key, config, tuple(m[1] for m in chosen), tuple(m[2] for m in chosen), max(stamps, default=None),
        ))
    out.sort(key=lambda p: p.last_activity or datetime.min, reverse=True)
    return out[:limit]
