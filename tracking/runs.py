"""The runs browser's queries: past comparisons (and sweeps, studies, landscapes) from MLflow.

Listing is a server-side search: one ``search_runs`` call per page, filtered and ordered by the
store (``filter_string``, ``order_by``, ``max_results``, ``page_token``), so a store of
thousands of runs is never read whole. A row is a top-level run (no ``mlflow.parentRunId``):
the parent run of a comparison, sweep or study, or a run logged without a parent (a
comparison of the first version, a landscape run); rows of a parent-less comparison that land
on one page are shown as one.

Opening a comparison rebuilds the :class:`~dlopt_core.experiments.compare.Comparison` the
live page drew, from what :class:`tracking.MlflowObserver` logged: each run's config (its
params), its evaluations (metrics with their step) and its per-step curve (``curve.csv``),
replayed through ``RunResult.apply`` as the live records were. The figure and table code
then draws it exactly as it drew it live.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from dlopt_core.config import ComparisonConfig, RunConfig, config_hash
from dlopt_core.engine.loop import run_budget
from dlopt_core.engine.records import Record, Status
from dlopt_core.errors import ConfigError
from dlopt_core.experiments.compare import Comparison, RunResult
from dlopt_core.experiments.continual import ContinualConfig
from dlopt_core.experiments.data_demos import ReduceSweepConfig
from dlopt_core.experiments.landscape import LandscapeConfig
from dlopt_core.experiments.share import ShareConfig
from dlopt_core.experiments.stream import StreamConfig
from dlopt_core.experiments.study.config import StudyConfig
from dlopt_core.experiments.sweep import SweepConfig
from dlopt_core.experiments.transfer import TransferConfig
from tracking.mlflow_log import val_metric_key
from tracking.store import StoreSettings, client, settings

# Reading a run's curve file is a download: no progress bar on the server's stderr (read per call).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# What each dlopt experiment holds, as the runs browser names it.
KINDS: dict[str, str] = {
    c.EXPERIMENT: c.KIND
    for c in (
        ComparisonConfig, SweepConfig, ReduceSweepConfig, StudyConfig, LandscapeConfig, TransferConfig, ShareConfig,
        StreamConfig, ContinualConfig,
    )
}
# Kinds whose runs MlflowObserver wrote: they open as a comparison.
OPENABLE = frozenset(c.KIND for c in (ComparisonConfig, SweepConfig, ReduceSweepConfig))
# The dlopt vocabulary of the filter, in MLflow's run statuses.
STATUS_FILTER: dict[str, str] = {
    "finished": "FINISHED",
    "failed": "FAILED",  # diverged, crashed, interrupted
    "stopped": "KILLED",  # cancelled, pruned
    "running": "RUNNING",
}
StatusChoice = Literal["finished", "failed", "stopped", "running"]
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "dlopt.role"  # a study's parent run: "study" (a second parent made in a race: "duplicate")
# The validation metric's name: the first version logged ``val_metric``; runs now log it by
# what it is (``val_accuracy``, ``val_r2``: tracking.mlflow_log.val_metric_key). All read back.
VAL_METRIC_KEYS = ("val_metric", "val_accuracy", "val_r2")
_EVAL_KEYS = ("train_loss", "running_loss", "val_loss", "lr", "epoch", "wall_time")
_SEARCH_PAGE = 1000  # the most runs one search call returns


class RunsError(LookupError):
    """A stored comparison that cannot be found or read back; the message says which and why."""


@dataclass(frozen=True)
class RunFilter:
    """What the runs list shows; every field left empty means any.

    ``since`` / ``until``: start dates (inclusive, local time). ``kinds``: values of :data:`KINDS`.
    """

    dataset: str | None = None
    model: str | None = None
    optimizer: str | None = None
    status: StatusChoice | None = None
    since: date | None = None
    until: date | None = None
    kinds: tuple[str, ...] = ()

    def filter_string(self) -> str:
        """The MLflow search filter (conditions joined by ``and``; MLflow has no ``or``)."""
        parts = [f"tags.`{PARENT_TAG}` IS NULL"]
        if self.dataset:
            parts.append(f"params.dataset = {_quoted(self.dataset)}")
        if self.model:
            parts.append(f"params.model = {_quoted(self.model)}")
        if self.optimizer:
            # A comparison's parent holds every optimizer as one space-separated list of specs
            # ("sgd:lr=0.1 adam"), a run its own name: a substring finds both; the exact name is
            # checked on the page's rows (adam must not list adamw).
            parts.append(f"params.optimizer LIKE {_quoted('%' + self.optimizer + '%')}")
        if self.status:
            parts.append(f"attributes.status = '{STATUS_FILTER[self.status]}'")
        if self.since:
            parts.append(f"attributes.start_time >= {_ms(self.since)}")
        if self.until:
            parts.append(f"attributes.start_time < {_ms(self.until, end=True)}")
        return " and ".join(parts)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ms(day: date, *, end: bool = False) -> int:
    start = datetime.combine(day, time.max if end else time.min).astimezone()
    return int(start.timestamp() * 1000) + (1 if end else 0)


@dataclass(frozen=True)
class Entry:
    """One row of the runs list: a comparison, sweep, study or landscape run."""

    kind: str
    experiment: str
    run_id: str  # the top-level run (for a parent-less comparison: its first run on the page)
    comparison_id: str | None
    name: str
    started: datetime
    status: str  # dlopt's words where the run says them (``diverged at step 5``), else MLflow's
    dataset: str
    model: str
    optimizers: tuple[str, ...]  # optimizer names (registry keys)
    labels: tuple[str, ...] = ()  # what the legend calls each optimizer or variant, where known
    n_runs: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def openable(self) -> bool:
        return self.kind in OPENABLE and self.comparison_id is not None

    @property
    def ref(self) -> str:
        """What :func:`load_comparison` and the Runs page's ``open`` link take."""
        return self.comparison_id or self.run_id


