"""Where runs and studies live: MLflow and Optuna storage, and queries as DataFrames."""

from tracking.store import StoreSettings, settings  # first: it configures mlflow's environment
from tracking.mlflow_log import MlflowObserver
from tracking.reconcile import Recovery, end_orphaned_runs, recover
from tracking.spool import ReplayResult, replay_spool

__all__ = [
    "MlflowObserver",
    "Recovery",
    "ReplayResult",
    "StoreSettings",
    "end_orphaned_runs",
    "recover",
    "replay_spool",
    "settings",
]
