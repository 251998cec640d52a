"""A transfer experiment: a model pretrained on a source task, fine-tuned on a target task by
every arm (scratch, probe, full, LP-FT, layer-wise decay, LoRA, gradual unfreezing) for every
seed, on the same budget; optionally at several target-data sizes.

Each arm x seed (x size) is a run of the ordinary loop (:func:`dlopt_core.engine.loop.run`)
with the arm's model and parameter groups, so it is logged like a comparison's run (a parent
per experiment, a child per run with its ``arm`` tag) and its records feed the live curves.
Beside the records, each evaluation measures the shifted test, each layer's relative weight
change since fine-tuning started and the lr each layer used; a finished run measures how much
of the source task it kept (its backbone under the source model's head).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from dlopt_core.catalog.models import build_model, get_model_spec
from dlopt_core.catalog.optimizers import get_optimizer
from dlopt_core.config import ModelConfig, OptimizerConfig, RunConfig, TrainingSetup, check_seeds, config_hash
from dlopt_core.device import resolve_device
from dlopt_core.engine.budget import step_budget
from dlopt_core.engine.loop import evaluate, run, weights_of
from dlopt_core.engine.records import Record, Status
from dlopt_core.experiments.compare import RunResult
from dlopt_core.experiments.events import Elapsed, RecordMade, RunEnded, TrackedWork, TrackingReport, tracking_report
from dlopt_core.experiments.observer import Observer, notify
from dlopt_core.runner.work import Control, Emit
from dlopt_core.transfer.arms import ARMS, ArmSettings, Prepared, get_arm, weight_layers
from dlopt_core.transfer.lora import LoRALinear
from dlopt_core.transfer.tasks import TASKS, TaskData, get_task, load_task

__all__ = [
    "ArmRun", "DEFAULT_SIZES", "Transfer", "TransferConfig", "TransferWork", "pretrain_source", "run_rows",
    "size_sweep", "summary_rows",
]

DEFAULT_SIZES = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
MAX_TRANSFER_RUNS = 200


def _default_model() -> ModelConfig:
    # Two hidden layers: layer-wise decay and gradual unfreezing need a backbone of more than one layer.
    return ModelConfig.make(name="mlp", params={"hidden": (64, 64)})


def _words(value: Any) -> Any:
    # "probe,full" (the CLI, a URL) as a tuple.
    return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


class TransferConfig(TrainingSetup):
    """A source task, a target task and the arms that fine-tune on it, x seeds (x target sizes)."""

    EXPERIMENT: ClassVar[str] = "dlopt-transfer"
    KIND: ClassVar[str] = "transfer"

    model: ModelConfig = Field(default_factory=_default_model)
    # A small target set: 20 epochs of batches of 32 give each arm ~100 steps.
    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int | None = Field(32, ge=1, le=1_000_000, description="None: full batch")
    task: str = Field("digits-rotated", description=f"source -> target; one of: {', '.join(TASKS)}")
    # 5 % of the target (about 45 rows) is where the source model pays on digits-rotated; at 20 %
    # training from scratch already did as well (measured: 0.63 vs 0.54 on the shifted test).
    target_fraction: float = Field(
        0.05, ge=0.01, le=1.0, allow_inf_nan=False, description="share of the target's training rows used"
    )
    arms: tuple[str, ...] = Field(tuple(ARMS), min_length=1, description=f"comma-separated; names: {', '.join(ARMS)}")
    # lr 0.01: with ~40 steps at Adam's default 0.001 a new head barely leaves its start.
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig.make(name="adam", lr=0.01))
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=10)
    source_epochs: int = Field(10, ge=1, le=1000, description="epochs of pretraining on the source task")
    source_seed: int = Field(0, ge=0, description="the seed of the source model's pretraining")
    lora_rank: int = Field(4, ge=1, le=256, description="rank r of LoRA's adapters")
    layer_decay: float = Field(0.5, gt=0.0, le=1.0, description="layer-decay's factor per layer below the head")
    unfreeze_every: int = Field(1, ge=1, le=1000, description="gradual: epochs between unfreezing one more layer")
    source_run: str | None = Field(
        None, max_length=64, description="the MLflow run whose weights are the source model; None: pretrain here",
    )
    sizes: tuple[float, ...] = Field(
        (), max_length=12, description="target fractions of a data-size sweep (empty: target_fraction only)"
    )

    @model_validator(mode="before")
    @classmethod
    def _data_of_task(cls, values: Any) -> Any:
        # The task names its data set: a config that does not give one takes it.
        if isinstance(values, dict) and "data" not in values:
            task = TASKS.get(values.get("task", cls.model_fields["task"].default))
            if task is not None:
                values = {**values, "data": {"name": task.dataset}}
        return values

    @field_validator("arms", mode="before")
    @classmethod
    def _arms(cls, value: Any) -> Any:
        value = _words(value)
        for name in value:
            get_arm(name)
        if len(set(value)) != len(value):
            raise ValueError(f"arms: each arm once, got {', '.join(value)}")
        return value

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        value = _words(value)
        if any(not 0.01 <= float(v) <= 1.0 for v in value):
            raise ValueError(f"sizes: each must be in [0.01, 1], got {', '.join(map(str, value))}")
        return tuple(sorted(set(float(v) for v in value)))

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        return check_seeds(value)

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        get_task(value)
        return value

    @model_validator(mode="after")
    def _fits(self) -> Self:
        task = get_task(self.task)
        if self.reduce is not None:
            raise ValueError("reduce: a transfer task sizes its target data with target_fraction (or sizes)")
        if self.data.name != task.dataset:
            raise ValueError(f"dataset: task {self.task!r} is made from {task.dataset!r}, got {self.data.name!r}")
        transfers = [a for a in self.arms if get_arm(a).uses_source]
        if transfers and get_model_spec(self.model.name).convex:
            raise ValueError(f"model: {self.model.name!r} has no hidden layer to transfer; choose an mlp or a cnn")
        if "lp-ft" in self.arms and self.epochs < 2:
            raise ValueError("epochs: lp-ft probes for half the epochs and then fine-tunes: give it at least 2")
        per_layer = [a for a in self.arms if get_arm(a).per_layer_lr]
        if per_layer and get_optimizer(self.optimizer.name).needs_closure:
            raise ValueError(
                f"optimizer: {self.optimizer.name!r} keeps one learning rate for all its parameters; "
                f"{', '.join(per_layer)} needs one per layer (choose another optimizer or drop the arm)"
            )
        if (n := len(self.plan())) > MAX_TRANSFER_RUNS:
            raise ValueError(f"arms x seeds x sizes: {n} runs is over the limit of {MAX_TRANSFER_RUNS}")
        return self

    def fractions(self) -> tuple[float, ...]:
        """The target fractions trained: ``sizes``, or ``target_fraction`` alone."""
        return self.sizes or (self.target_fraction,)

    def plan(self) -> list[tuple[str, int, float]]:
        """``(arm, seed, fraction)`` of every run, in training order."""
        return [(arm, seed, f) for f in self.fractions() for arm in self.arms for seed in self.seeds]

    def run_config(self, seed: int) -> RunConfig:
        """The loop's config of one fine-tuning run (its data is the task's target, given to the loop)."""
        shared = self.model_dump(include=set(TrainingSetup.model_fields))
        return RunConfig.make(**shared, optimizer=self.optimizer, seed=seed)

    def source_config(self) -> RunConfig:
        """The source model's pretraining: the same setup on the source task."""
        return self.run_config(self.source_seed).model_copy(update={"epochs": self.source_epochs})

    def settings(self, seed: int) -> ArmSettings:
        return ArmSettings(self.epochs, seed, self.lora_rank, self.layer_decay, self.unfreeze_every)

    def key(self) -> str:
        return config_hash(self)

    def parent_name(self) -> str:
        what = f"{len(self.arms)} arms" if len(self.arms) > 3 else " vs ".join(self.arms)
        size = f"sizes {', '.join(f'{f:g}' for f in self.sizes)}" if self.sizes else f"{self.target_fraction:g} of the target"
        return f"transfer {self.task}: {what}, {size} ({self.model.name}), {len(self.seeds)} seeds"


