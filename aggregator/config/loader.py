"""feeds.yaml -> a validated Config.

Every problem is reported with the file, the line, the feed and what to change; all problems
are listed at once so a user fixes them in one go. Unknown keys are errors: they are usually
typos, and a silently ignored `intreval:` is worse than a refusal.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from aggregator.config.settings_keys import (
    SETTING_KEYS,
    BareNumber,
    bounded,
    network,
    shown_duration,
)
from aggregator.errors import ConfigError, InvalidConfig
from aggregator.models import Config, FeedConfig, Settings
from aggregator.urls import canonical_url

FEED_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
PRIORITY_RANGE = (-1_000_000, 1_000_000)
FEED_KEYS = ("name", "url", "interval", "priority", "tags", "extract", "paused")
TOP_KEYS = ("settings", "feeds")


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[ConfigError] = []

    def add(
        self, message: str, node: yaml.Node | None, feed: str | None = None, *, at: bool = False
    ) -> None:
        """`at`: point at the value's column too (a number missing its unit)."""
        line = node.start_mark.line + 1 if node is not None else None
        column = node.start_mark.column + 1 if node is not None and at else None
        self.items.append(ConfigError(message, path=self.path, line=line, feed=feed, column=column))


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known keys: {', '.join(known)}"


def _pairs(
    node: yaml.MappingNode,
    known: tuple[str, ...] | list[str],
    problems: _Problems,
    where: str,
    feed: str | None = None,
) -> dict[str, yaml.Node]:
    """The mapping's keys and value nodes; unknown and repeated keys are problems."""
    out: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key not in known:
            problems.add(f"unknown key {key!r} in {where}; {_suggest(key, known)}", key_node, feed)
        elif key in out:
            problems.add(f"{key!r} is given twice in {where}; keep one", key_node, feed)
        else:
            out[key] = value_node
    return out


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_object(node, deep=True)


def _settings(loader: yaml.SafeLoader, node: yaml.Node, problems: _Problems) -> Settings:
    if not isinstance(node, yaml.MappingNode):
        problems.add("'settings' must be a mapping of key: value", node)
        return Settings()
    values: dict[str, Any] = {}
    for key, value_node in _pairs(node, list(SETTING_KEYS), problems, "settings").items():
        field_name, kind = SETTING_KEYS[key]
        if kind == "networks" and _bad_networks(loader, key, value_node, problems):
            continue
        try:
            converted = bounded(key, kind, _scalar(loader, value_node))
        except ValueError as exc:
            problems.add(f"settings.{key}: {exc}", value_node, at=isinstance(exc, BareNumber))
            continue
        # Timeouts are float seconds in Settings; the interval stays whole seconds.
        seconds = field_name.endswith(("timeout_s", "deadline_s"))
        values[field_name] = float(converted) if seconds else converted
    settings = replace(Settings(), **values)
    if settings.min_interval_s > settings.max_interval_s:
        problems.add(
            "settings.min_interval is longer than settings.max_interval; "
            "make min_interval the shorter one",
            node,
        )
    return settings


def _bad_networks(loader: yaml.SafeLoader, key: str, node: yaml.Node, problems: _Problems) -> bool:
    """Each network of a list that is not one, as a problem on its own line."""
    if not isinstance(node, yaml.SequenceNode):
        return False  # `networks` says what it must be
    before = len(problems.items)
    for item in node.value:
        try:
            network(_scalar(loader, item))
        except ValueError as exc:
            problems.add(f"settings.{key}: {exc}", item)
    return len(problems.items) > before


def _url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return "'url' is missing; give the feed's address, e.g. https://tass.com/rss/v2.xml"
    if canonical_url(url) is None:
        return f"{url!r} is not an http(s) address; write the full URL starting with https://"
    return None


def _name_of(loader: yaml.SafeLoader, node: yaml.Node) -> str | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    name_node = next((v for k, v in node.value if k.value == "name"), None)
    name = _scalar(loader, name_node) if name_node is not None else None
    return name if isinstance(name, str) else None


