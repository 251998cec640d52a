"""``python -m dlopt_core lr-range``: the LR range test, learning rates suggested for one optimizer."""

from __future__ import annotations

import argparse
from typing import Any

from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.cli.common import cell, config_argv, config_arguments, config_values, dumps, table
from dlopt_core.device import resolve_device, use_one_thread
from dlopt_core.experiments.lr_range import SUGGESTION_LABELS, SUGGESTIONS, LRRangeConfig, LRRangeResult, run_lr_range

# The test sets the lr of every step itself: the setup's epochs and schedule have no use here.
_UNUSED = ("epochs", "schedule")


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "lr-range",
        help="LR range test: suggest learning rates for one optimizer from an exponential lr sweep",
        description="From a fresh model per seed, train STEPS mini-batch steps while the lr grows "
        "exponentially from --lr-min to --lr-max (full batches for full-batch-only optimizers); stop when "
        "the smoothed loss (a bias-corrected moving average over half a decade of lr) rises above 4x its best or is not finite. Print three "
        "suggestions per seed and their median over seeds: the steepest slope of the smoothed loss against "
        "log10(lr), fastai's valley rule, and the lr at the minimum / 10. Nothing is logged to MLflow.",
    )
    config_arguments(p, LRRangeConfig, skip=_UNUSED, metavars={"optimizer": "NAME[:key=value...]"}, helps={
        "optimizer": f"one optimizer (its lr is ignored); names: {', '.join(OPTIMIZERS)}",
        "seeds": "comma-separated, e.g. 0,1,2: one test per seed",
        "steps": "steps of the sweep (fewer if the loss explodes)",
        "lr_min": "the first step's lr",
        "lr_max": "the last step's lr",
        "beta": "smoothing of the loss (exponential moving average; default: a window of half a decade of lr)",
    })
    p.add_argument("--json", action="store_true",
                   help="print the suggestions (median over seeds), their spread, and each seed's curve and suggestions")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> LRRangeConfig:
    """The range test the command line describes."""
    return LRRangeConfig.make(**config_values(args, LRRangeConfig, skip=_UNUSED))


def argv(config: LRRangeConfig) -> list[str]:
    """The flags after ``lr-range`` that describe ``config`` (:func:`build_config` gives it back)."""
    return config_argv(config, skip=_UNUSED)


def run(args: argparse.Namespace) -> int:
    """Run the LR range test, print its suggestions (or JSON); 0."""
    config = build_config(args)
    resolve_device(config.device)
    use_one_thread()
    result = run_lr_range(config)
    if args.json:
        print(dumps(_lr_range_json(result)))
        return 0
    seeds = ",".join(map(str, config.seeds))
    optimizer = " ".join([OPTIMIZERS[config.optimizer.name].label, *config.optimizer.changed()])
    print(f"LR range test of {optimizer} on {config.data.name} ({config.model.name}): "
          f"{config.steps} steps from lr {config.lr_min:g} to {config.lr_max:g}, seeds {seeds}, {result.elapsed_s:.2f} s")
    rows = [
        {"suggestion": SUGGESTION_LABELS[name], "lr (median)": getattr(result.suggestions, name),
         "lowest": spread[0] if (spread := result.spread[name]) else None, "highest": spread[1] if spread else None}
        for name in SUGGESTIONS
    ]
    print(table(rows))
    for c in result.curves:
        end = f"exploded at lr {c.lrs[-1]:.3g}" if c.exploded else f"reached lr {c.lrs[-1]:.3g}"
        found = ", ".join(f"{SUGGESTION_LABELS[n]} {cell(v)}" for n, v in c.suggestions.as_dict().items())
        print(f"seed {c.seed}: {len(c.lrs)} steps, {end}; {found}")
    return 0


def _lr_range_json(result: LRRangeResult) -> dict[str, Any]:
    return {
        "config": result.config.to_dict(),
        "suggestions": result.suggestions.as_dict(),
        "spread": {name: list(s) if s else None for name, s in result.spread.items()},
        "elapsed_s": result.elapsed_s,
        "seeds": [
            {
                "seed": c.seed, "steps": len(c.lrs), "exploded": c.exploded, "seconds": c.seconds,
                "suggestions": c.suggestions.as_dict(),
                "curve": {"lr": c.lrs, "loss": c.losses, "smoothed": c.smoothed},
            }
            for c in result.curves
        ],
    }
