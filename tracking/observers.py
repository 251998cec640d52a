"""MLflow's observer for each experiment kind: what the ``dlopt.tracking`` entry point names."""

from __future__ import annotations

from typing import Any

from dlopt_core.experiments.compress.config import CompressionConfig
from dlopt_core.experiments.continual import ContinualConfig
from dlopt_core.experiments.observer import Observer
from dlopt_core.experiments.share import ShareConfig
from dlopt_core.experiments.stream import StreamConfig
from dlopt_core.experiments.study.config import StudyConfig
from tracking.compression_log import CompressionLogger
from tracking.continual_log import ContinualLogger
from tracking.mlflow_log import MlflowObserver
from tracking.share_log import ShareLogger
from tracking.stream_log import StreamLogger
from tracking.study_log import StudyLogger

# Kinds with a logger of their own; every other kind trains runs, logged as a comparison's.
LOGGERS: dict[str, type[Observer]] = {
    StudyConfig.KIND: StudyLogger, CompressionConfig.KIND: CompressionLogger, ShareConfig.KIND: ShareLogger,
    StreamConfig.KIND: StreamLogger, ContinualConfig.KIND: ContinualLogger,
}


def mlflow_observer(kind: str, *, experiment: str, **options: Any) -> Observer:
    """The observer that logs an experiment of ``kind`` (a config class's ``KIND``) to MLflow."""
    return LOGGERS.get(kind, MlflowObserver)(experiment=experiment, **options)
