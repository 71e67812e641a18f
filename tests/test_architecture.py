"""The package's layering, checked from its own imports.

Every `import` and `from ... import` in every module counts, wherever it stands (inside a
function, under `if TYPE_CHECKING:`), with relative imports resolved. `from aggregator.store
import writer` is an import of the module `aggregator.store.writer` because `writer` is a
submodule; `from aggregator.store import Store` is an import of `aggregator.store`. Importing a
submodule also runs its parent package's `__init__`, but that implicit step is not an edge.

The rules are the table `RULES` below: which modules a rule covers, what they must never
import, and why. A failure names the rule, the module, the line and the import.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "aggregator"

# One package per stage, in the order data flows through them.
PACKAGES = (
    "config",
    "fetch",
    "parse",
    "extract",
    "stories",
    "store",
    "schedule",
    "engine",
    "daemon",
    "publish",
    "cli",
)
# Flat modules every package may use; they import no package of the project.
GROUND = ("models", "enums", "errors", "times", "urls", "text", "sanitize")
# Flat modules that are neither: the version, and `python -m aggregator`.
ENTRY = ("__init__", "__main__")

NETWORK = ("httpx", "httpcore")
SQL = ("sqlite3", "sqlite_utils")

# Modules outside `aggregator.store` that may import sqlite3 or sqlite_utils, each with the
# reason. Empty on purpose: `aggregator query` runs through `store.read_query`, the daemon's
# one-instance lock is a file lock (fcntl), and the CLI's errors arrive as `StoreError`.
# Add an entry here, with its reason, rather than weakening the rule.
SQL_OUTSIDE_STORE: dict[str, str] = {}


def under(*names: str) -> tuple[str, ...]:
    """`aggregator.<name>` for each name: the package (or module) and everything below it."""
    return tuple(f"aggregator.{name}" for name in names)


@dataclass(frozen=True)
class Rule:
    """Modules matching `sources` (and not `exempt`) never import anything matching `forbidden`.

    A pattern matches a module and everything below it; a pattern ending in `.*` matches only
    what is below it (`aggregator.store.*` is every store submodule, not `aggregator.store`).
    """

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()


# fmt: off
RULES = (
    Rule("store-never-imports-a-stage",
         under("store"),
         under(*(name for name in PACKAGES if name != "store")),
         "the store applies what the stages decided and decides nothing itself"),
    Rule("pure-stages-do-no-io",
         under("parse", "extract", "stories"),
         under("fetch", "store") + NETWORK + SQL,
         "parse, extract and stories run in worker processes on plain values: no network, no SQL"),
    Rule("schedule-is-pure",
         under("schedule"),
         under("fetch", "parse", "extract", "store", "engine", "daemon", "cli") + NETWORK + SQL,
         "scheduling decisions are pure functions of a feed's history, its hints and `now`"),
    Rule("only-fetch-does-network",
         ("aggregator",),
         NETWORK,
         "fetch is the only network I/O; it translates httpx errors into the project's own",
         exempt=under("fetch")),
    Rule("only-store-speaks-sql",
         ("aggregator",),
         SQL,
         "the store is the only package that speaks SQL (see SQL_OUTSIDE_STORE for exceptions)",
         exempt=under("store") + tuple(SQL_OUTSIDE_STORE)),
    Rule("cli-uses-store-public-names",
         under("cli"),
         ("aggregator.store.*",),
         "the CLI reads the store through `aggregator.store`'s public names, never its internals"),
    Rule("ground-imports-no-package",
         under(*GROUND),
         under(*PACKAGES),
         "models, enums, errors, times, urls, text, sanitize: the ground every package stands on"),
)
# fmt: on


@dataclass(frozen=True)
class Import:
    """`module` imports `target` at `line`, written as `statement`."""

    module: str
    target: str
    line: int
    statement: str

    def describe(self) -> str:
        return f"{self.module} line {self.line}: `{self.statement}` imports {self.target}"


# --- reading imports -----------------------------------------------------------------------


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not `__init__`)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def from_base(module: str, *, is_package: bool, level: int, name: str | None) -> str:
    """The module a `from` statement names, with a relative one resolved against `module`."""
    if level == 0:
        assert name is not None
        return name
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(parts):
        raise ValueError(f"{module}: relative import beyond the top-level package")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def imports_in(
    source: str, module: str, *, is_package: bool, known: Collection[str]
) -> Iterator[Import]:
    """Every import in `source`, the module `module`; `known` is the set of project modules.

    One `Import` per module a statement imports (`from m import a, b` is one import of `m`).
    """
    seen: set[Import] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            base = from_base(module, is_package=is_package, level=node.level, name=node.module)
            statement = ast.unparse(node)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found = Import(
                    module, submodule if submodule in known else base, node.lineno, statement
                )
                if found not in seen:
                    seen.add(found)
                    yield found


def package_dirs(package_dir: Path) -> list[Path]:
    """The directories directly under the package that hold Python code."""
    return sorted(p for p in package_dir.iterdir() if p.is_dir() and any(p.rglob("*.py")))


@functools.cache
def project_imports() -> tuple[Import, ...]:
    modules = package_modules(PACKAGE_DIR)
    found: list[Import] = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        is_package = path.name == "__init__.py"
        found.extend(imports_in(source, module, is_package=is_package, known=modules))
    return tuple(found)


# --- checking ------------------------------------------------------------------------------


def matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return module.startswith(pattern[:-1])
    return module == pattern or module.startswith(pattern + ".")


def violations(rule: Rule, imports: Iterable[Import]) -> list[Import]:
    return [
        found
        for found in imports
        if any(matches(found.module, source) for source in rule.sources)
        and not any(matches(found.module, exempt) for exempt in rule.exempt)
        and any(matches(found.target, forbidden) for forbidden in rule.forbidden)
    ]


def import_graph(imports: Iterable[Import], known: Collection[str]) -> dict[str, dict[str, Import]]:
    """module -> {imported project module -> the first import of it}; only explicit imports."""
    graph: dict[str, dict[str, Import]] = {}
    for found in imports:
        if found.target in known:
            graph.setdefault(found.module, {}).setdefault(found.target, found)
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per tangle of modules, as a path that ends where it starts: [a, b, a]."""
    cycles = []
    for component in strongly_connected(graph):
        start = component[0]
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        members = set(component)
        # Breadth-first from `start` inside the component, back to `start`: a shortest cycle.
        came_from: dict[str, str] = {}
        frontier = [start]
        while start not in came_from:
            following = []
            for node in frontier:
                for successor in sorted(graph.get(node, ())):
                    if successor in members and successor not in came_from:
                        came_from[successor] = node
                        following.append(successor)
            frontier = following
        path = [start]
        node = came_from[start]
        while node != start:
            path.append(node)
            node = came_from[node]
        path.append(start)
        cycles.append(path[::-1])
    return cycles


