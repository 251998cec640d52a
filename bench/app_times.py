"""Per-run training time in the app against the CLI, for the same comparison.

Starts a real ``streamlit run`` server, opens the Compare page in Chromium for one
comparison, presses Run and keeps the tab open (it polls and redraws while the runs train,
as a person watching would), then reads each run's time from the server's MLflow store. The
same comparison then runs through the CLI (``python -m dlopt_core compare --json``). A
ratio near 1 means the seconds axis says the same in both places. The sequential engine is
used so every optimizer has its own time (a batched run's time is its whole pass's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import CHROMIUM, CHROMIUM_ARGS, ROOT, compare_url, streamlit_server  # noqa: E402

OPTIMIZERS = ["sgd:lr=0.1", "adam:lr=0.001"]


def _app_times(base: str, browser: object, home: Path, epochs: int, seed: int) -> dict[str, float]:
    import mlflow

    page = browser.new_page(viewport={"width": 1400, "height": 1200})  # type: ignore[attr-defined]
    page.goto(compare_url(base, OPTIMIZERS, epochs=epochs, seeds=seed, engine="sequential", dataset="digits"))
    run = page.get_by_role("button", name="Run")
    run.wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    run.click()
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(1.0)
        runs = mlflow.search_runs(
            experiment_names=["dlopt-compare"], filter_string=f"tags.seed = '{seed}'", output_format="list"
        )
        done = [r for r in runs if r.info.status == "FINISHED" and "wall_time" in r.data.metrics]
        if len(done) == len(OPTIMIZERS):
            page.close()
            return {r.data.tags["optimizer"]: r.data.metrics["wall_time"] for r in done}
    raise TimeoutError("the app's comparison did not finish")


def _cli_times(epochs: int, seed: int) -> dict[str, float]:
    args = [sys.executable, "-m", "dlopt_core", "compare", "--dataset", "digits", "--epochs", str(epochs),
            "--seeds", str(seed), "--engine", "sequential", "--json", "--no-track"]
    for o in OPTIMIZERS:
        args += ["--optimizer", o]
    out = json.loads(subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    return {r["optimizer"].split(":")[0] if ":" in r["optimizer"] else r["optimizer"]: r["wall_time"] for r in out["runs"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench app_times", description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    ratios: dict[str, list[float]] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, streamlit_server(Path(tmp)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for i in range(opts.repeats):
            seed = 100 + i  # a fresh config each repeat: the page never re-attaches to an old run
            app = _app_times(url, browser, Path(tmp), opts.epochs, seed)
            cli = _cli_times(opts.epochs, seed)
            for name in app:
                ratios.setdefault(name, []).append(app[name] / cli[name])
            rows.append((seed, app, cli))
        browser.close()
    print(f"app_times: per-run training seconds, app (Chromium watching) vs CLI; digits MLP, {opts.epochs} epochs")
    for seed, app, cli in rows:
        print("  " + "   ".join(f"{n}: app {app[n]:.2f} s, cli {cli[n]:.2f} s" for n in app))
    for name, values in ratios.items():
        print(f"  {name:8s} app / cli median {statistics.median(values):.2f}  ({' '.join(f'{v:.2f}' for v in values)})")
    adam_sgd = [a["adam"] / a["sgd"] for _, a, _ in rows]
    cli_adam_sgd = [c["adam"] / c["sgd"] for _, _, c in rows]
    print(f"  adam / sgd: app {statistics.median(adam_sgd):.2f}, cli {statistics.median(cli_adam_sgd):.2f}")
