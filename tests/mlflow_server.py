"""A real ``mlflow server`` on loopback that a test can stop and start again on the same store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MLFLOW = Path(sys.executable).parent / "mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` with a SQLite backend in ``folder``; same port and store on restart."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def start(self, *, timeout: float = 90.0) -> None:
        log = open(self.folder / "server.log", "ab")
        self._proc = subprocess.Popen(
            [
                str(MLFLOW), "server",
                "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                "--default-artifact-root", str(self.folder / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            ],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
            # No job runner: this test server only stores runs (one process less to start).
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            start_new_session=True,  # its own process group: stop() ends uvicorn and the job runner too
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.url}:\n{(self.folder / 'server.log').read_text()[-3000:]}")

    def stop(self, *, timeout: float = 30.0) -> None:
        """End the server and everything it started; return once the port refuses connections."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a crash, as far as a client can tell
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"port {self.port} still answers after the server was stopped")
