"""``python -m dlopt_core compress``: train a baseline (or load its weights), compress it every way asked, measure each.

Every method is checked against the model before anything trains or is logged. Variant logging
is found through the ``dlopt.tracking`` entry point group
(:func:`~dlopt_core.experiments.observer.tracking_observers`), so the core never imports a
tracking backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from dlopt_core.cli.common import config_argv, config_arguments, config_values, dumps, table, tracking_arguments
from dlopt_core.compression.methods import COMPRESSIONS
from dlopt_core.compression.weights import WeightsError, read_state_dict
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.engine.loop import load_run_data
from dlopt_core.experiments.compress.baseline import check_methods
from dlopt_core.experiments.compress.config import CompressionConfig
from dlopt_core.experiments.compress.run import Compression
from dlopt_core.experiments.observer import Observer, tracking_observers
from dlopt_core.runner.plugins import tracking_start

# The baseline's weights come from --weights (a file), not from an MLflow run.
_BY_HAND = ("baseline_run",)


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
    config_arguments(p, CompressionConfig, skip=_BY_HAND, metavars={"sparsities": "S1,S2,...", "sensitivity_sparsity": "S"}, helps={
        "schedule": "the baseline's lr schedule",
        "epochs": "the baseline's epochs (a distilled student trains as many)",
        "optimizer": "the baseline's optimizer (fine-tuning and students use it too)",
        "seed": "the baseline's seed (and every student's)",
        "methods": "repeatable, e.g. prune_structured:sparsity=0.5,norm=l2 prune_unstructured:sparsity=0.9,scope=global "
        "quantize_int8_dynamic fp16 distill:student=mlp:hidden=32,temperature=4,alpha=0.5; names: "
        + "; ".join(f"{n} ({', '.join(h.name for h in s.hyperparams) or 'no options'})" for n, s in COMPRESSIONS.items()),
        "sparsities": "also run every method with a sparsity at each of these, e.g. 0.25,0.5,0.75,0.9",
        "latency_repeats": "timed forward passes per latency (the median is shown)",
        "compile": "also time each variant under torch.compile (seconds per variant; n/a with the reason if it fails)",
        "sensitivity_sparsity": "per-layer sensitivity (JSON only): each layer pruned alone at S, and int8-quantized alone",
    })
    p.add_argument("--no-sensitivity", action="store_true", help="skip the per-layer sensitivity")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="a state_dict file (torch.save) of the setup's model to use as the baseline instead of training "
                   "it; read with weights_only=True, so a file holding code is refused")
    p.add_argument("--json", action="store_true", help='print {"rows": [...], ...}: every measurement of every variant')
    tracking_arguments(p, CompressionConfig)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> CompressionConfig:
    """The compression the command line describes."""
    values = config_values(args, CompressionConfig, skip=_BY_HAND)
    if args.no_sensitivity:
        values["sensitivity_sparsity"] = None
    return CompressionConfig.make(**values)


def argv(config: CompressionConfig) -> list[str]:
    """The flags after ``compress`` that describe ``config`` (:func:`build_config` gives it back), less
    ``baseline_run``: the command line names weights by their file."""
    return config_argv(config, skip=_BY_HAND)


class _Progress(Observer):
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
    config = build_config(args)
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
        trackers: list[Observer] = []
        if not args.no_track:
            tracking_start()
            trackers = tracking_observers(CompressionConfig.KIND, experiment=args.experiment)
        compression = Compression(config, baseline_state=state)
        compression.execute(observers=[_Progress(), *trackers])
    run_ids = {label: rid for t in trackers for label, rid in getattr(t, "run_ids", {}).items()}
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