def fail_if_any(rule: str, why: str, lines: list[str]) -> None:
    """Fail with one line per offence under the rule's name and reason (no traceback)."""
    if lines:
        pytest.fail("\n  ".join([f"rule {rule!r} broken ({why}):", *lines]), pytrace=False)


# --- the checker itself, on hand-made imports ----------------------------------------------


def test_imports_are_read_wherever_they_stand_and_resolved():
    source = (
        "import httpx\n"
        "from . import writer, Store\n"
        "from .writer import Store, open_reader\n"
        "from ..models import Entry\n"
        "def later():\n"
        "    import sqlite3.dbapi2\n"
    )
    known = {"aggregator.store", "aggregator.store.writer", "aggregator.models"}
    found = imports_in(source, "aggregator.store.item_rows", is_package=False, known=known)
    assert [(i.target, i.line) for i in found] == [
        ("httpx", 1),
        ("aggregator.store.writer", 2),
        ("aggregator.store", 2),
        ("aggregator.store.writer", 3),
        ("aggregator.models", 4),
        ("sqlite3.dbapi2", 6),
    ]


def test_relative_imports_in_a_package_init_start_at_the_package():
    known = {"aggregator.cli", "aggregator.cli.group"}
    found = imports_in("from . import group", "aggregator.cli", is_package=True, known=known)
    assert [i.target for i in found] == ["aggregator.cli.group"]
    with pytest.raises(ValueError, match="beyond the top-level package"):
        list(imports_in("from ... import x", "aggregator.cli", is_package=True, known=known))


