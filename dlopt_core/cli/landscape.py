"""``python -m dlopt_core landscape``: optimizers stepping on a 2-D test function."""

from __future__ import annotations

import argparse
from typing import Any

from dlopt_core.catalog.functions import FUNCTIONS
from dlopt_core.cli.common import dumps, optimizer_arg, option_values, options_arg, table
from dlopt_core.config import OptimizerConfig
from dlopt_core.device import use_one_thread
from dlopt_core.experiments.landscape import LandscapeConfig, run_landscape, tune_lr


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "landscape",
        help="run optimizers on a 2-D test function and print their trajectories",
        description="Step each optimizer on a 2-D test function; print final values or, with --json, every point.",
    )
    p.add_argument("--function", default="rosenbrock", help=f"one of: {', '.join(FUNCTIONS)}")
    options_arg(p, "--function-option", "condition_number=100")
    p.add_argument("--start", default=None, metavar="X,Y", help="start point (default: the function's own); "
                   "write --start=-1.5,2 when X is negative")
    optimizer_arg(p)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--noise", type=float, default=0.0, help="gradient noise scale (seeded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tune", action="store_true", help="first tune each optimizer's lr with a short Optuna search")
    p.add_argument("--json", action="store_true", help="print every trajectory as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Step each optimizer on the test function, print the trajectories' ends (or JSON); 0."""
    use_one_thread()
    options = option_values(args.function_option)
    config = LandscapeConfig.make(
        function=args.function, params=options, start=args.start, steps=args.steps,
        noise=args.noise, seed=args.seed, optimizers=tuple(OptimizerConfig.parse(o) for o in args.optimizer),
    )
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