@dataclass(frozen=True)
class EntryPage:
    """One page of the runs list, newest first; ``next_token`` fetches the next (None: last)."""

    entries: list[Entry]
    next_token: str | None


def experiment_ids(store: StoreSettings | None = None, kinds: Iterable[str] = ()) -> dict[str, str]:
    """The dlopt experiments that exist, id -> name (only of ``kinds``, if given)."""
    wanted = set(kinds)
    c = client(store)
    found = c.search_experiments(filter_string="name LIKE 'dlopt-%'", max_results=_SEARCH_PAGE)
    # Only the kinds the browser knows: a compression's variant runs (dlopt-compress) are
    # measurements without curves, one per variant, and would flood the list with rows that open nothing.
    return {e.experiment_id: e.name for e in found if e.name in KINDS and (not wanted or KINDS[e.name] in wanted)}


def list_entries(
    filters: RunFilter = RunFilter(),
    *,
    page_size: int = 25,
    page_token: str | None = None,
    store: StoreSettings | None = None,
) -> EntryPage:
    """One page of past comparisons, sweeps and studies matching ``filters``, newest first."""
    store = store or settings()
    experiments = experiment_ids(store, filters.kinds)
    if not experiments:
        return EntryPage([], None)
    runs = client(store).search_runs(
        list(experiments), filters.filter_string(), max_results=page_size,
        order_by=["attributes.start_time DESC", "attributes.run_id ASC"], page_token=page_token,
    )
    entries = [_entry(r, experiments[r.info.experiment_id]) for r in runs if r.data.tags.get(ROLE_TAG) != "duplicate"]
    entries = [e for e in _merge_parentless(entries) if _shows(e, filters)]
    return EntryPage(entries, runs.token or None)


def _shows(entry: Entry, filters: RunFilter) -> bool:
    return not filters.optimizer or filters.optimizer in entry.optimizers


def _entry(run: Run, experiment: str) -> Entry:
    tags, params = run.data.tags, run.data.params
    kind = KINDS.get(experiment, experiment)
    specs = params.get("optimizer", tags.get("optimizer", "")).split()
    names = tuple(dict.fromkeys(s.split(":", 1)[0] for s in specs))
    labels: tuple[str, ...] = ()
    n_runs = None
    if _is_run(run):  # a run of its own: its label is its name less the seed
        labels = (_label(run.info.run_name or ""),)
        n_runs = 1
    elif kind == "comparison" and "seeds" in params and specs:
        try:
            cfg = ComparisonConfig.from_dict(params)
            labels, n_runs = tuple(o.label for o in cfg.optimizers), len(cfg.optimizers) * len(cfg.seeds)
        except ConfigError:
            pass
    return Entry(
        kind=kind, experiment=experiment, run_id=run.info.run_id, comparison_id=tags.get("comparison_id"),
        name=run.info.run_name or "", started=_when(run.info.start_time),
        status=tags.get("status") or run.info.status.lower(), dataset=params.get("dataset", tags.get("dataset", "")),
        model=params.get("model", tags.get("model", "")), optimizers=names, labels=labels, n_runs=n_runs,
        metrics=dict(run.data.metrics),
    )