def test_patterns_match_on_dotted_boundaries():
    assert matches("aggregator.store", "aggregator.store")
    assert matches("aggregator.store.writer", "aggregator.store")
    assert not matches("aggregator.stores", "aggregator.store")
    assert not matches("aggregator.store", "aggregator.store.*")
    assert matches("aggregator.store.queries", "aggregator.store.*")
    assert matches("sqlite_utils.migrations", "sqlite_utils")


def test_a_forbidden_import_is_reported_and_an_exempt_module_is_not():
    rule = Rule("no-net", ("aggregator",), NETWORK, "why", exempt=("aggregator.fetch",))
    imports = [
        Import("aggregator.parse.feed", "httpx", 3, "import httpx"),
        Import("aggregator.fetch.client", "httpx", 4, "import httpx"),
        Import("aggregator.parse.feed", "aggregator.models", 5, "from aggregator import models"),
    ]
    assert violations(rule, imports) == imports[:1]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_every_rule_catches_an_import_it_forbids(rule: Rule):
    source = rule.sources[0]
    for forbidden in rule.forbidden:
        target = forbidden.replace(".*", ".example")
        found = Import(source, target, 1, f"import {target}")
        assert violations(rule, [found]) == [found], (rule.name, target)


def test_cycle_finder_on_hand_made_graphs():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []
    assert find_cycles({"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"x"}}) == [
        ["a", "b", "a"],
        ["x", "y", "x"],
    ]


def test_graph_has_no_implicit_parent_edges_but_an_init_importing_its_submodule_counts():
    known = {"aggregator.cli", "aggregator.cli.group", "aggregator.cli.export_command"}
    sibling = Import(
        "aggregator.cli.export_command",
        "aggregator.cli.group",
        1,
        "from aggregator.cli import group",
    )
    graph = import_graph([sibling], known)
    assert {m: set(t) for m, t in graph.items()} == {
        "aggregator.cli.export_command": {"aggregator.cli.group"}
    }
    assert find_cycles(graph) == []
    back = Import("aggregator.cli.group", "aggregator.cli", 2, "from aggregator.cli import cli")
    init = Import("aggregator.cli", "aggregator.cli.group", 3, "from aggregator.cli import group")
    assert find_cycles(import_graph([sibling, back, init], known)) == [
        ["aggregator.cli", "aggregator.cli.group", "aggregator.cli"]
    ]


def test_the_real_tree_is_read():
    found = {(i.module, i.target) for i in project_imports()}
    assert ("aggregator.__main__", "aggregator.cli") in found


# --- the real tree: one test per rule ------------------------------------------------------


def test_no_import_cycles():
    graph = import_graph(project_imports(), package_modules(PACKAGE_DIR))
    lines = []
    for cycle in find_cycles(graph):
        lines.append("cycle: " + " -> ".join(cycle))
        lines.extend(f"    {graph[a][b].describe()}" for a, b in itertools.pairwise(cycle))
    fail_if_any("no-import-cycles", "imports flow one way, down the pipeline", lines)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_rule(rule: Rule):
    broken = [found.describe() for found in violations(rule, project_imports())]
    fail_if_any(rule.name, rule.why, broken)


def test_every_package_says_what_it_never_imports():
    lines = []
    for directory in package_dirs(PACKAGE_DIR):
        init = directory / "__init__.py"
        if not init.is_file():
            lines.append(f"aggregator.{directory.name}: no __init__.py")
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        if not docstring:
            lines.append(f"aggregator.{directory.name}: __init__.py has no docstring")
        elif "never import" not in " ".join(docstring.lower().split()):
            lines.append(
                f"aggregator.{directory.name}: docstring does not say what it never imports"
            )
    fail_if_any(
        "package-docstring-names-what-it-never-imports",
        "each package opens with what it owns and what it must never import",
        lines,
    )


def test_the_rules_know_every_package_and_flat_module():
    directories = {p.name for p in package_dirs(PACKAGE_DIR)}
    flat = {p.stem for p in PACKAGE_DIR.glob("*.py")}
    lines = [
        f"aggregator.{name}: a package the rules do not name"
        for name in sorted(directories - set(PACKAGES))
    ]
    lines += [
        f"aggregator.{name}: a flat module the rules do not name"
        for name in sorted(flat - set(GROUND) - set(ENTRY))
    ]
    fail_if_any(
        "rules-cover-the-layout",
        "add a new package to PACKAGES (and its rules), or a ground module to GROUND",
        lines,
    )
