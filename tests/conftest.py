"""Shared fixtures: an isolated data folder per test, a real streamlit server for browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One empty, migrated MLflow store that every new store of this session starts as a copy of
    (its migrations cost 1-2 s per test otherwise); the servers and CLIs the tests start inherit it."""
    from tracking.store import TEMPLATE_ENV, make_template

    path = make_template(tmp_path_factory.mktemp("store-template") / "mlflow.db")
    os.environ[TEMPLATE_ENV] = str(path)
    yield path
    os.environ.pop(TEMPLATE_ENV, None)


@pytest.fixture(autouse=True)
def dlopt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test stores runs in its own temporary folder."""
    home = tmp_path / "dlopt-home"
    monkeypatch.setenv("DLOPT_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


SERVER_LOG = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[str]:
    """``streamlit run app.py`` on a free port with its own data folder; yields the URL."""
    home = tmp_path_factory.mktemp("server-home")
    pytestconfig.stash[SERVER_LOG] = home / "server.log"
    with streamlit_server(home) as url:
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[object]:
    """When a browser test fails, keep what the pages showed and the server's log in the report.

    CI hands back only its output: a failure on a loaded machine that never shows up here
    must carry enough to tell a slow page from a wrong one.
    """
    report = yield
    if not report.failed or call.when != "call" or "app_server" not in item.fixturenames:
        return report
    browser = item.funcargs.get("browser")
    for i, context in enumerate(getattr(browser, "contexts", [])):
        for j, page in enumerate(context.pages):
            try:
                text = page.inner_text("body", timeout=5_000)
            except Exception as err:  # noqa: BLE001  (a closed or hung page still gets a line)
                text = f"(unreadable: {err})"
            report.sections.append((f"page {i}.{j} {page.url}", text[-4000:]))
    log = item.config.stash.get(SERVER_LOG, None)
    if log is not None and log.exists():
        report.sections.append(("streamlit server log (tail)", log.read_text(errors="replace")[-6000:]))
    return report