def _merge_parentless(entries: list[Entry]) -> list[Entry]:
    """Rows of one parent-less comparison on this page as one row (the runs' first place)."""
    out: list[Entry] = []
    where: dict[tuple[str, str], int] = {}
    for e in entries:
        key = (e.experiment, e.comparison_id or "")
        if e.n_runs != 1 or not e.comparison_id or key not in where:
            if e.n_runs == 1 and e.comparison_id:
                where[key] = len(out)
            out.append(e)
            continue
        first = out[where[key]]
        statuses = sorted({*first.status.split(", "), e.status})
        out[where[key]] = Entry(
            kind=first.kind, experiment=first.experiment, run_id=first.run_id, comparison_id=first.comparison_id,
            name=first.comparison_id or first.name, started=min(first.started, e.started),
            status=", ".join(statuses), dataset=first.dataset, model=first.model,
            # Newest first on the page, so an earlier run's optimizer goes in front (the config's order).
            optimizers=tuple(dict.fromkeys(e.optimizers + first.optimizers)),
            labels=tuple(dict.fromkeys(e.labels + first.labels)), n_runs=(first.n_runs or 0) + 1,
        )
    return out


def _is_run(run: Run) -> bool:
    """One training run (a comparison's run, a trial), not a parent that holds others.

    A study's parent carries its optimizer's name too; its role tag tells it apart.
    """
    tags = run.data.tags
    return "optimizer" in tags and tags.get(ROLE_TAG) not in ("study", "duplicate")


def _label(run_name: str) -> str:
    """A run's legend label: its MLflow name (``"SGD lr=0.1 seed=0"``) less the seed."""
    head, sep, seed = run_name.rpartition(" seed=")
    return head if sep and seed.isdigit() else run_name


def _when(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC).astimezone()


# -- one comparison, read back --


@dataclass(frozen=True)
class StoredPlan:
    """What :class:`Comparison` needs of a plan, for runs that are not one Compare config
    (a sweep, a Data-page comparison whose runs differ in their data)."""

    configs: tuple[RunConfig, ...]
    labels: tuple[str, ...]
    target_loss: float | None = None
    engine: str = "auto"
    detailed: bool = True

    @property
    def data(self) -> Any:
        return self.configs[0].data

    def runs(self) -> list[RunConfig]:
        return list(self.configs)

    def run_label(self, config: RunConfig) -> str:
        return self.labels[self.configs.index(config)]

    def key(self) -> str:
        return config_hash(self.configs[0])


@dataclass
class StoredComparison:
    """A comparison read back from MLflow: the live objects the Compare page drew, and where
    they came from. ``config`` is set for a Compare comparison (it reopens on that page)."""

    comparison: Comparison
    config: ComparisonConfig | None
    kind: str
    experiment: str
    comparison_id: str
    parent_run_id: str | None
    run_ids: dict[int, str]
    started: datetime
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.kind} {self.comparison_id} · {self.started:%Y-%m-%d %H:%M}"


def comparison_runs(comparison_id: str, *, store: StoreSettings | None = None) -> list[Run]:
    """Every MLflow run of one comparison (the parent too), oldest first."""
    store = store or settings()
    experiments = experiment_ids(store)
    if not experiments:
        return []
    c = client(store)
    runs: list[Run] = []
    token = None
    while True:
        page = c.search_runs(
            list(experiments), f"tags.comparison_id = {_quoted(comparison_id)}", max_results=_SEARCH_PAGE,
            order_by=["attributes.start_time ASC", "attributes.run_id ASC"], page_token=token,
        )
        runs += page
        if not (token := page.token):
            return runs


