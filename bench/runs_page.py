"""The Runs page with a full store: list query and page render times over 1,000 runs.

``python -m bench runs_page [--runs 1000] [--repeats 15]``

Fills a throw-away SQLite store with ``--runs`` MLflow runs shaped as dlopt logs them: one
parent run per comparison (the config as params) with 7 child runs (params, tags, final
metrics), over several data sets and optimizers. Then, medians of ``--repeats``:

- *first page*: :func:`tracking.runs.list_entries` for the newest 20 rows (one search call);
- *filtered*: the same with a data set, an optimizer and a status filter;
- *fifth page*: following page tokens to page 5;
- *every run*: one search that reads every run (what the list never does), for scale;
- *page render*: the Runs page in AppTest, whole script run (filters, query, table).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CHILDREN = 7
DATASETS = ("digits", "moons", "wine", "circles")
OPTIMIZERS = ("sgd:lr=0.1", "momentum:lr=0.05", "adam", "rmsprop", "adamw", "nadam", "adagrad:lr=0.05")


def fill(n_runs: int) -> None:
    """``n_runs`` runs: parents with ``CHILDREN`` children each, a second apart."""
    from mlflow.entities import Metric, Param, RunTag

    from dlopt_core.config import ComparisonConfig, param_text
    from tracking.store import client, experiment_id

    c = client()
    exp = experiment_id("dlopt-compare")
    start = int(time.time() * 1000) - n_runs * 1000
    for i in range(n_runs // (CHILDREN + 1)):
        config = ComparisonConfig.from_dict({
            "dataset": DATASETS[i % len(DATASETS)], "optimizer": list(OPTIMIZERS), "seeds": "0", "epochs": 5,
        })
        cid = f"bench{i:07d}"
        when = start + i * (CHILDREN + 1) * 1000
        parent = c.create_run(exp, start_time=when, run_name=f"comparison {cid}",
                              tags={"comparison_id": cid, "status": "finished", "dlopt.role": "parent"}).info.run_id
        c.log_batch(parent, params=[Param(k, param_text(v)) for k, v in config.to_dict().items()])
        c.set_terminated(parent, "FINISHED", end_time=when + 500)
        for j, run in enumerate(config.runs()):
            tags = {"comparison_id": cid, "optimizer": run.optimizer.name, "dataset": run.data.name,
                    "model": run.model.name, "status": "finished", "mlflow.parentRunId": parent}
            child = c.create_run(exp, start_time=when + j + 1, run_name=f"{run.optimizer.label} seed=0", tags=tags)
            rid = child.info.run_id
            params = [Param(k, param_text(v)) for k, v in run.to_dict().items()]
            metrics = [Metric(k, 0.5 / (j + 1), when, 5) for k in ("val_loss", "train_loss", "val_accuracy")]
            c.log_batch(rid, params=params[:100], metrics=metrics, tags=[RunTag("status", "finished")])
            c.set_terminated(rid, "FINISHED", end_time=when + 400)


def median_s(work: Callable[[], object], repeats: int) -> float:
    work()  # warm: the first call opens the database and fills caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench runs_page", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        os.environ["DLOPT_HOME"] = home
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        from tracking.runs import RunFilter, experiment_ids, list_entries
        from tracking.store import client

        t = time.perf_counter()
        fill(args.runs)
        total = sum(1 for _ in client().search_runs(list(experiment_ids()), max_results=5000))
        print(f"runs_page: {total} runs in a fresh SQLite store (filled in {time.perf_counter() - t:.0f} s)")

        def fifth() -> None:
            token = None
            for _ in range(5):
                token = list_entries(page_token=token, page_size=20).next_token

        def every() -> None:
            client().search_runs(list(experiment_ids()), max_results=5000)

        first = median_s(lambda: list_entries(page_size=20), args.repeats)
        rows = [
            ("first page (20 rows)", first),
            ("filtered: digits, adam, finished", median_s(
                lambda: list_entries(RunFilter(dataset="digits", optimizer="adam", status="finished"), page_size=20),
                args.repeats)),
            ("pages 1 to 5, by token (5 queries)", median_s(fifth, args.repeats)),
            ("every run (one search; never done)", median_s(every, max(3, args.repeats // 3))),
        ]
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from apptest import open_page

        at = open_page("pages/6_Runs.py")
        rows.append(("Runs page render (AppTest run)", median_s(at.run, max(3, args.repeats // 3))))
        for name, seconds in rows:
            print(f"  {name:38s} {seconds * 1000:8.1f} ms median  ({seconds / first:5.1f}x the first page)")
