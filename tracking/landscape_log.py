"""Log a landscape comparison to MLflow: one run per optimizer, like a Compare run."""

from __future__ import annotations

import time

from mlflow.entities import Metric, Param, RunTag

from dlopt_core.experiments.landscape import LandscapeConfig, LandscapeResult
from dlopt_core.plots import landscape_figure
from tracking.reconcile import run_identity_tags
from tracking.store import StoreSettings, client, experiment_id, settings

EXPERIMENT = LandscapeConfig.EXPERIMENT


def log_landscape(result: LandscapeResult, *, store: StoreSettings | None = None, experiment: str = EXPERIMENT) -> list[str]:
    """Params (config + optimizer), ``value``/``distance``/``x``/``y`` per step, tags, the figure.

    The figure (``landscape.html``, plotly.js inside: it draws offline and in MLflow's
    artifact viewer) is 4.8 MB, so only the first run holds it; the others name that run
    in their ``figure`` tag. Returns the MLflow run ids, in the order of the trajectories.
    """
    store = store or settings()
    c = client(store)
    exp = experiment_id(experiment, store)
    cfg = result.config
    flat = {k: v for k, v in cfg.to_dict().items() if k != "optimizer"}
    html = landscape_figure(result).to_html(include_plotlyjs=True, full_html=True)
    minima = cfg.test_function.minima
    run_ids = []
    for opt, path in zip(cfg.optimizers, result.trajectories):
        run = c.create_run(
            exp, run_name=f"{cfg.function}: {opt.label}",
            tags={"function": cfg.function, "optimizer": opt.name, "status": path.status_text, **run_identity_tags()},
        )
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in flat.items()]
        params += [Param("optimizer", opt.name), Param("optimizer.lr", repr(opt.lr))]
        params += [Param(f"optimizer.{k}", str(v)) for k, v in opt.params.items()]
        c.log_batch(run_id, params=params)
        ms = int(time.time() * 1000)
        dist = path.distances(minima)
        metrics = [Metric("value", v, ms, s) for s, v in enumerate(path.values)]
        metrics += [Metric("distance", d, ms, s) for s, d in enumerate(dist)]
        metrics += [Metric("x", v, ms, s) for s, v in enumerate(path.x)]
        metrics += [Metric("y", v, ms, s) for s, v in enumerate(path.y)]
        for start in range(0, len(metrics), 1000):
            c.log_batch(run_id, metrics=metrics[start : start + 1000])
        tags = [] if path.stopped_at is None else [RunTag("stopped_step", str(path.stopped_at))]
        if run_ids:
            tags.append(RunTag("figure", f"runs:/{run_ids[0]}/landscape.html"))
        else:
            c.log_text(run_id, html, "landscape.html")
        if tags:
            c.log_batch(run_id, tags=tags)
        c.set_terminated(run_id, "FINISHED" if path.status == "finished" else "FAILED")
        run_ids.append(run_id)
    return run_ids