def _feed(
    loader: yaml.SafeLoader, node: yaml.Node, index: int, problems: _Problems
) -> FeedConfig | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(f"feed #{index + 1} must be a mapping with at least name and url", node)
        return None
    name_node = next((v for k, v in node.value if k.value == "name"), None)
    raw_name = _name_of(loader, node)
    label = raw_name if isinstance(raw_name, str) else f"#{index + 1}"
    pairs = _pairs(node, FEED_KEYS, problems, f"feed {label!r}", feed=label)
    ok = True
    if not isinstance(raw_name, str) or not FEED_NAME.match(raw_name):
        problems.add(
            f"feed name {raw_name!r} must be lower-case letters, digits and '-' (e.g. tass-en)",
            name_node or node,
            label,
        )
        ok = False
    url = _scalar(loader, pairs["url"]) if "url" in pairs else None
    if (why := _url_problem(url)) is not None:
        problems.add(why, pairs.get("url", node), label)
        ok = False
    values = _feed_options(loader, pairs, problems, label)
    if values is None:
        ok = False
    if not ok or values is None or raw_name is None or url is None:
        return None
    return FeedConfig(name=raw_name, url=url.strip(), line=node.start_mark.line + 1, **values)


def _feed_options(
    loader: yaml.SafeLoader, pairs: dict[str, yaml.Node], problems: _Problems, label: str
) -> dict[str, Any] | None:
    """A feed's optional keys, converted; None when any of them is wrong."""
    before = len(problems.items)
    values: dict[str, Any] = {}
    for key, kind, field_name in (
        ("interval", "duration", "interval_s"),
        ("extract", "bool", "extract"),
        ("paused", "bool", "paused"),
    ):
        if key in pairs:
            try:
                values[field_name] = bounded(key, kind, _scalar(loader, pairs[key]))
            except ValueError as exc:
                problems.add(f"{key}: {exc}", pairs[key], label, at=isinstance(exc, BareNumber))
    if "priority" in pairs:
        priority = _scalar(loader, pairs["priority"])
        low, high = PRIORITY_RANGE
        if isinstance(priority, bool) or not isinstance(priority, int):
            problems.add(f"priority: {priority!r} is not a whole number", pairs["priority"], label)
        elif not low <= priority <= high:
            problems.add(
                f"priority: {priority!r} is out of range; give a number from {low} to {high}",
                pairs["priority"],
                label,
            )
        else:
            values["priority"] = priority
    if "tags" in pairs:
        tags = _scalar(loader, pairs["tags"])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.add("tags must be a list of words, e.g. [wire, world]", pairs["tags"], label)
        else:
            values["tags"] = tuple(tags)
    return values if len(problems.items) == before else None


def parse_config(text: str, *, path: str = "feeds.yaml") -> Config:
    """Validate feeds.yaml text. Raises InvalidConfig listing every problem found."""
    problems = _Problems(path)
    loader = yaml.SafeLoader(text)
    try:
        return _build(loader, _tree(loader, path), problems)
    finally:
        loader.dispose()


def _tree(loader: yaml.SafeLoader, path: str) -> yaml.Node | None:
    """The document's nodes, every value in them known to build; InvalidConfig if not."""
    try:
        root = loader.get_single_node()
        unreadable = _unreadable(loader, root, path) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        why = f"not valid YAML: {getattr(exc, 'problem', exc)}"
        raise InvalidConfig([ConfigError(why, path=path, line=line)]) from None
    except RecursionError:  # the loader recurses once per level: [[[[...]]]]
        why = "nested too deeply to read; feeds.yaml needs only a few levels"
        raise InvalidConfig([ConfigError(why, path=path)]) from None
    if unreadable is not None:
        raise InvalidConfig([unreadable])
    return root


def _unreadable(loader: yaml.SafeLoader, root: yaml.Node, path: str) -> ConfigError | None:
    """A value the safe loader refuses to build, as a problem: a tag such as
    `!!python/object/apply:os.system`, an impossible date (2026-02-30). Checked for the
    whole file first, so that building each value later cannot fail."""
    try:
        loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        why = getattr(exc, "problem", None) or exc
        return ConfigError(
            f"cannot read this value: {why}; feeds.yaml takes plain values only, no !!tags",
            path=path,
            line=mark.line + 1 if mark is not None else None,
        )
    except ValueError as exc:  # the loader builds dates with datetime, which refuses 02-30
        node = _first_unbuildable(loader, root)
        return ConfigError(
            f"cannot read this value: {exc}",
            path=path,
            line=node.start_mark.line + 1 if node is not None else None,
        )
    return None