def size_sweep(config: TransferConfig, *, arm: str = "lp-ft", sizes: Sequence[float] = DEFAULT_SIZES) -> TransferConfig:
    """``config`` as a data-size sweep: ``scratch`` and ``arm`` at each target fraction."""
    arms = ("scratch", arm) if arm != "scratch" else ("scratch",)
    return TransferConfig.make(**{**config.model_dump(), "arms": arms, "sizes": tuple(sizes)})


# -- the source model --


def load_config_task(config: TransferConfig, fraction: float, device: torch.device) -> TaskData:
    data = config.data
    return load_task(
        config.task, dict(data.options), val_fraction=data.val_fraction, split_seed=data.split_seed,
        target_fraction=fraction, device=device,
    )


def pretrain_source(config: TransferConfig) -> dict[str, np.ndarray]:
    """The source model's weights: the setup's model and optimizer trained on the source task
    (cached in this process by what decides them)."""
    source = config.source_config()
    return _pretrained(config.task, source.model_dump_json())


@functools.lru_cache(maxsize=8)
def _pretrained(task: str, source_json: str) -> dict[str, np.ndarray]:
    source = RunConfig.model_validate_json(source_json)
    data = load_task(
        task, dict(source.data.options), val_fraction=source.data.val_fraction, split_seed=source.data.split_seed,
        target_fraction=1.0, device=resolve_device(source.device),
    ).source
    model = build_model(source.model, data, source.seed)
    last: Record | None = None
    for last in run(source, data=data, model=model, train_loss=False):
        pass
    if last is None or last.status is not Status.FINISHED:
        raise RuntimeError(f"source model: pretraining on {task!r} {last.status if last else 'never ran'}")
    return weights_of(model)


