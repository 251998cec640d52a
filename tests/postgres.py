"""A real PostgreSQL for tests: a throw-away cluster in a temporary folder, on a free local port.

Uses Debian's ``postgresql`` package (``./dev.sh test`` installs it). The server refuses to
run as root, so as root the cluster belongs to the package's ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def pg_bin() -> Path:
    """The newest installed server's binaries folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: sudo apt-get install -y postgresql (./dev.sh test does it)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(*, database: str = "dlopt") -> Iterator[str]:
    """Start a cluster in a fresh temporary folder; yield a SQLAlchemy URL (psycopg 3) for ``database``.

    The folder is made directly under the system temp dir (not pytest's, which is private to
    root), since the server runs as ``postgres`` when the tests run as root; it is removed after.
    """
    binaries = pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="dlopt-pg-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(_as_owner([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]), **run)
    log = folder / "server.log"
    subprocess.run(_as_owner([
        str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
        "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
        "start",
    ]), **run)
    try:
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(_as_owner([
                str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database,
            ]), capture_output=True, text=True)
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {done.stderr}")
            time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
