"""Start-up: what a new `aggregator` process imports, from its own sys.modules (no timing:
benchmarks/store_scale.py times it).

`aggregator --help` imports the command group alone: each command's module is imported when
the command is first asked for (`cli/group.py`, COMMANDS), and --help still lists every
command as the command describes itself. The everyday reads (items, stories, search, export,
feeds) open the store with the standard library's sqlite3, never sqlite-utils, and nothing of
fetching, extraction, MinHash or the broker; items, stories and search build none of models'
dataclasses. The writer, `aggregator.store.Store`, brings sqlite-utils, still without numpy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from serve_helpers import build_newsroom_store

from aggregator.cli import cli
from aggregator.cli.group import COMMANDS

# What no read of the store needs: the writer's library and what it would bring, the network,
# parsing, extraction, MinHash, the daemon, the broker, the web view.
HEAVY = (
    "sqlite_utils", "numpy", "pandas", "scipy", "datasketch", "httpx", "httpcore",
    "feedparser", "trafilatura", "lxml", "apscheduler", "prometheus_client", "dramatiq",
    "redis", "datasette",
)  # fmt: skip
# ... nor the help, which needs no store, no feeds.yaml and no table.
HEAVY_FOR_HELP = (*HEAVY, "sqlite3", "yaml", "ruamel", "rich")
# The everyday reads and their arguments (a store made by serve_helpers).
READS = {
    "items": ["items", "--limit", "5"],
    "stories": ["stories", "--limit", "5"],
    "search": ["search", "Libya"],
    "export": ["export", "--limit", "5", "--link", "https://desk.example/feeds/all.atom"],
    "feeds": ["feeds"],
}
LISTINGS = ("items", "stories", "search")
# click's help is as wide as the terminal less 2, at most 78: COLUMNS for a new process,
# terminal_width for CliRunner (which would otherwise make it 80).
COLUMNS, HELP_WIDTH = "100", 78


def run(args: list[str], cwd: Path) -> tuple[str, set[str]]:
    """`aggregator ARGS` in a new process: what it wrote to stdout, and every module it had
    imported when it was done."""
    out = cwd / "modules.txt"
    code = (
        "import sys\n"
        "from aggregator.cli import main\n"
        "out, sys.argv = sys.argv[1], ['aggregator', *sys.argv[2:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "with open(out, 'w') as file:\n"
        "    file.write('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": COLUMNS},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(out.read_text().split())


def ours(modules: set[str], name: str) -> list[str]:
    """`name` and what is below it, among `modules`."""
    return sorted(m for m in modules if m == name or m.startswith(name + "."))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_newsroom_store(tmp_path_factory.mktemp("startup") / "newsroom.db")


def test_help_imports_the_command_group_alone(tmp_path: Path) -> None:
    _, modules = run(["--help"], tmp_path)
    commands = sorted({f"aggregator.cli.{module}" for module, _ in COMMANDS.values()})
    assert [m for m in commands if m in modules] == []
    for package in ("aggregator.models", "aggregator.store", "aggregator.config"):
        assert ours(modules, package) == [], package
    assert [m for m in HEAVY_FOR_HELP if ours(modules, m)] == []


def test_help_lists_every_command_as_with_every_command_loaded(tmp_path: Path) -> None:
    """A new process lists the commands from COMMANDS; here every command's module is
    imported first, so click lists the commands themselves: the same text."""
    listed, _ = run(["--help"], tmp_path)
    for name in COMMANDS:
        assert cli.commands[name].name == name  # imports its module
    loaded = CliRunner().invoke(cli, ["--help"], prog_name="aggregator", terminal_width=HELP_WIDTH)
    assert loaded.exit_code == 0, loaded.output
    assert listed == loaded.output
    assert all(f"\n  {name} " in listed for name in COMMANDS)


@pytest.mark.parametrize("name", list(READS))
def test_reads_use_the_standard_librarys_sqlite_alone(
    name: str, store: Path, tmp_path: Path
) -> None:
    shown, modules = run(["--db", str(store), *READS[name]], tmp_path)
    assert shown.strip(), "the command showed nothing"
    assert "sqlite3" in modules
    assert [m for m in HEAVY if ours(modules, m)] == []
    assert ours(modules, "aggregator.store.writer") == []
    if name in LISTINGS:  # their rows are dicts: no dataclass is needed
        assert ours(modules, "aggregator.models") == []


def test_the_writer_brings_sqlite_utils_without_numpy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from aggregator.store import Store\n"
        "print(Store.__name__, 'sqlite_utils' in sys.modules, 'numpy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["Store", "True", "False"]
