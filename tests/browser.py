"""Browser helpers shared by the browser tests and bench/first_point.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

def upload(uploader, path: Path) -> None:
    """Put a file into a Streamlit file uploader and wait until it is on the server.

    The uploader hands its new value to the app only when the upload ends: a button pressed
    before that reruns the page with the previous file.
    """
    uploader.locator("input[type=file]").set_input_files(str(path))
    uploader.locator(f'[data-testid=stFileChipName][title="{path.name}"]').wait_for(timeout=60_000)
    uploader.locator("[data-testid=stFileChipIconSpinner]").wait_for(state="detached", timeout=60_000)


CURVE_NAMES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(d => (d.layout?.annotations || []).some(a => a.text === 'train loss'))
  // One legend entry per optimizer: its mean curve (bands, dotted running losses and marks are not).
  .map(d => (d.data || []).filter(t => t.fill !== 'toself' && t.legendgroup && t.showlegend !== false
                                     && (t.x || []).length > 0).map(t => t.name))
"""


def compare_url(base: str, optimizers: list[str], **values: object) -> str:
    """The Compare page's address for a given comparison (the page reads it from the URL)."""
    query = [("optimizer", o) for o in optimizers] + [(k, str(v)) for k, v in values.items()]
    return f"{base}/Compare_optimizers?{urlencode(query)}"


def run_and_time_first_point(page, url: str, *, timeout: float = 60.0) -> tuple[float, list[str]]:
    """Open ``url``, press Run, and return (seconds until a curve has a point, its trace names)."""
    page.goto(url)
    run = page.get_by_role("button", name="Run")
    run.wait_for(timeout=timeout * 1000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout * 1000)
    start = time.perf_counter()
    run.click()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        charts = page.evaluate(CURVE_NAMES_JS)
        if charts and charts[0]:
            return time.perf_counter() - start, charts[0]
        time.sleep(0.02)
    raise TimeoutError("no curve appeared after pressing Run")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(home: Path, **env_values: str) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run app.py`` on a free port storing runs under ``home``; wait until healthy."""
    port = _free_port()
    env = {**os.environ, "DLOPT_HOME": str(home), **env_values}
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115  (the server writes to it for its whole life)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"streamlit did not start: {log_path.read_text()}") from None
            time.sleep(0.3)


@contextlib.contextmanager
def streamlit_server(home: Path, **env_values: str) -> Iterator[str]:
    """A real ``streamlit run app.py`` on a free port, storing runs under ``home``."""
    proc, url = start_streamlit(home, **env_values)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
