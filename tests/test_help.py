"""Help that teaches: every command of the click tree (groups and subcommands, those added
later too) says what it does, explains every option and argument and shows an example; the
README's command table names every command, its options, and every table and view
`aggregator query` can read."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import aggregator.cli
from aggregator.cli import cli
from aggregator.cli.group import COMMANDS
from aggregator.store import Store

README = Path(__file__).resolve().parent.parent / "README.md"


def commands(
    command: click.Command = cli, path: tuple[str, ...] = ("aggregator",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree with its path, the `aggregator` group first."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from commands(command.commands[name], (*path, name))


def options(command: click.Command) -> list[click.Option]:
    """The command's own options (--help and --version come from click, with their help)."""
    return [
        p
        for p in command.params
        if isinstance(p, click.Option) and p.name not in ("help", "version")
    ]


def examples(help_text: str) -> list[list[str]]:
    """The command lines of the help's `\\b` "Example:"/"Examples:" block, as words."""
    found = re.search(r"\x08\n\s*Examples?:\n((?:[ \t]+\S.*(?:\n|$))+)", help_text)
    if found is None:
        return []
    return [line.split() for line in found.group(1).splitlines() if line.strip()]


def shows(example: list[str], path: tuple[str, ...]) -> bool:
    """The example runs this command: its path's words in order (global options between)."""
    words = iter(example)
    return all(any(word == part for word in words) for part in path)


def problems_of(path: tuple[str, ...], command: click.Command) -> list[str]:
    name = " ".join(path)
    help_text = command.help or ""
    description = help_text.split("\x08")[0].strip()
    found = []
    if not description:
        found.append(f"`{name}` has no description (its docstring before the examples)")
    lines = examples(help_text)
    if not lines:
        found.append(f"`{name}` has no example (a `\\b` block headed Example: or Examples:)")
    elif not any(shows(line, path) for line in lines):
        found.append(f"`{name}`'s examples never run `{name}`")
    for option in options(command):
        if not (option.help or "").strip():
            found.append(f"`{name} {option.opts[0]}` has no help text")
    for argument in command.params:
        if isinstance(argument, click.Argument):
            metavar = re.sub(r"\W", "", (argument.metavar or argument.name or "").split()[0])
            metavar = metavar.upper()
            # NAMES may be spoken of one at a time: "the NAMEd ones".
            if not re.search(rf"\b{metavar.removesuffix('S')}", help_text):
                found.append(f"`{name}`'s description never mentions its argument {metavar}")
    return found


def test_every_command_has_a_description_option_help_and_an_example() -> None:
    problems = [p for path, command in commands() for p in problems_of(path, command)]
    assert not problems, "help that does not teach:\n" + "\n".join(problems)


def test_the_walk_sees_the_whole_tree() -> None:
    names = {" ".join(path) for path, _ in commands()}
    assert {
        "aggregator",
        "aggregator items",
        "aggregator stories",
        "aggregator stories merge",
        "aggregator stories show",
    } <= names
    # A command without an example is caught, and named.
    bare = click.Command("bare", help="Does a thing.", params=[click.Option(["--quick"])])
    assert problems_of(("aggregator", "bare"), bare) == [
        "`aggregator bare` has no example (a `\\b` block headed Example: or Examples:)",
        "`aggregator bare --quick` has no help text",
    ]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_group_lists_each_command_as_it_describes_itself(name: str) -> None:
    """`aggregator --help` lists a command whose module is not imported yet by COMMANDS'
    description of it: click shortens it to the same line as the command's own help, at
    any width."""
    module, description = COMMANDS[name]
    command = cli.commands[name]  # imports its module
    assert command.callback is not None
    assert command.callback.__module__ == f"aggregator.cli.{module}"
    stand_in = click.Command(name, help=description)
    for width in range(1, 300):
        assert stand_in.get_short_help_str(width) == command.get_short_help_str(width), width
    assert not command.hidden


def test_every_command_is_in_the_groups_list() -> None:
    """A command whose module COMMANDS does not name would be found only once another
    command had imported its module: every module's commands are there."""
    for found in pkgutil.iter_modules(aggregator.cli.__path__):
        importlib.import_module(f"aggregator.cli.{found.name}")
    assert sorted(cli.commands) == sorted(COMMANDS)


@pytest.mark.parametrize("path", [path for path, _ in commands()], ids=" ".join)
def test_help_prints_the_examples(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s*Examples?:\n\s+aggregator ", result.output, re.MULTILINE), result.output


def command_table() -> dict[str, str]:
    """The README's "## Commands" table: each row's command cell -> the whole row."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `aggregator")]
    return {row.split(" | ", 1)[0]: row for row in rows}


def test_the_readme_table_names_every_command_and_its_options() -> None:
    table = command_table()
    problems = []
    for path, command in commands():
        if len(path) == 1:
            continue
        name = " ".join(path)
        cells = [cell for cell in table if re.match(rf"\| `{re.escape(name)}(`| )", cell)]
        if not cells:
            problems.append(f"README.md's command table has no row for `{name}`")
            continue
        for option in options(command):
            if not any(re.search(rf"{re.escape(option.opts[0])}\b", cell) for cell in cells):
                problems.append(f"README.md's row for `{name}` does not show {option.opts[0]}")
    assert not problems, "\n".join(problems)


def readable_tables(db: Path) -> list[str]:
    """The tables and views of a fresh store that a query can read, without SQLite's own and
    the full-text index's shadow tables."""
    Store.open(str(db)).close()
    with sqlite3.connect(db) as conn:
        listed = conn.execute("PRAGMA table_list").fetchall()
    return sorted(
        str(name)
        for schema, name, kind, *_ in listed
        if schema == "main" and kind in ("table", "view", "virtual")
        if not str(name).startswith("sqlite_")
    )


def test_the_readme_names_every_table_a_query_can_read(tmp_path: Path) -> None:
    tables = readable_tables(tmp_path / "fresh.db")
    assert {"feeds", "items", "items_fts", "stories", "story_merges"} <= set(tables)
    assert "items_fts_data" not in tables
    query_row = next(row for cell, row in command_table().items() if "`aggregator query" in cell)
    missing = [t for t in tables if f"`{t}`" not in query_row]
    assert not missing, f"README.md's `aggregator query` row does not name: {', '.join(missing)}"
    query_help = cli.commands["query"].help or ""
    unnamed = [t for t in tables if not re.search(rf"\b{re.escape(t)}\b", query_help)]
    assert not unnamed, f"`aggregator query --help` does not name: {', '.join(unnamed)}"
