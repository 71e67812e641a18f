"""The command line: thin commands over the library (`aggregator ...`).

Each command loads what it needs, calls one library function, formats the result and maps
domain errors to a clean message and exit code (0 good, 1 some feeds failed, 2 bad usage or
configuration). It decides nothing a library function should, and it never imports the
store's row modules: only `aggregator.store`'s public names (`Store`, `open_reader`).
"""

from __future__ import annotations

# Each module registers its commands on the group when imported.
from aggregator.cli import (
    commands,
    export_command,
    feed_commands,
    retry_command,
    run_command,
    serve_command,
    story_commands,
    worker_command,
)
from aggregator.cli.group import cli

__all__ = [
    "cli",
    "commands",
    "export_command",
    "feed_commands",
    "main",
    "retry_command",
    "run_command",
    "serve_command",
    "story_commands",
    "worker_command",
]


def main() -> None:
    cli(prog_name="aggregator")
