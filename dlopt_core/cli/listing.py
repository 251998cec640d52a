"""``python -m dlopt_core list``: the entries of every registry."""

from __future__ import annotations

import argparse
from typing import Any

from dlopt_core.catalog.augmentations import AUGMENTATIONS
from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.functions import FUNCTIONS
from dlopt_core.catalog.models import MODELS
from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.catalog.reductions import REDUCTIONS
from dlopt_core.catalog.schedules import SCHEDULES
from dlopt_core.compression.methods import COMPRESSIONS


def add_parser(subparsers: Any) -> None:
    """Add this subcommand to the CLI's."""
    p = subparsers.add_parser(
        "list",
        help="list optimizers, schedules, data sets, models, test functions, augmentations, reductions and "
        "compression methods",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print every registry's entries with their descriptions; 0."""
    sections = {
        "optimizers": {n: s.description for n, s in OPTIMIZERS.items()},
        "schedules": {n: s.description for n, s in SCHEDULES.items()},
        "datasets": {n: s.description for n, s in DATASETS.items()},
        "models": {n: s.description for n, s in MODELS.items()},
        "functions": {n: f"{f.label}: {f.formula}" for n, f in FUNCTIONS.items()},
        "augmentations": {n: s.description for n, s in AUGMENTATIONS.items()},
        "reductions": {n: s.description for n, s in REDUCTIONS.items()},
        "compression methods": {n: s.description for n, s in COMPRESSIONS.items()},
    }
    for title, entries in sections.items():
        print(f"{title}:")
        for name, text in entries.items():
            print(f"  {name:20s} {text}")
    return 0
