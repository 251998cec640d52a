"""The team deployment (deploy/): its compose file is valid and consistent, and its topology works.

No Docker engine here, so the topology runs natively: Debian's PostgreSQL prepared as the
postgres image would prepare its volume, ``deploy/mlflow-server.sh`` (MLflow behind its
basic-auth app, runs in PostgreSQL, artifacts served from a folder) and ``deploy/app.sh``
(the dashboard), each with the environment compose.yaml gives it. A comparison run in
Chromium is then read back from the MLflow server's REST API, signed in, as a colleague would.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from browser import CURVE_NAMES_JS, compare_url, run_and_time_first_point
from mlflow_server import free_port
from team_topology import (
    COMPOSE, ROOT, Service, init_postgres_like_the_image, interpolate, load_compose, service_command, service_env,
)

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
ENV_EXAMPLE = COMPOSE.parent / "env.example"
# Under pytest-xdist (./dev.sh test) the whole module runs on one worker: its PostgreSQL roles,
# MLflow server and app (the module's ``team`` fixture) are made once, not once per worker.
pytestmark = pytest.mark.xdist_group("team-topology")
# What deploy/.env holds on a real server (see deploy/env.example).
SECRETS = {
    "POSTGRES_PASSWORD": "pg0topology0secret",
    "MLFLOW_ADMIN_USERNAME": "admin",
    "MLFLOW_ADMIN_PASSWORD": "mlflow0topology0secret",
    "MLFLOW_SECRET_KEY": "0123456789abcdef0123456789abcdef",
    "DLOPT_PUBLIC_HOST": "dlopt.example.org",
}


# -- the compose file ------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    # The Compose Specification's JSON schema (vendored from check-jsonschema, Apache-2.0: see
    # schemas/LICENSE.compose-spec), what `docker compose config` checks before anything runs.
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(load_compose())]
    assert errors == []


def test_compose_services_volumes_and_environment_fit_together() -> None:
    compose = load_compose()
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "app"}
    # Every named volume is declared and used; bind mounts point at files in deploy/.
    named = set(compose["volumes"])
    used = set()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).is_file(), volume
            else:
                used.add(source)
    assert used == named
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
            assert "healthcheck" in services[needed], f"{name} waits for {needed} to be healthy: it needs a healthcheck"
    # The app and the MLflow server run the repository's scripts, which the image carries.
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in ("mlflow", "app"):
        script = service_command(compose, name)[0]
        assert Path(script).is_file() and Path(script).stat().st_mode & 0o111, script
        relative = Path(script).relative_to(ROOT).as_posix()
        assert re.search(rf"^COPY .*{re.escape(relative)}", dockerfile, re.M), f"the image lacks {relative}"
        assert subprocess.run(["bash", "-n", script], capture_output=True).returncode == 0
    assert 'CMD ["deploy/app.sh"]' in dockerfile  # the image alone runs the same command


def test_every_variable_the_compose_file_reads_is_in_the_example_env() -> None:
    text = COMPOSE.read_text()
    read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert read == set(example) == set(SECRETS)
    # With the example's values every service's environment is complete (no ${X:?} left unset).
    for name in load_compose()["services"]:
        service_env(load_compose(), name, example, {})
    with pytest.raises(KeyError, match="MLFLOW_ADMIN_PASSWORD"):
        interpolate(text, {k: v for k, v in example.items() if k != "MLFLOW_ADMIN_PASSWORD"})


def test_the_mlflow_service_is_the_team_server_the_app_points_at() -> None:
    compose = load_compose()
    mlflow = service_env(compose, "mlflow", SECRETS, {})
    app = service_env(compose, "app", SECRETS, {})
    script = (ROOT / "deploy" / "mlflow-server.sh").read_text()
    for flag in ("--app-name basic-auth", "--serve-artifacts", "--artifacts-destination", "--allowed-hosts",
                 "--backend-store-uri"):
        assert flag in script
    assert mlflow["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://dlopt:")
    assert mlflow["MLFLOW_AUTH_DATABASE_URI"].endswith("@postgres:5432/mlflow_auth")
    assert "mlflow:5000" in mlflow["MLFLOW_ALLOWED_HOSTS"].split(",")  # the app's requests name it so
    assert f"{SECRETS['DLOPT_PUBLIC_HOST']}:*" in mlflow["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert mlflow["MLFLOW_ARTIFACTS_DESTINATION"].startswith("/data/")  # on the mlflow-artifacts volume
    assert app["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert (app["MLFLOW_TRACKING_USERNAME"], app["MLFLOW_TRACKING_PASSWORD"]) == (
        mlflow["MLFLOW_AUTH_ADMIN_USERNAME"], mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert app["DLOPT_OPTUNA_STORAGE"].endswith("@postgres:5432/optuna")
    init = (COMPOSE.parent / "postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow_auth" in init and "CREATE DATABASE optuna" in init


# -- the topology, natively ------------------------------------------------------------------


@dataclass
class Team:
    app: str
    mlflow: str
    artifacts: Path
    optuna_url: str

    def request(self, path: str, body: dict | None = None, *, auth: tuple[str, str] | None = None,
                host: str | None = None) -> tuple[int, bytes]:
        """One REST call to the MLflow server; (status, body), errors included."""
        req = urllib.request.Request(f"{self.mlflow}{path}", data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if auth is not None:
            req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        if host is not None:
            req.add_header("Host", host)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


ADMIN = (SECRETS["MLFLOW_ADMIN_USERNAME"], SECRETS["MLFLOW_ADMIN_PASSWORD"])


@pytest.fixture(scope="module")
def team(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    compose = load_compose()
    folder = tmp_path_factory.mktemp("team")
    pg = urllib.parse.urlsplit(postgres_url)
    init_postgres_like_the_image(compose, postgres_url, SECRETS)
    mlflow_port, app_port = free_port(), free_port()
    addresses = {"postgres:5432": f"127.0.0.1:{pg.port}", "mlflow:5000": f"127.0.0.1:{mlflow_port}"}
    # Natively only where things listen and which folders stand for the volumes differ.
    mlflow_env = service_env(compose, "mlflow", SECRETS, addresses) | {
        "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(mlflow_port), "MLFLOW_WORKERS": "1",
        "MLFLOW_ARTIFACTS_DESTINATION": str(folder / "mlflow-artifacts"),
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic-auth.ini"),
    }
    app_env = service_env(compose, "app", SECRETS, addresses) | {
        "DLOPT_ADDRESS": "127.0.0.1", "DLOPT_PORT": str(app_port), "DLOPT_HOME": str(folder / "app-data"),
    }
    mlflow = Service(service_command(compose, "mlflow"), mlflow_env, folder / "mlflow.log")
    try:
        mlflow.wait_healthy(f"http://127.0.0.1:{mlflow_port}/health")
        app = Service(service_command(compose, "app"), app_env, folder / "app.log")
        try:
            app.wait_healthy(f"http://127.0.0.1:{app_port}/_stcore/health")
            yield Team(f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{mlflow_port}",
                       folder / "mlflow-artifacts", app_env["DLOPT_OPTUNA_STORAGE"])
        finally:
            app.stop()
    finally:
        mlflow.stop()


def test_the_server_refuses_strangers(team: Team) -> None:
    search = "/api/2.0/mlflow/experiments/search"
    assert team.request(search, {"max_results": 1}, auth=ADMIN)[0] == 200
    assert team.request(search, {"max_results": 1})[0] == 401  # no credentials
    assert team.request(search, {"max_results": 1}, auth=(ADMIN[0], "not-the-password"))[0] == 401
    # --allowed-hosts: a page on another site that rebinds its name to this server gets nothing.
    assert team.request(search, {"max_results": 1}, auth=ADMIN, host="attacker.example")[0] == 403


def test_a_colleague_signed_in_reads_but_cannot_delete(team: Team) -> None:
    colleague = ("colleague", "colleague0password")
    status, body = team.request("/api/2.0/mlflow/users/create", {"username": colleague[0], "password": colleague[1]},
                                auth=ADMIN)
    assert status == 200, body
    status, body = team.request("/api/2.0/mlflow/experiments/create", {"name": "admins-experiment"}, auth=ADMIN)
    assert status == 200, body
    experiment_id = json.loads(body)["experiment_id"]
    assert team.request(f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", auth=colleague)[0] == 200
    # default_permission = READ: reading, not deleting someone else's experiment.
    assert team.request("/api/2.0/mlflow/experiments/delete", {"experiment_id": experiment_id}, auth=colleague)[0] == 403


@pytest.mark.browser
def test_a_comparison_run_in_the_browser_is_on_the_team_server(team: Team, browser) -> None:
    from tracking.store import EXPERIMENT

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    url = compare_url(team.app, ["sgd:lr=0.1", "adam:lr=0.01"], epochs=4, seeds=31, dataset="linear", model="linear")
    run_and_time_first_point(page, url)
    page.get_by_text("finished: 100%").wait_for(timeout=120_000)
    live_curves = sorted(page.evaluate(CURVE_NAMES_JS)[0])

    status, body = team.request(f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}", auth=ADMIN)
    assert status == 200, body
    experiment = json.loads(body)["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # stored by the server
    runs: list[dict] = []
    for _ in range(60):  # the app's writer thread ends each run just after the page says finished
        status, body = team.request("/api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment["experiment_id"]], "max_results": 100,
        }, auth=ADMIN)
        assert status == 200, body
        runs = json.loads(body).get("runs", [])
        trained = [r for r in runs if _tags(r).get("optimizer")]
        if len(trained) == 2 and all(r["info"]["status"] == "FINISHED" for r in runs):
            break
        page.wait_for_timeout(500)
    trained = [r for r in runs if _tags(r).get("optimizer")]
    assert sorted(_tags(r)["optimizer"] for r in trained) == ["adam", "sgd"]  # one run each: none lost or doubled
    assert {r["info"]["status"] for r in runs} == {"FINISHED"}
    for run in trained:
        metrics = {m["key"] for m in run["data"].get("metrics", [])}
        assert "train_loss" in metrics
        assert {p["key"]: p["value"] for p in run["data"]["params"]}.get("seed") == "31"
        # Its curve went through the server's artifact proxy to the artifacts volume.
        status, body = team.request(f"/api/2.0/mlflow/artifacts/list?run_id={run['info']['run_id']}", auth=ADMIN)
        assert status == 200 and "curve.csv" in body.decode(), body
        assert team.request(f"/api/2.0/mlflow/artifacts/list?run_id={run['info']['run_id']}")[0] == 401
    assert list(team.artifacts.rglob("curve.csv")), "no artifact reached the artifacts folder"

    # The Runs page reads it back from the team server and draws the curves the Compare page drew.
    (comparison,) = {_tags(r)["comparison_id"] for r in trained}
    page.goto(f"{team.app}/Runs?open={comparison}")
    curves = page.wait_for_function(
        f"() => {{ const c = ({CURVE_NAMES_JS})(); return c.length && c[0].length && c; }}", timeout=60_000,
    ).json_value()
    assert sorted(curves[0]) == live_curves == ["Adam lr=0.01", "SGD lr=0.1"]
    page.close()


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def test_the_apps_optuna_storage_is_the_teams_postgresql(team: Team) -> None:
    import optuna

    from dlopt_core.experiments.study_storage import study_storage

    storage = study_storage(team.optuna_url)
    assert storage.kind == "postgresql"
    study = optuna.create_study(study_name="team-topology", storage=storage.storage, load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)
    # Any other worker with the same URL sees the same study.
    assert len(optuna.load_study(study_name="team-topology", storage=team.optuna_url).trials) == 3