def check_source(config: TransferConfig, state: Mapping[str, Any]) -> None:
    """Raise ValueError when ``state`` (a finished run's weights, say) is no source model for
    ``config``: another model, or another task's inputs or classes. Before Run, not in the worker."""
    data = load_config_task(config, config.fractions()[0], torch.device("cpu"))
    _source_model(config, data, state)


def _source_model(config: TransferConfig, data: TaskData, state: Mapping[str, Any]) -> nn.Module:
    model = build_model(config.model, data.source, config.source_seed)
    try:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise ValueError(f"source weights: they do not fit the model {config.model.to_spec()!r}: {' '.join(str(err).split())[:300]}") from None
    return model


# -- per-layer measures --


def layer_vectors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each weight layer's numbers as one vector: a LoRA layer's effective weight ``W + BA``."""
    out = {}
    for name in weight_layers(model):
        module = model.get_submodule(name)
        if isinstance(module, LoRALinear):
            parts = [module.effective_weight(), *([module.base.bias] if module.base.bias is not None else [])]
        else:
            parts = list(module.parameters())
        out[name] = torch.cat([p.detach().reshape(-1) for p in parts]).clone()
    return out


def relative_change(start: Mapping[str, torch.Tensor], now: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``||now - start|| / ||start||`` per layer."""
    return {
        k: float(torch.linalg.vector_norm(now[k] - start[k]) / torch.linalg.vector_norm(start[k]).clamp_min(1e-12))
        for k in start
    }


# -- live state and its events --


@dataclass
class ArmRun(RunResult):
    """One arm x seed x target fraction: the run's records (as a comparison's) and the transfer measures."""

    arm: str = ""
    fraction: float = 1.0
    trainable_params: int = 0
    layers: list[str] = field(default_factory=list)  # bottom first, the head last
    # Per evaluation, the first before any step.
    shifted_accuracy: list[float] = field(default_factory=list)
    # Per layer, per epoch (after it): ||theta - theta_start|| / ||theta_start||, and the lr it trained with (0 frozen).
    layer_change: dict[str, list[float]] = field(default_factory=dict)
    layer_lr: dict[str, list[float]] = field(default_factory=dict)
    source_accuracy: float | None = None  # the source task, under the source model's head, at the end

    @property
    def tags(self) -> dict[str, str]:
        """What a tracker tags the run with beside its config."""
        return {"arm": self.arm, "target_fraction": repr(self.fraction)}

    @property
    def final_metrics(self) -> dict[str, float | None]:
        """What a tracker logs when the run ends, beside its records' metrics."""
        return {"trainable_params": self.trainable_params, "shifted_accuracy": self.shifted,
                "source_accuracy": self.source_accuracy}

    @property
    def target_accuracies(self) -> list[float]:
        return [r.val_metric for r in self.records if r.is_eval and r.val_metric is not None]

    @property
    def target_accuracy(self) -> float | None:
        """The final target validation accuracy (None: it did not finish)."""
        acc = self.target_accuracies
        return acc[-1] if acc and self.status is Status.FINISHED else None

    @property
    def shifted(self) -> float | None:
        return self.shifted_accuracy[-1] if self.shifted_accuracy and self.status is Status.FINISHED else None


