"""Where runs and studies live: MLflow and Optuna storage, and queries as DataFrames."""

from tracking.mlflow_log import MlflowObserver
from tracking.store import StoreSettings, settings

__all__ = ["MlflowObserver", "StoreSettings", "settings"]
