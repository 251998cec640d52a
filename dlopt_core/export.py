"""A comparison as files: an offline HTML report, CSV of the curves and of the table, the CLI command.

Pure builders (text in, text out): the Runs page offers them as downloads, the Compare page
can too, and a script can write them without a browser.
"""

from __future__ import annotations

import csv
import html
import io
import platform
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from plotly.offline import get_plotlyjs

from dlopt_core.cli import compare
from dlopt_core.config import ComparisonConfig
from dlopt_core.experiments.compare import Comparison, metric_name, summary_rows
from dlopt_core.plots import curves_data, curves_figure

CURVE_COLUMNS = (
    "run", "label", "optimizer", "seed", "status", "step", "epoch", "samples", "wall_time", "lr",
    "train_loss", "running_loss", "val_loss", "val_metric",
)
PACKAGES = ("torch", "numpy", "scikit-learn", "optuna", "plotly", "mlflow", "streamlit", "pandas", "kornia")


# The command names its data, model, schedule, budget and seeds even at their defaults: a reader
# sees what ran, and a later change of a default does not change what it runs.
EXPLICIT = ("data", "model", "schedule", "epochs", "batch_size", "seeds")


def cli_command(config: ComparisonConfig) -> str:
    """The ``python -m dlopt_core compare ...`` command that runs ``config`` (shell-quoted)."""
    return shlex.join(["python", "-m", "dlopt_core", "compare", *compare.argv(config, always=EXPLICIT)])


def curves_csv(comparison: Comparison) -> str:
    """Every evaluation of every run, one row each (columns :data:`CURVE_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for r in comparison.runs:
        for rec in r.records:
            if not rec.is_eval:
                continue
            writer.writerow([
                r.index, r.label, r.config.optimizer.name, r.config.seed, r.status_text, rec.step, rec.epoch,
                rec.samples, rec.wall_time, rec.lr, *(_cell(getattr(rec, k)) for k in CURVE_COLUMNS[-4:]),
            ])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def table_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results table as CSV (a DataFrame's ``to_dict("records")``, or :func:`summary_rows`)."""
    out = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(row.get(k)) for k in columns} for row in rows)
    return out.getvalue()


def environment(device: str) -> dict[str, str]:
    """Python, the platform, the device and the versions of the packages that made the runs."""
    found = {"python": platform.python_version(), "platform": platform.platform(), "device": device}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def report_html(
    comparison: Comparison,
    *,
    config: ComparisonConfig | None,
    device: str,
    table: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
    run_ids: Mapping[int, str] | None = None,
    started: datetime | None = None,
) -> str:
    """One self-contained HTML file: the curves (plotly.js inside, so it draws offline), the
    results table, every run with its status, the config, the CLI command, the environment.

    ``table``: the rows as the page shows them (default: :func:`summary_rows`' numbers).
    """
    title = title or f"dlopt comparison {comparison.id}"
    rows = list(table) if table is not None else summary_rows(comparison)
    figures = [
        curves_figure(curves_data(comparison, x="epoch"), title="by epoch"),
        curves_figure(curves_data(comparison, x="wall_time"), title="by training seconds"),
    ]
    run_rows = [
        {"run": r.index, "label": r.label, "seed": r.config.seed, "status": r.status_text, "engine": r.engine,
         "evaluations": sum(1 for rec in r.records if rec.is_eval), "training seconds": f"{r.wall_time:.3g}",
         **({"MLflow run": run_ids.get(r.index, "")} if run_ids is not None else {})}
        for r in comparison.runs
    ]
    flat = config.to_dict() if config is not None else comparison.runs[0].config.to_dict()
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>Comparison <code>{_e(comparison.id)}</code>"
        + (f", started {started:%Y-%m-%d %H:%M %Z}" if started else "")
        + f", {len(comparison.runs)} runs, {metric_name(comparison.config)}; "
        f"training took {comparison.elapsed_s:.3g} s.</p>",
        "<h2>Curves</h2>",
        *(f.to_html(full_html=False, include_plotlyjs=False) for f in figures),
        "<h2>Results</h2>", _table(rows),
        "<h2>Runs</h2>", _table(run_rows),
        "<h2>Reproduce</h2>",
        f"<pre>{_e(cli_command(config))}</pre>" if config is not None
        else "<p>These runs are not one Compare config: no single command reproduces them.</p>",
        "<h2>Config</h2>" if config is not None else "<h2>Config (first run)</h2>",
        _table([{"key": k, "value": " ".join(map(str, v)) if isinstance(v, list) else v} for k, v in flat.items()]),
        "<h2>Environment</h2>",
        _table([{"": k, "version": v} for k, v in environment(device).items()]),
    ]
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "pre{background:#f4f4f4;padding:.8em;white-space:pre-wrap;word-break:break-all}"
    )
    # plotly.js once, inline: no network needed to draw (a CDN script would need one).
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{style}</style><script>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts) + "</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_shown(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _shown(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