def load_comparison(comparison_id: str, *, store: StoreSettings | None = None) -> StoredComparison:
    """Rebuild comparison ``comparison_id`` from its logged configs, metrics and curve files.

    Raises :class:`RunsError` when no run has that id, or the runs cannot be read back as a
    comparison (a data set that is gone, a config this version no longer accepts).
    """
    store = store or settings()
    runs = comparison_runs(comparison_id, store=store)
    experiments = experiment_ids(store)
    parent = next((r for r in runs if not _is_run(r)), None)
    children = [r for r in runs if _is_run(r)]
    if not children:
        raise RunsError(f"comparison {comparison_id!r}: no runs in {store.mlflow_uri}")
    experiment = experiments.get(children[0].info.experiment_id, "")
    kind = KINDS.get(experiment, experiment)
    try:
        configs = [RunConfig.from_dict(r.data.params) for r in children]
    except ConfigError as err:
        raise RunsError(f"comparison {comparison_id!r}: a run's config cannot be read back ({err})") from None
    labels = [_label(r.info.run_name or "") for r in children]
    config = _compare_config(parent, configs) if kind == "comparison" else None
    target = _target_loss(parent)
    plan: ComparisonConfig | StoredPlan = config if config is not None else StoredPlan(
        tuple(configs), tuple(labels), target_loss=target
    )
    try:
        comparison = Comparison(plan, comparison_id=comparison_id)
    except (ConfigError, ValueError) as err:
        raise RunsError(f"comparison {comparison_id!r}: {err}") from None
    c = client(store)
    run_ids: dict[int, str] = {}
    free = list(comparison.runs)
    for run, cfg, label in zip(children, configs, labels):
        result = next((r for r in free if r.config == cfg and r.label == label), None)
        result = result or next((r for r in free if r.config == cfg), None)
        if result is None:
            continue  # a run of another plan under the same id: not drawable with these
        free.remove(result)
        run_ids[result.index] = run.info.run_id
        _replay(result, _evaluations(c, run), _steps(c, run, store), run.data.tags)
    for missing in free:  # created on the page, never logged (the store failed): says so
        missing.end(Status.FAILED, error="not in the run store")
    if parent is not None:
        comparison.elapsed_s = parent.data.metrics.get("elapsed_s", 0.0)
        run_ids[-1] = parent.info.run_id
    else:
        comparison.elapsed_s = max((r.wall_time for r in comparison.runs), default=0.0)
    first = parent or children[0]
    return StoredComparison(
        comparison=comparison, config=config, kind=kind, experiment=experiment, comparison_id=comparison_id,
        parent_run_id=parent.info.run_id if parent else None, run_ids=run_ids, started=_when(first.info.start_time),
        tags=dict(first.data.tags),
    )


def _target_loss(parent: Run | None) -> float | None:
    text = parent.data.params.get("target_loss") if parent is not None else None
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _compare_config(parent: Run | None, configs: Sequence[RunConfig]) -> ComparisonConfig | None:
    """The Compare config: logged on the parent, or else the one its runs are the runs of."""
    if parent is not None and "optimizer" in parent.data.params:
        try:
            return ComparisonConfig.from_dict(parent.data.params)
        except ConfigError:
            pass
    # In creation order, which is the config's (runs are created one after another).
    optimizers = list({c.optimizer.to_spec(): c.optimizer for c in configs}.values())
    seeds = list(dict.fromkeys(c.seed for c in configs))
    first = configs[0]
    # A full-batch-only optimizer's runs get the full batch whatever the setup says.
    batch = next((c.batch_size for c in configs if c.batch_size is not None), None)
    setup = first.model_dump(exclude={"optimizer", "seed", "batch_size"})
    try:
        config = ComparisonConfig.make(**setup, batch_size=batch, optimizers=tuple(optimizers), seeds=tuple(seeds))
    except ConfigError:
        return None
    return config if sorted(map(_run_key, config.runs())) == sorted(map(_run_key, configs)) else None


def _run_key(config: RunConfig) -> str:
    return config.model_dump_json()


def _evaluations(c: Any, run: Run) -> dict[int, dict[str, float]]:
    """Each logged evaluation of ``run``: step -> metric name -> value."""
    points: dict[int, dict[str, float]] = {}
    names = [k for k in (*_EVAL_KEYS, *VAL_METRIC_KEYS) if k in run.data.metrics]
    for key in names:
        name = "val_metric" if key in VAL_METRIC_KEYS else key
        for m in c.get_metric_history(run.info.run_id, key):
            points.setdefault(m.step, {})[name] = m.value
    # An evaluation measures the validation loss; other rows at a step are not evaluations.
    return {s: p for s, p in points.items() if "val_loss" in p}


def _steps(c: Any, run: Run, store: StoreSettings) -> list[tuple[int, float, float, float]]:
    """``curve.csv``: (step, batch loss, lr, training seconds) of every step; [] if not logged."""
    try:
        with tempfile.TemporaryDirectory(dir=store.home if not store.is_remote else None) as tmp:
            path = Path(c.download_artifacts(run.info.run_id, "curve.csv", tmp))
            text = path.read_text()
    except (MlflowException, OSError):  # no curve file (a run that never stepped, an older store): evaluations only
        return []
    rows = csv.DictReader(io.StringIO(text))
    return [(int(r["step"]), float(r["batch_loss"]), float(r["lr"]), float(r["wall_time"])) for r in rows]


