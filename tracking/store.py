"""Storage locations from the environment, with embedded SQLite defaults under one folder.

``DLOPT_HOME`` (default ``./.dlopt``) holds ``mlflow.db``, ``artifacts/`` and ``spool/``
(writes an unreachable store could not take, see :mod:`tracking.spool`);
``MLFLOW_TRACKING_URI`` points a team at a shared MLflow server instead.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# Runs stay on this machine: no usage telemetry (set before mlflow is imported).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# With an http tracking server, set_terminated writes "View run ... at: http://..." to stdout
# (mlflow/tracking/_tracking_service/client.py, _log_url), which breaks the CLI's --json; it
# also costs one more get_run request per run. This is MLflow's own switch for it.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from dlopt_core.config import ComparisonConfig  # noqa: E402

EXPERIMENT = ComparisonConfig.EXPERIMENT
# MLflow 3 opens an experiment in its GenAI view (traces, prompts) or its classic ML view (runs,
# metrics, charts) by this tag; without it the UI guesses, and guessed GenAI for dlopt's runs.
# The values are the UI's own enum (mlflow/server/js: GENAI_DEVELOPMENT, CUSTOM_MODEL_DEVELOPMENT).
KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"
# What the UI writes or assumes when nobody chose: dlopt may replace these with its own choice.
_UNCHOSEN_KINDS = ("", "genai_development_inferred", "custom_model_development_inferred", "no_inferred_type")


@dataclass(frozen=True)
class StoreSettings:
    """Resolved storage locations."""

    home: Path
    mlflow_uri: str
    artifact_root: str

    @property
    def is_remote(self) -> bool:
        return self.mlflow_uri.startswith(("http://", "https://"))

    @property
    def spool_dir(self) -> Path:
        """Where writes the store could not take wait, one JSON-lines file per run."""
        return self.home / "spool"


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


# The path of an empty, migrated ``mlflow.db`` that a new SQLite store starts as (made by this
# same MLflow; see make_template); unset: a new store runs MLflow's migrations.
TEMPLATE_ENV = "DLOPT_STORE_TEMPLATE"


def make_template(path: Path) -> Path:
    """An empty SQLite store with MLflow's schema at ``path``, for :data:`TEMPLATE_ENV`."""
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@functools.lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    # MlflowClient() builds the store; on a new SQLite file that runs MLflow's schema
    # migrations, which are not safe to run twice at once: 4 CLI processes started together
    # on a new DLOPT_HOME lost runs in 10/10 tries ("table _alembic_tmp_experiments already
    # exists", "duplicate column name: step") and left the store broken in 2/10. The first
    # set-up is therefore serialised across processes; later ones find the tables and return.
    # The lock file sits beside the database (in DLOPT_HOME by default), so every process
    # that opens this database takes the same lock, whatever its DLOPT_HOME.
    path = _sqlite_path(uri)
    if path is None:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".setup-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        template = os.environ.get(TEMPLATE_ENV)
        if template and not (path.exists() and path.stat().st_size):
            # A new store as a copy of an empty one already migrated: the migrations take 1-2 s,
            # which the test suite paid once per test (each test has a home of its own).
            shutil.copyfile(template, path)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; ``None`` for other stores and in-memory ones."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0])


def experiment_id(name: str = EXPERIMENT, store: StoreSettings | None = None) -> str:
    """The id of experiment ``name``, created on first use with artifacts under the home.

    Every experiment dlopt writes to is tagged for MLflow's classic ML view (:data:`KIND_TAG`):
    when it creates one, and when it first uses one made before (or by someone else) that has
    no kind chosen yet. A kind a person chose in the UI is left as it is.
    """
    store = store or settings()
    c = client(store)
    found = c.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get(KIND_TAG, "") in _UNCHOSEN_KINDS:
            _tag_classic(c, found.experiment_id)
        return found.experiment_id
    location = None if store.is_remote else f"{store.artifact_root}/{name}"
    try:
        return c.create_experiment(name, artifact_location=location, tags={KIND_TAG: CLASSIC_ML})
    except Exception:
        # Another worker may have created it between our lookup and create.
        found = c.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _tag_classic(c: MlflowClient, experiment: str) -> None:
    try:
        c.set_experiment_tag(experiment, KIND_TAG, CLASSIC_ML)
    except MlflowException as err:
        # A user who may log runs but not edit the experiment (a shared server's permissions):
        # the view it opens in is not worth refusing the runs for.
        if not 400 <= err.get_http_status_code() < 500:
            raise
