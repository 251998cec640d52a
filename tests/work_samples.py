"""Small picklable works for the runner tests (a worker process imports this module)."""

from __future__ import annotations

import os
import time
from typing import Any

from dlopt_core.engine.records import Status
from dlopt_core.experiments.landscape_tune import LandscapeTuneWork, LrFound


class Counting:
    """Emits 0, 1, 2, ... until ``limit`` or a stop; the server side keeps what arrived."""

    def __init__(self, key: str, limit: int = 10**9, *, ignore_stop: bool = False, fail_at: int | None = None) -> None:
        self.key, self.label = key, f"count {key}"
        self.limit, self.ignore_stop, self.fail_at = limit, ignore_stop, fail_at
        self.seen: list[int] = []
        self.run_stops: list[int] = []
        self.pids: set[int] = set()
        self.env: dict[str, str | None] = {}
        self.finished_as: Status | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["seen"], state["run_stops"], state["pids"] = [], [], set()
        return state

    def run(self, emit: Any, control: Any) -> None:
        emit(("env", os.getpid(), os.environ.get("DLOPT_HOME")), urgent=True)
        for i in range(self.limit):
            if control.should_stop() and not self.ignore_stop:
                return
            if i == self.fail_at:
                raise RuntimeError("no such file")
            emit(("n", i, control.take_run_stops()), urgent=i == 0)
            time.sleep(0.001)

    def apply(self, event: Any) -> None:
        if event[0] == "env":
            self.pids.add(event[1])
            self.env["DLOPT_HOME"] = event[2]
        else:
            self.seen.append(event[1])
            self.run_stops.extend(event[2])

    def finish(self, status: Status) -> None:
        self.finished_as = status


class Stubborn(Counting):
    """Ignores Stop and sleeps in one long call, as a huge training step would."""

    def run(self, emit: Any, control: Any) -> None:
        emit(("env", os.getpid(), os.environ.get("DLOPT_HOME")), urgent=True)
        emit(("n", 0, []), urgent=True)
        time.sleep(3600)


class KnownTune(LandscapeTuneWork):
    """A landscape tuning whose every search came out as ``given`` (to show how a page flags it)."""

    def __init__(self, config: Any, given: Any = None, reached: int | None = None, hold: str = "") -> None:
        super().__init__(config)
        self.given = given
        self.reached = len(config.optimizers) if reached is None else reached  # as if stopped there
        self.hold = hold  # a file: the work runs until it exists, so a page can open it running

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "given": self.given, "reached": self.reached, "hold": self.hold}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def run(self, emit: Any, control: Any) -> None:
        while self.hold and not os.path.exists(self.hold) and not control.should_stop():
            time.sleep(0.01)
        for index in range(self.reached):
            emit(LrFound(index, self.given), urgent=True)


class StubbornLogger(Counting):
    """Opens an MLflow run as a training work does, then ignores Stop and SIGTERM (a worker that
    is still writing the ends of hundreds of runs): only SIGKILL ends it."""

    def run(self, emit: Any, control: Any) -> None:
        import signal

        from tracking.reconcile import run_identity_tags
        from tracking.store import EXPERIMENT, client, experiment_id

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run = client().create_run(experiment_id(EXPERIMENT), tags=run_identity_tags())
        emit(("env", os.getpid(), os.environ.get("DLOPT_HOME")), urgent=True)
        emit(("run", run.info.run_id), urgent=True)
        time.sleep(3600)

    def apply(self, event: Any) -> None:
        if event[0] == "run":
            self.run_id = event[1]
        else:
            super().apply(event)
