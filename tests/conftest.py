"""Shared fixtures: an isolated data folder per test, a real streamlit server for browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def dlopt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test stores runs in its own temporary folder."""
    home = tmp_path / "dlopt-home"
    monkeypatch.setenv("DLOPT_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on a free port with its own data folder; yields the URL."""
    with streamlit_server(tmp_path_factory.mktemp("server-home")) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL cluster on a free local port for this test session (tests/postgres.py)."""
    from postgres import postgres_server

    with postgres_server() as url:
        yield url