def _status(tags: dict[str, str]) -> tuple[Status, str | None]:
    text = tags.get("status", "")
    word = text.split(" ", 1)[0].rstrip(":")
    if word in {s.value for s in Status}:
        status = Status(word)
        error = tags.get("error") or (text.partition(": ")[2] if status is Status.FAILED else None)
        return status, error
    if text.startswith("interrupted"):
        return Status.FAILED, text
    return Status.FAILED, text or "no status logged"


def _replay(
    run: RunResult, evals: dict[int, dict[str, float]], steps: list[tuple[int, float, float, float]],
    tags: dict[str, str],
) -> None:
    """Feed ``run`` the records it had live: step records from the curve file, evaluations from
    the metrics, in their order (an evaluation after the step it follows)."""
    status, error = _status(tags)
    spe = run.steps_per_epoch
    budget = run_budget(run.config)
    n_train, batch = budget.n_train, budget.batch
    records: list[Record] = []
    by_step = iter(sorted(evals.items()))
    pending = next(by_step, None)
    for step, loss, lr, wall in steps:
        while pending is not None and pending[0] < step:
            records.append(_eval_record(pending[0], pending[1], n_train, spe))
            pending = next(by_step, None)
        epochs_done, into = divmod(step - 1, spe)
        samples = epochs_done * n_train + min((into + 1) * batch, n_train)
        records.append(Record(step, step / spe, samples, wall, lr, loss))
    while pending is not None:
        records.append(_eval_record(pending[0], pending[1], n_train, spe))
        pending = next(by_step, None)
    if records and status in (Status.FINISHED, Status.DIVERGED):
        records[-1] = records[-1]._replace(status=status)
    for rec in records:
        run.apply(rec)
    if status is Status.RUNNING:
        return  # still training somewhere: what is stored so far
    if not run.status.ended or run.status is not status:
        run.end(status, error=error)
    if status is Status.DIVERGED and (step := tags.get("diverged_step", "")).isdigit():
        run.diverged_step = int(step)


def _eval_record(step: int, values: dict[str, float], n_train: int, spe: int) -> Record:
    epoch = values.get("epoch", step / spe)
    running = values.get("running_loss")
    return Record(
        step, epoch, round(epoch * n_train), values.get("wall_time", 0.0), values.get("lr", math.nan), None,
        train_loss=values.get("train_loss"), val_loss=values["val_loss"], val_metric=values.get("val_metric"),
        running_loss=running,
    )




# -- hyperparameters against the final metric --


def entry_runs(entry: Entry, *, store: StoreSettings | None = None) -> list[Run]:
    """The individual runs of a row: a comparison's or sweep's runs, a study's trials, a landscape run."""
    if entry.comparison_id is not None:
        runs = comparison_runs(entry.comparison_id, store=store)
    else:
        c = client(store)
        runs = [c.get_run(entry.run_id)]
        token = None
        while True:
            page = c.search_runs(
                [runs[0].info.experiment_id], f"tags.`{PARENT_TAG}` = {_quoted(entry.run_id)}",
                max_results=_SEARCH_PAGE, order_by=["attributes.start_time ASC"], page_token=token,
            )
            runs += page
            if not (token := page.token):
                break
    return [r for r in runs if _is_run(r)]


def run_rows(entries: Iterable[Entry], *, store: StoreSettings | None = None) -> list[dict[str, Any]]:
    """One row per run of these rows: its params (flat, as logged) and final metrics.

    Read from the search results alone (MLflow returns each run's params and latest metrics):
    no metric history, no artifact. An older run's ``val_metric`` is named by what it is
    (``val_accuracy``, ``val_r2``), as runs log it now.
    """
    rows = []
    for entry in entries:
        for run in entry_runs(entry, store=store):
            metrics = {k: v for k, v in run.data.metrics.items() if math.isfinite(v)}
            if "val_metric" in metrics:
                try:
                    metrics[val_metric_key(run.data.params.get("dataset", ""))] = metrics.pop("val_metric")
                except ValueError:  # a data set that is gone (an upload): the old name
                    pass
            rows.append({
                "comparison": entry.ref, "run": _label(run.info.run_name or ""),
                "status": run.data.tags.get("status", ""),
                **run.data.params, **{f"final {k}": v for k, v in metrics.items()},
            })
    return rows
