"""deploy/compose.yaml without Docker: its services' own scripts and environment, run natively.

There is no Docker engine on the machines here, so the team topology is tested by running
what the compose file runs (``deploy/*.sh``) with the environment it gives each service,
interpolated as compose would from a ``.env``. Only addresses and folders change: a service
name (``postgres:5432``, ``mlflow:5000``) becomes a loopback port, a volume a temporary folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"
VENV_BIN = Path(sys.executable).parent

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?|-|\?)(?P<arg>[^}]*))?\}")


def load_compose(path: Path = COMPOSE) -> dict:
    return yaml.safe_load(path.read_text())


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``, from ``values``."""

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = values.get(name)
        if op in (":-", ":?") and not value or op in ("-", "?") and value is None:
            if op.endswith("?"):
                raise KeyError(f"{name}: {arg}")
            return arg
        return value or ""

    return _VARIABLE.sub(one, text)


def service_env(compose: dict, service: str, values: dict[str, str], addresses: dict[str, str]) -> dict[str, str]:
    """The environment compose gives ``service``, with every ``name:port`` in ``addresses`` replaced."""
    env = {}
    for key, raw in (compose["services"][service].get("environment") or {}).items():
        value = interpolate(str(raw), values)
        for inside, outside in addresses.items():
            value = value.replace(inside, outside)
        env[key] = value
    return env


def service_command(compose: dict, service: str) -> list[str]:
    """The service's command as a path under the repository (compose runs it in the image's /app)."""
    command = compose["services"][service]["command"]
    return [str(ROOT / command[0]), *command[1:]]


def psql(binaries: Path, url: str, *args: str, script: str | None = None) -> str:
    """Run Debian's psql against a SQLAlchemy URL (as the cluster's owner when we are root).

    ``script`` goes in on stdin, one statement at a time as psql sends a file (``CREATE
    DATABASE`` cannot run in the one transaction that ``-c`` would wrap several statements in).
    """
    parts = urllib.parse.urlsplit(url.replace("+psycopg", ""))
    cmd = [str(binaries / "psql"), "-v", "ON_ERROR_STOP=1", "-X", "-q", "-h", parts.hostname or "127.0.0.1",
           "-p", str(parts.port), "-U", parts.username or "postgres", "-d", parts.path.lstrip("/"), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    if script is not None:
        cmd += ["-f", "-"]
    done = subprocess.run(cmd, input=script, capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"psql {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def init_postgres_like_the_image(compose: dict, admin_url: str, values: dict[str, str]) -> None:
    """What the postgres image's entrypoint does on an empty volume, on a native cluster.

    It creates ``POSTGRES_USER`` (a superuser with ``POSTGRES_PASSWORD``) and ``POSTGRES_DB``,
    then runs each SQL file mounted into ``/docker-entrypoint-initdb.d`` as that user in that
    database. The test cluster trusts local connections, so the password is stored, not checked.
    """
    from postgres import pg_bin

    service = compose["services"]["postgres"]
    env = {k: interpolate(str(v), values) for k, v in service["environment"].items()}
    user, password, database = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    binaries = pg_bin()
    psql(binaries, admin_url, "-c", f"CREATE ROLE \"{user}\" LOGIN SUPERUSER PASSWORD '{password}'")
    psql(binaries, admin_url, "-c", f"CREATE DATABASE \"{database}\" OWNER \"{user}\"")
    parts = urllib.parse.urlsplit(admin_url)
    user_url = f"postgresql://{user}@{parts.hostname}:{parts.port}/{database}"
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if target.startswith("/docker-entrypoint-initdb.d/"):
            psql(binaries, user_url, script=(COMPOSE.parent / source).read_text())


class Service:
    """One compose service's command as a native process group, logging to ``log``."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DLOPT_"))}
        # The image's python and console scripts, here the virtualenv's.
        base["PATH"] = f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                command, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT, start_new_session=True,  # stop() ends the server and its workers together
            )

    def wait_healthy(self, url: str, *, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{url} did not answer:\n{self.log.read_text(errors='replace')[-4000:]}")

    def stop(self, *, timeout: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
