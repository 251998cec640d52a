"""``python -m dlopt_core compress``: train a baseline (or load its weights), compress it every way asked, measure each.

Every method is checked against the model before anything trains or is logged. Variant logging
is found through the ``dlopt.compression_observers`` entry point group
(:func:`~dlopt_core.experiments.compress.compression_observers`), so the core never imports a
tracking backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from dlopt_core.catalog.hyperparams import parse_spec
from dlopt_core.cli.common import dumps, setup_arguments, shared_setup_values, table
from dlopt_core.compression.methods import COMPRESSIONS
from dlopt_core.compression.weights import WeightsError, read_state_dict
from dlopt_core.config import OptimizerConfig
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.loop import load_run_data
from dlopt_core.experiments.compress import (
    Compression,
    CompressionConfig,
    CompressionObserver,
    MethodConfig,
    check_methods,
    compression_observers,
)
from dlopt_core.runner.plugins import tracking_start

def add_parser(subparsers: Any) -> None:
    """Add ``compress`` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "compress",
        help="compress a trained model (pruning, int8 quantization, fp16/bf16, distillation) and measure each variant",
        description="Train the baseline on the setup (or load --weights), apply every --method to it, and print one "
        "row per variant and the baseline: validation accuracy (R² for regression), parameters, non-zero parameters, "
        "bytes of the saved state_dict (and of a CSR encoding for masked-only pruning), and the median CPU latency "
        "at batch 1 and 256 (1 torch thread). Each variant is logged to MLflow as a run tagged with the baseline's run id.",
    )
    setup_arguments(p, training=False)
    p.add_argument("--schedule", default="constant", metavar="NAME[:key=value...]", help="the baseline's lr schedule")
    p.add_argument("--epochs", type=int, default=10, help="the baseline's epochs (a distilled student trains as many)")
    p.add_argument("--optimizer", default="adam", metavar="NAME[:lr=X,key=value...]",
                   help="the baseline's optimizer (fine-tuning and students use it too)")
    p.add_argument("--seed", type=int, default=0, help="the baseline's seed (and every student's)")
    p.add_argument(
        "--method", action="append", required=True, metavar="NAME[:key=value...]",
        help="repeatable, e.g. prune_structured:sparsity=0.5,norm=l2 prune_unstructured:sparsity=0.9,scope=global "
        "quantize_int8_dynamic fp16 distill:student=mlp:hidden=32,temperature=4,alpha=0.5; names: "
        + "; ".join(f"{n} ({', '.join(h.name for h in s.hyperparams) or 'no options'})" for n, s in COMPRESSIONS.items()),
    )
    p.add_argument("--sparsities", default="", metavar="S1,S2,...",
                   help="also run every method with a sparsity at each of these, e.g. 0.25,0.5,0.75,0.9")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="a state_dict file (torch.save) of the setup's model to use as the baseline instead of training "
                   "it; read with weights_only=True, so a file holding code is refused")
    p.add_argument("--latency-repeats", type=int, default=20, help="timed forward passes per latency (the median is shown)")
    p.add_argument("--compile", action="store_true",
                   help="also time each variant under torch.compile (seconds per variant; n/a with the reason if it fails)")
    p.add_argument("--sensitivity-sparsity", type=float, default=0.5, metavar="S",
                   help="per-layer sensitivity (JSON only): each layer pruned alone at S, and int8-quantized alone")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the per-layer sensitivity")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument("--json", action="store_true", help='print {"rows": [...], ...}: every measurement of every variant')
    p.add_argument("--experiment", default=CompressionConfig.EXPERIMENT, help="MLflow experiment name")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> CompressionConfig:
    schedule, schedule_params = parse_spec(args.schedule)
    return CompressionConfig.make(
        **shared_setup_values(args), schedule={"name": schedule, "params": schedule_params}, epochs=args.epochs,
        optimizer=OptimizerConfig.parse(args.optimizer), seed=args.seed,
        methods=tuple(MethodConfig.parse(m) for m in args.method), sparsities=args.sparsities,
        latency_repeats=args.latency_repeats, compile=args.compile,
        sensitivity_sparsity=None if args.no_sensitivity else args.sensitivity_sparsity,
    )


class _Progress(CompressionObserver):
    """A one-line progress display on stderr (only when it is a terminal)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()

    def progressed(self, compression: Compression) -> None:
        if self.enabled:
            print(f"\r{100 * compression.progress:3.0f}% {compression.phase[:70]:<70}", end="", file=sys.stderr, flush=True)

    def compression_ended(self, compression: Compression) -> None:
        if self.enabled:
            print("\r" + " " * 76 + "\r", end="", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Train (or load) the baseline, compress and measure it every way asked; print the rows (or JSON).

    0: every variant measured and logged; 1: a variant failed or tracking did.
    """
    config = _config(args)
    state = None
    if args.weights is not None:
        try:
            raw = Path(args.weights).read_bytes()
        except OSError as err:
            raise WeightsError(f"weights: cannot read {args.weights!r}: {err.strerror}") from None
        state = read_state_dict(raw, source=f"weights {args.weights!r}")
    resolve_device(config.device)
    use_one_thread()
    # Everything that can be refused is refused here, before MLflow hears of any run.
    check_methods(config, data=load_run_data(config.baseline_config()), baseline_state=state)
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the results (valid JSON with --json)
        trackers: list[Any] = []
        if not args.no_track:
            tracking_start()
            trackers = compression_observers(experiment=args.experiment)
        compression = Compression(config, baseline_state=state)
        compression.execute(observers=[_Progress(), *trackers])
    run_ids = {label: rid for t in trackers for label, rid in getattr(t, "row_run_ids", {}).items()}
    errors = [e for t in trackers for e in getattr(t, "errors", [])]
    classification = "accuracy" in compression.metric_name
    if args.json:
        print(dumps({
            "compression_id": compression.id,
            "config": config.to_dict(),
            "metric": compression.metric_name,
            "elapsed_s": compression.elapsed_s,
            # accuracy: the validation accuracy (null for regression, whose rows carry val_loss and R² as val_metric).
            "rows": [
                {"method": r.method, "accuracy": r.val_metric if classification else None, **r.as_dict(),
                 "mlflow_run_id": run_ids.get(r.label)}
                for r in compression.rows
            ],
            "sensitivity": [vars(s) for s in compression.sensitivity],
            "tracking_errors": errors,
        }))
    else:
        print(table([_row_text(r, compression.metric_name) for r in compression.rows]))
        for t in trackers:
            print(t.describe(), f"(compression_id={compression.id})")
    for e in errors:
        print(f"warning: tracking: {e}", file=sys.stderr)
    failed = [r for r in compression.rows if r.error]
    for r in failed:
        print(f"error: {r.label}: {r.error}", file=sys.stderr)
    return 1 if failed or errors else 0


def _row_text(r: Any, metric: str) -> dict[str, Any]:
    return {
        "variant": r.label, metric: r.val_metric, "params": r.params, "nonzeros": r.nonzeros, "bytes": r.bytes,
        "sparse bytes": r.sparse_bytes, "b1 ms": r.latency_b1_ms, "b256 ms": r.latency_b256_ms,
        **({"compiled b1 ms": r.compiled_b1_ms, "compiled b256 ms": r.compiled_b256_ms} if r.compiled_note != "not asked for" else {}),
        "kind": r.badge + (f" ({r.error})" if r.error else ""),
    }

