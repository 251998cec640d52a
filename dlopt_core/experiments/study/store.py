"""A study in its storage: created or resumed by name, read back, its workers' sampler seeds."""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning

from dlopt_core.catalog.samplers import build_pruner, build_sampler
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.study.config import CONFIG_ATTR, StudyConfig
from dlopt_core.experiments.study_storage import StudyStorage, study_storage


def worker_seed(config: StudyConfig, worker: int | None) -> int:
    """The sampler seed of worker ``worker`` (0, 1, ...): the same worker index, the same draws.

    ``None``: a fresh seed for this process. Workers must not share one: with the same seed, two
    workers' random start-up trials would be the same points.
    """
    entropy = [config.seed, worker] if worker is not None else [config.seed, os.getpid(), time.time_ns()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def storage_handle(storage: StudyStorage | str | None) -> StudyStorage:
    """``storage`` opened: a handle as it is, a URL (``None``: the default) through :func:`study_storage`."""
    return storage if isinstance(storage, StudyStorage) else study_storage(storage)


def open_study(config: StudyConfig, storage: StudyStorage | str | None = None, *, worker: int | None = None) -> optuna.Study:
    """Create the study, or resume it by name; a name taken by another setup is a ConfigError."""
    handle = storage_handle(storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        study = optuna.create_study(
            study_name=config.name, storage=handle.storage,
            sampler=build_sampler(config.sampler, config, seed=worker_seed(config, worker)),
            pruner=build_pruner(config.pruner, config), direction=config.direction, load_if_exists=True,
        )
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is not None:
        if StudyConfig.from_dict(stored).key() != config.key():
            raise ConfigError(
                f"study_name: a study named {config.name!r} exists in {handle.url} with another setup or search; "
                "choose another name"
            )
    if stored is None or stored.get("n_trials") != config.n_trials:
        # The budget is the latest worker's: resuming with a larger n_trials adds trials.
        study.set_user_attr(CONFIG_ATTR, config.to_dict())
    return study


def load_study(name: str, storage: StudyStorage | str | None = None) -> optuna.Study:
    """An existing study, to read (its Optuna figures, its trials); KeyError if there is none."""
    return optuna.load_study(study_name=name, storage=storage_handle(storage).storage)


def study_names(storage: StudyStorage | str | None = None) -> list[str]:
    """Every study in the storage (past ones survive a server restart: they live there)."""
    return optuna.get_all_study_names(storage_handle(storage).storage)


def study_config(study: optuna.Study) -> StudyConfig:
    """The config a study was created with (the latest worker's budget)."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise ConfigError(f"study_name: {study.study_name!r} was not made by dlopt (it has no config)")
    return StudyConfig.from_dict(stored)
