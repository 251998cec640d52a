"""A compression as background work: run in a worker, mirrored here from its events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dlopt_core.engine.records import Status
from dlopt_core.experiments.compare import RunResult
from dlopt_core.experiments.compress.config import CompressionConfig
from dlopt_core.experiments.compress.run import Compression
from dlopt_core.experiments.events import (
    Progressed,
    RecordMade,
    Relay,
    RowDone,
    RunAdded,
    RunEnded,
    SensitivityFound,
    TrackingReport,
)
from dlopt_core.experiments.observer import tracking_observers
from dlopt_core.runner.work import Control, Emit

CompressionEvent = RunAdded | RecordMade | RunEnded | Progressed | RowDone | SensitivityFound | TrackingReport

class CompressionWork:
    """A compression as background work (:mod:`dlopt_core.runner`): run in a worker, mirrored
    here from its events, so a page reads :attr:`compression` live (rows, runs, progress, phase).

    ``baseline_state``: the baseline's weights (a finished run's, see ``tracking.weights``);
    ``None`` trains the baseline first.
    """

    def __init__(
        self, config: CompressionConfig, *, baseline_state: Mapping[str, Any] | None = None, track: bool = True,
        experiment: str = CompressionConfig.EXPERIMENT,
    ) -> None:
        self.config = config
        # NumPy: the work is pickled into a worker process, where shared-memory tensors would not outlive ours.
        self.baseline_state = (
            None if baseline_state is None else {k: np.asarray(torch.as_tensor(v).cpu()) for k, v in baseline_state.items()}
        )
        self.key = config.key()
        self.label = f"compress {self.key}"
        self.track = track
        self.experiment = experiment
        self.compression = Compression(config, baseline_state=self.baseline_state)
        self.row_run_ids: dict[str, str] = {}  # row label -> MLflow run id
        self.tracking_errors: list[str] = []
        self.unwritten = 0

    def __getstate__(self) -> dict[str, Any]:
        return {
            "config": self.config, "baseline_state": self.baseline_state, "track": self.track,
            "experiment": self.experiment, "id": self.compression.id,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["config"], baseline_state=state["baseline_state"], track=state["track"], experiment=state["experiment"],
        )
        self.compression.id = state["id"]

    def run(self, emit: Emit, control: Control) -> None:
        from dlopt_core.runner.plugins import tracking_start

        trackers = []
        if self.track:
            tracking_start()
            trackers = tracking_observers(CompressionConfig.KIND, experiment=self.experiment)
        compression = Compression(self.config, baseline_state=self.baseline_state, compression_id=self.compression.id)
        compression.execute(observers=[*trackers, Relay(emit, control, trackers)], should_stop=control.should_stop)

    def apply(self, event: CompressionEvent) -> None:
        """Take one event of :meth:`run` into the live mirror (in the server)."""
        c = self.compression
        match event:
            case RunAdded(index, config, total_steps, name):
                c.runs.append(RunResult(index, config, total_steps, c.id, status=Status.RUNNING, name=name))
            case RecordMade(index, record):
                run = c.runs[index]
                before = run.steps
                run.apply(record)
                c.done_units += run.steps - before
            case RunEnded(index, status, error):
                run = c.runs[index]
                if not run.status.ended:
                    run.end(Status(status), error=error)
            case Progressed(phase, done_units, status, error, elapsed_s):
                c.phase, c.done_units, c.status, c.error, c.elapsed_s = phase, done_units, Status(status), error, elapsed_s
            case RowDone(row):
                c.rows.append(row)
            case SensitivityFound(layers):
                c.sensitivity = list(layers)
            case TrackingReport(run_ids, errors, unwritten):
                self.row_run_ids, self.tracking_errors, self.unwritten = dict(run_ids), list(errors), unwritten

    def finish(self, status: Status) -> None:
        """The job ended: anything that did not report its end takes the job's."""
        c = self.compression
        for r in c.runs:
            if not r.status.ended:
                r.end(Status.CANCELLED if status is not Status.FAILED else Status.FAILED)
        if not c.status.ended:
            c.status = status
