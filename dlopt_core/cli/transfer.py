"""``python -m dlopt_core transfer``: pretrain on a source task, fine-tune every arm on the target, as a table."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dlopt_core.cli.common import (
    Executed, config_argv, config_arguments, config_values, dumps, stop_on_signals, table, tracking_arguments,
)
from dlopt_core.compression.weights import WeightsError, read_state_dict
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.experiments.observer import tracking_observers
from dlopt_core.experiments.transfer import Transfer, TransferConfig, check_source, run_rows, summary_rows
from dlopt_core.runner.plugins import tracking_start

# The task names its data set (and --task is the data flags' own word): no --dataset here.
# The source model's weights come from --source-weights (a file), not from an MLflow run.
SKIP = ("data", "source_run")


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "transfer",
        help="fine-tune a pretrained model on a shifted task with every arm and print a results table",
        description="Pretrain the model on the task's source data, then train each arm (scratch, probe, full, "
        "lp-ft, layer-decay, lora, gradual) for every seed on the target data with the same budget; "
        "report target, shifted-test and retained source accuracy. Each run is logged to MLflow.",
    )
    config_arguments(p, TransferConfig, skip=SKIP, helps={
        "sizes": "a data-size sweep: train each arm at these target fractions, e.g. 0.02,0.1,0.5,1",
    })
    p.add_argument("--source-weights", default=None, metavar="PATH",
                   help="a state_dict file (torch.save) of the model trained on the source task, instead of "
                   "pretraining it; read with weights_only=True, so a file holding code is refused")
    p.add_argument("--json", action="store_true", help="print machine-readable results: one row per arm x seed and a summary per arm")
    tracking_arguments(p, TransferConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> TransferConfig:
    """The experiment the command line describes."""
    return TransferConfig.make(**config_values(args, TransferConfig, skip=SKIP))


def argv(config: TransferConfig, *, always: Collection[str] = ()) -> list[str]:
    """The flags after ``transfer`` that describe ``config`` (:func:`build_config` gives it back)."""
    return config_argv(config, skip=SKIP, always=always)


def run(args: argparse.Namespace) -> int:
    """Train the experiment, print its table (or JSON); the exit status."""
    config = build_config(args)
    state = None
    if args.source_weights is not None:
        try:
            raw = Path(args.source_weights).read_bytes()
        except OSError as err:
            raise WeightsError(f"source weights: cannot read {args.source_weights!r}: {err.strerror}") from None
        state = read_state_dict(raw, source=f"source weights {args.source_weights!r}")
        check_source(config, state)
    resolve_device(config.device)
    use_one_thread()
    # stdout is kept for the results (valid JSON with --json); MLflow's lines go to stderr.
    with contextlib.redirect_stdout(sys.stderr), stop_on_signals() as stop:
        if not args.no_track:
            tracking_start()
        observers = [] if args.no_track else tracking_observers(config.KIND, experiment=args.experiment)
        transfer = Transfer(config, source_state=state).execute(observers=observers, should_stop=stop.is_set)
    done = Executed(transfer, observers, stop.exit_status)  # type: ignore[arg-type]
    summary = summary_rows(transfer)
    if args.json:
        run_ids = done.run_ids
        print(dumps({
            "transfer_id": transfer.id,
            "config": config.to_dict(),
            "elapsed_s": transfer.elapsed_s,
            "source_model_accuracy": transfer.source_accuracy,
            "summary": summary,
            "runs": [{**row, "mlflow_run_id": run_ids.get(i)} for i, row in enumerate(run_rows(transfer))],
            "tracking_errors": done.errors,
            "tracking_unwritten": done.unwritten,
        }))
    else:
        print(f"source model: accuracy {transfer.source_accuracy:.4g} on the source task")
        print(table([{k: v for k, v in row.items() if not k.endswith("_sd")} for row in summary]))
    return done.report(printed_table=not args.json)