def _first_unbuildable(loader: yaml.SafeLoader, root: yaml.Node) -> yaml.Node | None:
    """The first scalar (in file order) whose value cannot be built."""
    pending: list[yaml.Node] = [root]
    seen: set[int] = set()  # aliases make the tree a graph
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node)
            except (yaml.YAMLError, ValueError):
                return node
        elif isinstance(node, yaml.MappingNode):
            pending.extend(reversed([n for pair in node.value for n in pair]))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(reversed(node.value))
    return None


def _build(loader: yaml.SafeLoader, root: yaml.Node | None, problems: _Problems) -> Config:
    if not isinstance(root, yaml.MappingNode):
        problems.add(
            "the file must be a mapping with a 'feeds:' list (and optional 'settings:')", root
        )
        raise InvalidConfig(problems.items)
    top = _pairs(root, TOP_KEYS, problems, "the top level")
    settings = _settings(loader, top["settings"], problems) if "settings" in top else Settings()
    feeds: list[FeedConfig] = []
    feeds_node = top.get("feeds")
    if not isinstance(feeds_node, yaml.SequenceNode):
        problems.add(
            "'feeds:' must be a list of feeds, each with a name and a url", feeds_node or root
        )
    else:
        seen: dict[str, int] = {}
        for index, node in enumerate(feeds_node.value):
            name = _name_of(loader, node)
            if name is not None and name in seen:
                problems.add(
                    f"feed name {name!r} is already used at line {seen[name]}; "
                    "names must be unique",
                    node,
                    name,
                )
                continue
            if name is not None:
                seen[name] = node.start_mark.line + 1
            if (feed := _feed(loader, node, index, problems)) is not None:
                feeds.append(feed)
        _under_min_interval(feeds_node, feeds, settings, problems)
    if problems.items:
        raise InvalidConfig(problems.items)
    return Config(settings=settings, feeds=tuple(feeds), path=problems.path)


def _under_min_interval(
    feeds_node: yaml.SequenceNode,
    feeds: list[FeedConfig],
    settings: Settings,
    problems: _Problems,
) -> None:
    """A feed's own interval replaces the adaptive schedule, but never goes below
    min_interval: polling a wire agency every few seconds gets us blocked."""
    floor = settings.min_interval_s
    for feed in feeds:
        if feed.interval_s is None or feed.interval_s >= floor:
            continue
        node = next(n for n in feeds_node.value if _names(n, feed.name))
        value = next(v for k, v in node.value if k.value == "interval")
        least = shown_duration(floor)
        problems.add(
            f"interval: {value.value} is shorter than settings.min_interval ({least}), the"
            f" least time between two polls of a feed; write `interval: {least}` or more, or"
            f" lower settings.min_interval if this feed really must be polled every"
            f" {value.value}",
            value,
            feed.name,
            at=True,
        )


def _names(node: yaml.Node, name: str) -> bool:
    """Whether `node` is the mapping of the feed called `name` (names are unique by now)."""
    return isinstance(node, yaml.MappingNode) and any(
        k.value == "name" and v.value == name for k, v in node.value
    )


def load_config(path: str | Path) -> Config:
    """Read and validate feeds.yaml from disk."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidConfig([ConfigError(missing_config(path), path=str(path))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig([ConfigError(f"cannot be read: {exc}", path=str(path))]) from None
    return parse_config(text, path=str(path))


def missing_config(path: str | Path) -> str:
    """What to say when feeds.yaml is not where the command looked for it."""
    path = Path(path)
    where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
    return (
        f"file not found{where}; create it, or point at another with"
        " `aggregator --config PATH ...` or AGGREGATOR_CONFIG=PATH"
    )


def database_setting(path: str | Path) -> str | None:
    """`settings.database` alone, read leniently from a feeds.yaml that may be invalid in
    other ways, so that commands that only read the store still find it. None when the file
    does not name one (or cannot be read as YAML at all)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
    node: yaml.Node | None = root
    for key in ("settings", "database"):
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if k.value == key), None)
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        return None
    return str(node.value).strip() or None
