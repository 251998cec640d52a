"""Command line: the same engine the pages drive, one module per subcommand.

Tracking is found through the ``dlopt.tracking`` entry point group (the ``tracking``
package registers MLflow there), so the core never imports a tracking backend itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from dlopt_core.cli import (
    compare,
    compress,
    continual,
    landscape,
    listing,
    lr_range,
    search,
    share,
    stream,
    sweep,
    transfer,
)
from dlopt_core.errors import ConfigError

# In the order --help lists them.
SUBCOMMANDS = (compare, sweep, lr_range, landscape, search, compress, share, transfer, stream, continual, listing)


class Parser(argparse.ArgumentParser):
    """Bad arguments are one line that names the flag (the usage block is for ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand's flags (each subcommand's parser is a :class:`Parser`)."""
    parser = Parser(
        prog="python -m dlopt_core",
        description="Train small models with several optimizers and compare them.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad config)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
