"""The command line: thin commands over the library (`aggregator ...`).

Each command loads what it needs, calls one library function, formats the result and maps
domain errors to a clean message and exit code (0 good, 1 some feeds failed, 2 bad usage or
configuration). It decides nothing a library function should, and it never imports the
store's row modules: only `aggregator.store`'s public names (`Store`, `open_reader`).
"""

from __future__ import annotations

# The group alone: each command's module registers its commands on it when the command is
# first asked for (group.COMMANDS), so `aggregator --help` and each command import only
# what they use.
from aggregator.cli.group import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="aggregator")