@dataclass(frozen=True)
class SourceReady:
    """The source model: pretrained (or given), and its accuracy on the source validation set."""

    accuracy: float


@dataclass(frozen=True)
class ArmStarted:
    index: int
    trainable_params: int
    layers: list[str]


@dataclass(frozen=True)
class EpochMeasured:
    """After an evaluation: the shifted test, and (after an epoch) each layer's change and lr."""

    index: int
    shifted_accuracy: float
    layer_change: dict[str, float] | None
    layer_lr: dict[str, float] | None


@dataclass(frozen=True)
class ArmMeasured:
    """A finished run's retained source accuracy."""

    index: int
    source_accuracy: float


TransferEvent = SourceReady | ArmStarted | EpochMeasured | ArmMeasured | RecordMade | RunEnded | Elapsed | TrackingReport


class Transfer:
    """A transfer experiment's runs and live results; the same object in the worker and as the server's mirror."""

    def __init__(
        self, config: TransferConfig, *, source_state: Mapping[str, Any] | None = None, transfer_id: str | None = None,
    ) -> None:
        self.config = config
        self.source_state = source_state
        self.id = transfer_id or uuid.uuid4().hex[:12]
        pool = _pool_sizes(config)
        self.runs: list[ArmRun] = []
        for i, (arm, seed, fraction) in enumerate(config.plan()):
            rc = config.run_config(seed)
            n_train = min(pool, max(2, round(fraction * pool)))
            self.runs.append(ArmRun(
                i, rc, step_budget(rc, n_train).total_steps, self.id, name=get_arm(arm).label, arm=arm, fraction=fraction,
            ))
        self.source_accuracy: float | None = None
        self.status = Status.PENDING
        self.elapsed_s = 0.0
        self.optimum: float | None = None  # what a comparison's curves read

    @property
    def cancelled(self) -> bool:
        return any(r.status is Status.CANCELLED for r in self.runs)

    @property
    def progress(self) -> float:
        done = sum(r.total_steps if r.status.ended else r.steps for r in self.runs)
        return done / max(1, sum(r.total_steps for r in self.runs))

    def apply(self, event: TransferEvent) -> None:
        """Take one event (here as it happens, or in the server's mirror)."""
        match event:
            case RecordMade(index, record):
                self.runs[index].apply(record)
            case RunEnded(index, status, error):
                if not self.runs[index].status.ended or self.runs[index].status is not Status(status):
                    self.runs[index].end(Status(status), error=error)
            case SourceReady(accuracy):
                self.source_accuracy = accuracy
            case ArmStarted(index, trainable, layers):
                r = self.runs[index]
                r.trainable_params, r.layers = trainable, list(layers)
                r.layer_change, r.layer_lr = {k: [] for k in layers}, {k: [] for k in layers}
                r.status = Status.RUNNING
            case EpochMeasured(index, shifted, change, lrs):
                r = self.runs[index]
                r.shifted_accuracy.append(shifted)
                for k, v in (change or {}).items():
                    r.layer_change[k].append(v)
                for k, v in (lrs or {}).items():
                    r.layer_lr[k].append(v)
            case ArmMeasured(index, accuracy):
                self.runs[index].source_accuracy = accuracy
            case Elapsed(seconds):
                self.elapsed_s = seconds

    def execute(
        self, *, observers: Sequence[Observer] = (), emit: Emit | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Transfer:
        """Pretrain (or load) the source model, then train every run; stop when ``should_stop()``."""
        started = time.perf_counter()

        def tell(event: TransferEvent, urgent: bool = True) -> None:
            self.apply(event)
            if emit is not None:
                emit(event if not isinstance(event, RecordMade) or event.record.state is None
                     else RecordMade(event.index, event.record._replace(state=None)), urgent=urgent)

        self.status = Status.RUNNING
        announced: set[int] = set()
        try:
            notify(observers, "comparison_started", self)
            device = resolve_device(self.config.device)
            tasks = {f: load_config_task(self.config, f, device) for f in self.config.fractions()}
            first = tasks[self.config.fractions()[0]]
            state = self.source_state if self.source_state is not None else pretrain_source(self.config)
            source_model = _source_model(self.config, first, state)
            source_model.eval()
            tell(SourceReady(evaluate(source_model, first.source, first.source.x_val, first.source.y_val)[1]))
            head = weight_layers(source_model)[-1]
            source_head = copy.deepcopy(source_model.get_submodule(head).state_dict())
            for r in self.runs:
                if should_stop():
                    break
                announced.add(r.index)
                self._train(r, tasks[r.fraction], state, (head, source_head), observers, tell, should_stop)
            self.status = Status.CANCELLED if should_stop() or self.cancelled else Status.FINISHED
        except BaseException:
            self.status = Status.FAILED
            raise
        finally:
            for r in self.runs:
                if not r.status.ended:
                    tell(RunEnded(r.index, str(Status.CANCELLED), None))
                    if r.index in announced:
                        notify(observers, "run_ended", r)
            tell(Elapsed(time.perf_counter() - started))
            notify(observers, "comparison_ended", self)
            _report(observers, tell)
        return self

    def _train(
        self, r: ArmRun, task: TaskData, state: Mapping[str, Any], source_head: tuple[str, dict[str, torch.Tensor]],
        observers: Sequence[Observer], tell: Callable[..., None], should_stop: Callable[[], bool],
    ) -> None:
        spec = get_arm(r.arm)
        prepared: Prepared = spec.prepare(
            build_model(r.config.model, task.target, r.config.seed), state if spec.uses_source else None,
            self.config.settings(r.config.seed),
        )
        model = prepared.model
        tell(ArmStarted(r.index, prepared.trainable_within(self.config.epochs), list(prepared.layers)))
        notify(observers, "run_started", r)
        _report(observers, tell)  # the run's MLflow id exists now
        start = layer_vectors(model)
        records = run(r.config, data=task.target, model=model, groups=prepared.groups)
        try:
            for rec in records:
                tell(RecordMade(r.index, rec), urgent=rec.is_eval)
                notify(observers, "record", r, rec)
                if rec.is_eval and rec.status is not Status.DIVERGED:
                    epoch = round(rec.epoch)
                    was = model.training
                    model.eval()
                    shifted = evaluate(model, task.target, task.x_shifted, task.y_shifted)[1]
                    model.train(was)
                    after = epoch >= 1
                    tell(EpochMeasured(
                        r.index, shifted, relative_change(start, layer_vectors(model)) if after else None,
                        prepared.layer_lr(rec.lr, epoch - 1) if after else None,
                    ))
                if should_stop() and not r.status.ended:
                    records.close()
                    tell(RunEnded(r.index, str(Status.CANCELLED), None))
        except Exception as exc:
            tell(RunEnded(r.index, str(Status.FAILED), f"{type(exc).__name__}: {exc}"))
            notify(observers, "run_ended", r)
            raise
        # An arm that never saw the source keeps nothing of it: read under the source head, its
        # number would be noise, not forgetting.
        if r.status is Status.FINISHED and spec.uses_source:
            tell(ArmMeasured(r.index, _retained(model, source_head, task)))
        notify(observers, "run_ended", r)


def _retained(model: nn.Module, source_head: tuple[str, dict[str, torch.Tensor]], task: TaskData) -> float:
    """The source task's accuracy of ``model``'s backbone under the source model's head."""
    name, head_state = source_head
    kept = copy.deepcopy(model).eval()
    kept.get_submodule(name).load_state_dict(head_state)
    return evaluate(kept, task.source, task.source.x_val, task.source.y_val)[1]


def _report(observers: Sequence[Observer], tell: Callable[..., None]) -> None:
    tell(tracking_report(observers))


def _pool_sizes(config: TransferConfig) -> int:
    data = config.data
    return load_task(
        config.task, dict(data.options), val_fraction=data.val_fraction, split_seed=data.split_seed,
        target_fraction=1.0, device=torch.device("cpu"),
    ).target_pool


# -- tables --


def run_rows(transfer: Transfer) -> list[dict[str, Any]]:
    """One row per arm x seed (x fraction): trainable params, target, shifted and retained source accuracy."""
    return [
        {
            "arm": r.arm, "seed": r.config.seed, "target_fraction": r.fraction, "trainable_params": r.trainable_params,
            "target_accuracy": r.target_accuracy, "shifted_accuracy": r.shifted, "source_accuracy": r.source_accuracy,
            "status": r.status_text,
        }
        for r in transfer.runs
    ]


def summary_rows(transfer: Transfer) -> list[dict[str, Any]]:
    """Per arm (and fraction), over seeds: the mean and sd of each accuracy; diverged runs count in ``status`` only."""
    groups: dict[tuple[str, float], list[ArmRun]] = {}
    for r in transfer.runs:
        groups.setdefault((r.arm, r.fraction), []).append(r)
    rows = []
    for (arm, fraction), runs in groups.items():
        row: dict[str, Any] = {"arm": arm, "target_fraction": fraction, "seeds": len(runs),
                               "trainable_params": runs[0].trainable_params}
        for key, values in (
            ("target_accuracy", [r.target_accuracy for r in runs]),
            ("shifted_accuracy", [r.shifted for r in runs]),
            ("source_accuracy", [r.source_accuracy for r in runs]),
        ):
            finite = [v for v in values if v is not None]
            row[key] = statistics.fmean(finite) if finite else None
            row[f"{key}_sd"] = statistics.stdev(finite) if len(finite) > 1 else None
        row["status"] = ", ".join(sorted({r.status_text for r in runs}))
        rows.append(row)
    return rows


# -- background work --


class TransferWork(TrackedWork):
    """A transfer experiment as background work (:mod:`dlopt_core.runner`): trained in a worker,
    mirrored here from its events, so a page reads :attr:`transfer` live.

    ``source_state``: the source model's weights (a finished run's stored ``state_dict``, say)
    instead of pretraining one; it must fit ``config.model`` on the source task.
    """

    RECIPE = ("config", "source_state", "key", "label", "track", "experiment", "transfer_id")

    def __init__(
        self, config: TransferConfig, *, source_state: Mapping[str, Any] | None = None, track: bool = True,
        experiment: str | None = None,
    ) -> None:
        self.config = config
        self.source_state = dict(source_state) if source_state is not None else None
        # Given weights make another experiment; a run id in the config already names them.
        given = self.source_state is not None and config.source_run is None
        self.key = config.key() + (f"-{_state_hash(self.source_state)}" if given else "")
        self.label = f"transfer {self.key}"
        self._tracked(track, experiment)
        self.transfer = Transfer(config, source_state=self.source_state)
        self.transfer_id = self.transfer.id

    def run(self, emit: Emit, control: Control) -> None:
        transfer = Transfer(self.config, source_state=self.source_state, transfer_id=self.transfer_id)
        transfer.execute(observers=self.trackers(), emit=emit, should_stop=control.should_stop)

    def apply(self, event: TransferEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        match event:
            case TrackingReport():
                self.took(event)
            case _:
                self.transfer.apply(event)

    def finish(self, status: Status) -> None:
        """Runs that never reported an end (a worker ended hard) take the job's end."""
        for r in self.transfer.runs:
            if not r.status.ended:
                r.end(Status.FAILED if status is Status.FAILED else Status.CANCELLED)
        self.transfer.status = status


def _state_hash(state: Mapping[str, Any]) -> str:
    digest = hashlib.sha1()
    for k in sorted(state):
        digest.update(k.encode())
        digest.update(np.ascontiguousarray(np.asarray(state[k])).tobytes())
    return digest.hexdigest()[:12]
