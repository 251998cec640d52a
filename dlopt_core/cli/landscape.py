"""``python -m dlopt_core landscape``: optimizers stepping on a 2-D test function."""

from __future__ import annotations

import argparse
from typing import Any

from dlopt_core.catalog.functions import FUNCTIONS
from dlopt_core.cli.common import config_argv, config_arguments, config_values, dumps, option_values, options_arg, table
from dlopt_core.device import use_one_thread
from dlopt_core.experiments.landscape import LandscapeConfig, run_landscape, tune_lr

# The function's hyperparameters are --function-option KEY=VALUE.
_BY_HAND = ("params",)


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "landscape",
        help="run optimizers on a 2-D test function and print their trajectories",
        description="Step each optimizer on a 2-D test function; print final values or, with --json, every point.",
    )
    config_arguments(p, LandscapeConfig, skip=_BY_HAND, metavars={"start": "X,Y"}, helps={
        "function": f"one of: {', '.join(FUNCTIONS)}",
        "start": "start point (default: the function's own); write --start=-1.5,2 when X is negative",
        "noise": "gradient noise scale (seeded)",
    })
    options_arg(p, "--function-option", "condition_number=100")
    p.add_argument("--tune", action="store_true", help="first tune each optimizer's lr with a short Optuna search")
    p.add_argument("--json", action="store_true", help="print every trajectory as JSON")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> LandscapeConfig:
    """The landscape the command line describes (before ``--tune``)."""
    return LandscapeConfig.make(
        **config_values(args, LandscapeConfig, skip=_BY_HAND), params=option_values(args.function_option)
    )


def argv(config: LandscapeConfig) -> list[str]:
    """The flags after ``landscape`` that describe ``config`` (:func:`build_config` gives it back)."""
    changed = [p for p in config.test_function.hyperparams if config.params[p.name] != p.default]
    options = [word for p in changed for word in ("--function-option", f"{p.name}={p.text(config.params[p.name])}")]
    return [*config_argv(config, skip=_BY_HAND), *options]


def run(args: argparse.Namespace) -> int:
    """Step each optimizer on the test function, print the trajectories' ends (or JSON); 0."""
    use_one_thread()
    config = build_config(args)
    if args.tune:
        tuned = []
        for opt in config.optimizers:
            lr = tune_lr(config.test_function, opt, start=config.start_point, steps=config.steps,
                         noise=config.noise, seed=config.seed, params=config.params)
            tuned.append(opt.model_copy(update={"lr": lr}))
        config = config.model_copy(update={"optimizers": tuple(tuned)})
    result = run_landscape(config, grid=2)
    minima = config.test_function.minima
    if args.json:
        out = {
            "config": config.to_dict(),
            "minima": [list(m) for m in minima],
            "trajectories": [
                {
                    "optimizer": o.to_spec(),
                    "status": t.status,
                    "stopped_at": t.stopped_at,
                    "points": [[x, y] for x, y in zip(t.x, t.y)],
                    "values": t.values,
                }
                for o, t in zip(config.optimizers, result.trajectories)
            ],
        }
        print(dumps(out))
    else:
        rows = [
            {"optimizer": t.label, "final value": t.values[-1], "distance": t.distances(minima)[-1],
             "status": t.status_text}
            for t in result.trajectories
        ]
        print(table(rows))
    return 0
