"""Where runs and studies live: MLflow and Optuna storage, and queries as DataFrames."""

from tracking.store import StoreSettings, settings  # first: it configures mlflow's environment
from tracking.mlflow_log import MlflowObserver

__all__ = ["MlflowObserver", "StoreSettings", "settings"]
