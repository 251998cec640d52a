"""SIGTERM and Ctrl-C end the server and the CLI within seconds: running runs become KILLED,
queued work never starts."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser import compare_url, run_and_time_first_point, start_streamlit
from tracking.store import StoreSettings
from tracking.store import client as store_client


def _runs(home: Path) -> list:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    if not (home / "mlflow.db").exists():
        return []
    try:
        # Through tracking's client: it takes the store's set-up lock, so this look never
        # races the trainer's first creation of the tables.
        client = store_client(StoreSettings(home, uri, (home / "artifacts").as_uri()))
        exp = client.get_experiment_by_name("dlopt-compare")
        runs = [] if exp is None else client.search_runs([exp.experiment_id])
    except Exception:  # the store is being created by the other process
        return []
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # the training runs, not their parent


def _wait_for_runs(home: Path, count: int, proc: subprocess.Popen, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while len(_runs(home)) < count:
        assert proc.poll() is None, "the process ended before its runs were created"
        assert time.monotonic() < deadline, f"fewer than {count} runs appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_cli_and_its_runs_end_as_killed(tmp_path: Path, sig: signal.Signals) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlopt_core", "compare", "--dataset", "digits", "--optimizer", "sgd",
         "--optimizer", "adam", "--epochs", "10000", "--json"],
        env={**os.environ, "DLOPT_HOME": str(home)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    _wait_for_runs(home, 2, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {sig.name}" in err
    runs = _runs(home)
    assert {r.info.status for r in runs} == {"KILLED"}
    assert all(r.data.tags["status"].startswith("cancelled at step") for r in runs)
    assert '"status": "cancelled"' in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_process_group_cancels_every_run_of_a_batched_split(tmp_path: Path, sig: signal.Signals) -> None:
    # As timeout, systemd and docker do: the forked training processes get the signal too.
    home = tmp_path / "home"
    optimizers = [a for name in ("sgd", "adam", "rmsprop", "adamw") for a in ("--optimizer", name)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlopt_core", "compare", "--dataset", "digits", *optimizers,
         "--epochs", "10000", "--json"],
        env={**os.environ, "DLOPT_HOME": str(home), "DLOPT_ENGINE_PROCESSES": "2"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    _wait_for_runs(home, 4, proc)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert out.count('"status": "cancelled"') == 4 and '"engine": "batched"' in out, out
    assert {r.info.status for r in _runs(home)} == {"KILLED"}
    with pytest.raises(ProcessLookupError):  # nothing of the group is left
        os.killpg(proc.pid, 0)


@pytest.mark.browser
def test_sigterm_ends_the_server_running_runs_killed_and_queued_work_never_starts(tmp_path: Path, browser) -> None:
    home = tmp_path / "server"
    proc, url = start_streamlit(home, DLOPT_MAX_JOBS="1")
    try:
        running = browser.new_page()
        run_and_time_first_point(running, compare_url(url, ["sgd:lr=0.1"], epochs=10000))
        queued = browser.new_page()
        queued.goto(compare_url(url, ["adam:lr=0.001"], epochs=5))
        queued.get_by_role("button", name="Run").click()
        queued.get_by_text("waiting for a free worker").wait_for(timeout=60_000)
        _wait_for_runs(home, 1, proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    runs = _runs(home)
    assert [r.data.tags["optimizer"] for r in runs] == ["sgd"], "the queued comparison must never start"
    assert runs[0].info.status == "KILLED"
