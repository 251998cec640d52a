"""Storage locations from the environment, with embedded SQLite defaults under one folder.

``DLOPT_HOME`` (default ``./.dlopt``) holds ``mlflow.db`` and ``artifacts/``;
``MLFLOW_TRACKING_URI`` points a team at a shared MLflow server instead.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

# Runs stay on this machine: no usage telemetry (set before mlflow is imported).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow import MlflowClient  # noqa: E402

EXPERIMENT = "dlopt-compare"


@dataclass(frozen=True)
class StoreSettings:
    """Resolved storage locations."""

    home: Path
    mlflow_uri: str
    artifact_root: str

    @property
    def is_remote(self) -> bool:
        return self.mlflow_uri.startswith(("http://", "https://"))


def settings() -> StoreSettings:
    """Read the environment now (tests and servers change it between calls)."""
    home = Path(os.environ.get("DLOPT_HOME", ".dlopt")).expanduser().resolve()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    return StoreSettings(home, uri, (home / "artifacts").as_uri())


def client(store: StoreSettings | None = None) -> MlflowClient:
    """An MlflowClient with an explicit URI (never the fluent API's global state)."""
    store = store or settings()
    if store.is_remote:
        # An unreachable server should be a clear error in seconds, not minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    else:
        store.home.mkdir(parents=True, exist_ok=True)
    return _client(store.mlflow_uri)


@functools.lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(name: str = EXPERIMENT, store: StoreSettings | None = None) -> str:
    """The id of experiment ``name``, created on first use with artifacts under the home."""
    store = store or settings()
    c = client(store)
    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if store.is_remote else f"{store.artifact_root}/{name}"
    try:
        return c.create_experiment(name, artifact_location=location)
    except Exception:
        # Another worker may have created it between our lookup and create.
        found = c.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
