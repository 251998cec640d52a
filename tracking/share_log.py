"""Log a parameter-sharing experiment to MLflow: a parent run, a child per variant x seed.

Written through :class:`~tracking.mlflow_log.MlflowObserver`'s writer thread and spool (an
unreachable store costs one timeout, the writes wait in the spool). The parent has the config
as params (``ShareConfig.to_dict()``) and ``elapsed_s``; each child has tags ``variant``,
``family``, ``seed`` and the variant's really-shared checks (``check.<name>`` = true/false), the
check's numbers as ``check_*`` metrics, and per epoch ``train_loss``, ``elapsed_s``, the
validation metric per task (``val_digit_accuracy``, ``val_reconstruct_mse``, ...) and on a
multi-task trunk ``cosine/<layer>``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlopt_core.config import param_text
from dlopt_core.sharing.tasks import get_task
from tracking.mlflow_log import _PARENT, _STATUS, MlflowObserver
from tracking.reconcile import run_identity_tags
from tracking.spool import PARENT_TAG, Op

if TYPE_CHECKING:
    from dlopt_core.experiments.share import Share, ShareRun
    from dlopt_core.sharing.checks import SharingCheck
    from dlopt_core.sharing.train import EpochRow


def _now_ms() -> int:
    return int(time.time() * 1000)


class ShareLogger(MlflowObserver):
    """Writes a sharing experiment's runs to MLflow (``run_ids``: run index -> id, the parent under -1)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(figure_html=False, **options)
        self._checks: dict[str, SharingCheck] = {}

    def share_started(self, share: Share) -> None:
        self._start_comparison(share.id)
        self._checks = {}
        params = {k: param_text(v) for k, v in share.config.to_dict().items()}
        self._open_parent(share.id, share.config.parent_name(), params)
        self._write(_PARENT, {"op": "tags", "tags": {"family": share.config.family, "kind": share.config.KIND}})

    def share_checked(self, share: Share, check: SharingCheck) -> None:
        self._checks[check.variant] = check

    def share_run_started(self, share: Share, run: ShareRun) -> None:
        cfg = share.config
        tags = {
            "comparison_id": share.id, "variant": run.variant, "family": cfg.family, "seed": str(run.seed),
            "optimizer": cfg.optimizer.name, "dataset": "digits", "status": "running", **run_identity_tags(),
        }
        if _PARENT in self.run_ids:
            tags[PARENT_TAG] = self.run_ids[_PARENT]
        create: Op = {
            "op": "create", "experiment": self.experiment, "run_name": f"{run.label} seed={run.seed}",
            "tags": tags, "start_time": _now_ms(),
        }
        if _PARENT not in self.run_ids:
            create["parent_of"] = share.id  # the parent waits in the spool: the replay finds it
        params = {k: param_text(v) for k, v in cfg.to_dict().items() if k not in ("variants", "seeds")}
        ops: list[Op] = [create, {"op": "params", "params": {**params, "variant": run.variant, "seed": str(run.seed)}}]
        if (check := self._checks.get(run.variant)) is not None:
            flags = {f"check.{k}": str(v).lower() for k, v in check.flags().items()}
            ops.append({"op": "tags", "tags": flags})
            numbers = ("use_sites", "storages", "tensors", "params", "params_untied", "optimizer_states",
                       "group_entries", "grad_error")
            ms = _now_ms()
            ops.append({"op": "metrics", "metrics": [[f"check_{k}", float(getattr(check, k)), ms, 0] for k in numbers]})
        # Created here, before the run trains: the writer thread would hold the GIL during steps.
        for op in ops:
            self._write(run.index, op)

    def share_epoch(self, share: Share, run: ShareRun, row: EpochRow) -> None:
        ms = _now_ms()
        metrics = [["elapsed_s", row.elapsed_s, ms, row.epoch], ["lr", row.lr, ms, row.epoch]]
        if row.train_loss is not None:
            metrics.append(["train_loss", row.train_loss, ms, row.epoch])
        metrics += [[f"val_{get_task(t).metric_key}", v, ms, row.epoch] for t, v in row.metrics.items()]
        metrics += [[f"val_{t}_loss", v, ms, row.epoch] for t, v in row.val_losses.items()]
        metrics += [[f"cosine/{layer}", v, ms, row.epoch] for layer, v in row.cosines.items()]
        op: Op = {"op": "metrics", "metrics": metrics}
        self._submit(lambda: self._write(run.index, op))

    def share_run_ended(self, share: Share, run: ShareRun) -> None:
        tags = {"status": run.status_text}
        if run.diverged_step is not None:
            tags["diverged_step"] = str(run.diverged_step)
        if run.error:
            tags["error"] = run.error[:5000]
        ops: list[Op] = [
            {"op": "tags", "tags": tags},
            {"op": "end", "status": _STATUS.get(str(run.status), "FAILED"), "end_time": _now_ms()},
        ]
        if run.index not in self.run_ids and run.index not in self._spools:
            return  # cancelled before it started: no run to end
        self._submit(lambda: [self._write(run.index, op) for op in ops])

    def share_ended(self, share: Share) -> None:
        cancelled = any(str(r.status) == "cancelled" for r in share.runs)
        ops: list[Op] = [
            {"op": "metrics", "metrics": [["elapsed_s", share.elapsed_s, _now_ms(), 0]]},
            {"op": "tags", "tags": {"status": "cancelled" if cancelled else "finished"}},
            {"op": "end", "status": "KILLED" if cancelled else "FINISHED", "end_time": _now_ms()},
        ]
        self._submit(lambda: [self._write(_PARENT, op) for op in ops])
        self.close()
