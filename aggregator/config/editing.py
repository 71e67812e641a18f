"""feeds.yaml edited in place, for `aggregator feeds add/remove/pause/resume/import`.

ruamel.yaml's round-trip parser reads the file with the line and column of every feed and
key, and writes the new entries in the file's own indentation and quoting; the edit itself
is made on the file's lines, so every comment, blank line, key order and quote that the edit
does not touch stays byte for byte (ruamel.yaml hangs a comment on the node before it, so
deleting that node, or adding after it, would carry off or misplace the comment that
introduces the next feed). The comments and blank lines just above a feed belong to it.

Before anything is written the result is checked with the loader `aggregator check` uses,
and compared with what the edit meant (the feeds it did not touch unchanged, the settings
too); then it is written atomically (a temporary file beside it, fsync, rename) with the
file's mode kept: a daemon reading feeds.yaml at that moment sees the old file or the new.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RoundTripError

from aggregator.config.file_lines import (
    blank_or_comment,
    entry_lines,
    lay_out,
    no_document,
    replace_file,
    round_trip_yaml,
    spelled,
    split_lines,
)
from aggregator.config.loader import FEED_NAME, parse_config
from aggregator.errors import InvalidConfig, UnknownName, UsageError
from aggregator.models import Config, FeedConfig, Settings
from aggregator.urls import canonical_url

NAME_LENGTH = 64  # what FEED_NAME allows
_NOT_NAME = re.compile(r"[^a-z0-9]+")


class EditRefused(UsageError):
    """The edit would make feeds.yaml invalid, or cannot be made as asked; nothing was
    written (exit code 2)."""


@dataclass(frozen=True, slots=True)
class NewFeed:
    """A feed to add, with its values as feeds.yaml writes them."""

    name: str
    url: str
    interval: str | None = None  # "10m"; None: the settings' default
    priority: int | None = None
    tags: tuple[str, ...] = ()
    extract: bool | None = None  # False: `extract: false`; None: the settings' default
    paused: bool = False


def feed_name_from(text: str) -> str:
    """A feed name made of a title or a host: "BBC News: World" -> "bbc-news-world";
    empty when nothing in it can be spelled with [a-z0-9]."""
    spelled = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_NAME.sub("-", spelled.lower()).strip("-")
    return slug[:NAME_LENGTH].rstrip("-")


def unique_name(base: str, taken: Collection[str], tried: dict[str, int] | None = None) -> str:
    """`base`, or `base-2`, `base-3`... whichever is free (still within the length limit).
    `tried` remembers, across calls, the last number each base reached: an OPML file of
    thousands of outlines with one title would otherwise count up from 2 each time."""
    if base not in taken:
        return base
    number = (tried or {}).get(base, 1) + 1
    while True:
        suffix = f"-{number}"
        candidate = base[: NAME_LENGTH - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            if tried is not None:
                tried[base] = number
            return candidate
        number += 1


def suggested_name(
    title: str, url: str, taken: Collection[str], tried: dict[str, int] | None = None
) -> str:
    """A free, valid name for the feed at `url`: from its title, else its host."""
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return unique_name(feed_name_from(title) or feed_name_from(host) or "feed", taken, tried)


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a feed, with a name that can; None when it can."""
    if FEED_NAME.match(name):
        return None
    better = feed_name_from(name) or "tass-en"
    return (
        f"{name!r} cannot name a feed: use lower-case letters, digits and '-' (at most "
        f"{NAME_LENGTH}, not starting or ending with '-'), for example {better!r}"
    )


@dataclass(frozen=True, slots=True)
class _Item:
    """Where one feed's entry is in the file's lines (0-based, `end` included)."""

    dash: int  # the line of its `-`
    column: int  # where its keys start
    end: int  # its last line that is not blank or a comment
    mapping: CommentedMap


class FeedsFile:
    """feeds.yaml opened for an edit: `open`, change it, then `save`."""

    def __init__(self, path: Path, text: str, config: Config) -> None:
        self.path = path
        self.config = config  # as the file was read (valid)
        self._lines = split_lines(text)
        self._newline = "\r\n" if "\r\n" in text else "\n"
        # The feeds as the edits so far leave them, by name and by canonical URL.
        self._feeds = {feed.name: feed for feed in config.feeds}
        self._by_url = {canonical_url(feed.url): feed for feed in config.feeds}
        self._read()

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> FeedsFile:
        """Read feeds.yaml; it must be valid as it stands (the edit would hide its
        problems otherwise). With `create`, a missing or empty file is a file with no feeds."""
        path = Path(path)
        try:
            with path.open(encoding="utf-8", newline="") as file:  # CRLF stays CRLF
                text = file.read()
        except FileNotFoundError:
            if not create:
                raise EditRefused(
                    f"{path} not found; start one with `aggregator feeds add NAME URL`, or "
                    "point at another with `aggregator --config PATH ...`"
                ) from None
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise EditRefused(f"{path} cannot be read: {exc}") from None
        if create and no_document(text):
            return cls(path, text, Config(settings=Settings(), feeds=(), path=str(path)))
        try:
            return cls(path, text, parse_config(text, path=str(path)))
        except InvalidConfig as exc:
            # Settings and no `feeds:` yet: a file waiting for its first feed.
            waiting = _without_feeds(text, path) if create else None
            if waiting is None:
                raise EditRefused(
                    f"{path} has problems; fix them first (nothing was changed):\n{exc}"
                ) from None
            return cls(path, text, waiting)

    # -- reading --------------------------------------------------------------------------

    def feed(self, name: str) -> FeedConfig:
        """The feed called `name`; UnknownName (with the close ones) when there is none."""
        found = self._feeds.get(name)
        if found is None:
            raise UnknownName("feed", name, list(self._feeds))
        return found

    def feed_with_url(self, url: str) -> FeedConfig | None:
        """The feed that already polls `url` (compared canonically), if any."""
        return self._by_url.get(canonical_url(url))

    def where(self, feed: FeedConfig) -> str:
        return f"{self.path}:{feed.line}" if feed.line else str(self.path)

    def text(self) -> str:
        return "".join(self._lines)

    # -- editing ------------------------------------------------------------------------

    def check_new(self, feed: NewFeed) -> None:
        """EditRefused saying what to do when `feed` cannot be added as it is."""
        if (why := name_problem(feed.name)) is not None:
            raise EditRefused(why)
        if canonical_url(feed.url) is None:
            raise EditRefused(
                f"{feed.url!r} is not an http(s) address; write the full URL, starting with "
                "https:// (`aggregator feeds discover SITE` finds a site's feeds)"
            )
        if (same := self._feeds.get(feed.name)) is not None:
            raise EditRefused(
                f"there is already a feed named {feed.name!r} ({self.where(same)}, {same.url}); "
                f"choose another name, or `aggregator feeds remove {feed.name}` first"
            )
        if (same := self.feed_with_url(feed.url)) is not None:
            raise EditRefused(
                f"feed {same.name!r} ({self.where(same)}) already polls {same.url}; "
                "a feed is polled once (give it more tags instead of a second name)"
            )

    def add(self, *feeds: NewFeed) -> None:
        """Append `feeds` to the list, laid out like the feeds before them (after the last
        one's lines, before any comments that close the list)."""
        for feed in feeds:
            self.check_new(feed)
            self._feeds[feed.name] = _expected(feed)
            self._by_url[canonical_url(feed.url)] = self._feeds[feed.name]
        items = self._items()
        if not items and isinstance(self._list, CommentedSeq) and len(self._list) > 0:
            raise EditRefused(f"{self.path} writes its feeds as one [...] list; edit it by hand")
        apart = len(items) >= 2 and self._blank_before(items)
        entries = [entry_lines(self._yaml, _mapping_of(feed), self._newline) for feed in feeds]
        new: list[str] = []
        for index, entry in enumerate(entries):
            new += ([self._newline] if apart and (items or index) else []) + entry
        if items:
            self._insert(items[-1].end + 1, new)
        elif "feeds" in self._document:
            self._insert(self._empty_list_opened(), new)
        else:
            self._insert(len(self._lines), [f"feeds:{self._newline}", *new])
        self._read()

    def remove(self, name: str) -> FeedConfig:
        """Delete the feed's lines, with the comments and blank lines just above it."""
        feed = self.feed(name)
        items = self._items()
        index = self._index(name)
        item = items[index]
        start = items[index - 1].end + 1 if index else self._list_line + 1
        end = item.end
        if index == 0 and len(items) > 1:  # the next one becomes the first: no gap above it
            while end + 1 < items[1].dash and not self._lines[end + 1].strip():
                end += 1
        del self._lines[start : end + 1]
        if len(items) == 1:
            self._close_empty_list()
        del self._feeds[name]
        self._by_url.pop(canonical_url(feed.url), None)
        self._read()
        return feed

    def set_paused(self, name: str, paused: bool) -> bool:
        """`paused: true` as the feed's last key, or no `paused` key at all; False when the
        feed already was so."""
        feed = self.feed(name)
        if feed.paused == paused:
            return False
        item = self._items()[self._index(name)]
        if item.mapping.fa.flow_style():
            raise EditRefused(f"feed {name!r} is written in {{...}} style; edit it by hand")
        if "paused" in item.mapping:  # `paused: false` goes, `paused: true` is appended
            self._delete_key(item, "paused")
            item = self._items()[self._index(name)]
        if paused:
            self._insert(item.end + 1, [f"{' ' * item.column}paused: true{self._newline}"])
        self._feeds[name] = replace(feed, paused=paused)
        self._read()
        return True

    # -- writing ------------------------------------------------------------------------

    def save(self) -> Config:
        """Check the edited file as `aggregator check` would, then replace the file.
        Returns the new configuration; EditRefused, and nothing written, if it is invalid."""
        text = self.text()
        try:
            config = parse_config(text, path=str(self.path))
        except InvalidConfig as exc:
            raise EditRefused(
                f"refused: with this change {self.path} would not be valid, so nothing was "
                f"written:\n{exc}"
            ) from None
        self._check_meant(config)
        replace_file(self.path, text)
        return config

    def _check_meant(self, config: Config) -> None:
        """The file says what the edit meant and nothing else: a guard against an unusual
        layout read wrongly (flow-style entries, block scalars)."""
        found = {feed.name: replace(feed, line=0) for feed in config.feeds}
        meant = {name: replace(feed, line=0) for name, feed in self._feeds.items()}
        if found != meant or config.settings != self.config.settings:
            raise EditRefused(
                f"{self.path} is laid out in a way this edit cannot follow (nothing was "
                "written); make the change by hand, then check it with `aggregator check`"
            )

    # -- the file's lines -----------------------------------------------------------------

    def _read(self) -> None:
        """Parse the current lines again: where each feed and key now is."""
        text = self.text()
        self._yaml = round_trip_yaml()
        try:
            loaded = self._yaml.load(text)
        except RoundTripError as exc:  # valid for the loader, but not for ruamel.yaml
            raise EditRefused(f"{self.path} cannot be edited in place: {exc}") from None
        if loaded is not None and not isinstance(loaded, CommentedMap):
            raise EditRefused(f"{self.path} is not a mapping with a 'feeds:' list")
        self._document: CommentedMap = loaded if loaded is not None else CommentedMap()
        self._list: Any = self._document.get("feeds")
        self._list_line = self._document.lc.key("feeds")[0] if "feeds" in self._document else -1
        lay_out(self._yaml, self._document, self._lines)

    def _items(self) -> list[_Item]:
        feeds = self._list
        if not isinstance(feeds, CommentedSeq) or feeds.fa.flow_style():
            return []
        items: list[_Item] = []
        for index, mapping in enumerate(feeds):
            first, column = feeds.lc.item(index)
            dash = first
            while "-" not in self._lines[dash][:column]:  # `-` alone on the line above
                dash -= 1
            end = first
            for number in range(first + 1, len(self._lines)):
                line = self._lines[number]
                if blank_or_comment(line):
                    continue
                if len(line) - len(line.lstrip(" ")) < column:
                    break
                end = number
            items.append(_Item(dash, column, end, mapping))
        return items

    def _index(self, name: str) -> int:
        return next(i for i, item in enumerate(self._list) if str(item.get("name")) == name)

    def _blank_before(self, items: list[_Item]) -> bool:
        """Whether the entries are set apart by blank lines (judged by the last two)."""
        between = self._lines[items[-2].end + 1 : items[-1].dash]
        return any(not line.strip() for line in between)

    def _insert(self, at: int, lines: list[str]) -> None:
        if at > 0 and not self._lines[at - 1].endswith("\n"):
            self._lines[at - 1] += self._newline  # the file's last line had no line break
        self._lines[at:at] = lines

    def _delete_key(self, item: _Item, key: str) -> None:
        """A key's lines, up to the next key's (comments just above that one stay)."""
        line = item.mapping.lc.key(key)[0]
        if line == item.dash:
            raise EditRefused(f"{key!r} is on the line of its feed's '-'; edit it by hand")
        later = [
            item.mapping.lc.key(k)[0] for k in item.mapping if item.mapping.lc.key(k)[0] > line
        ]
        stop = min(later) if later else item.end + 1
        end = max(n for n in range(line, stop) if not blank_or_comment(self._lines[n]))
        del self._lines[line : end + 1]

    def _empty_list_opened(self) -> int:
        """`feeds: []` becomes `feeds:` (its comment kept); the line after it."""
        line, column = self._document.lc.value("feeds")
        text = self._lines[line]
        close = text.index("]", column)
        self._lines[line] = text[:column].rstrip(" ") + text[close + 1 :]
        return int(line) + 1

    def _close_empty_list(self) -> None:
        """`feeds:` with its last entry gone becomes `feeds: []` (an empty list, not null)."""
        text = self._lines[self._list_line]
        colon = text.index(":", self._document.lc.key("feeds")[1]) + 1
        self._lines[self._list_line] = f"{text[:colon]} []{text[colon:]}"


@contextlib.contextmanager
def editing(path: str | Path, *, create: bool = False) -> Iterator[FeedsFile]:
    """`FeedsFile.open` while holding a lock on its folder, so that two edits at once
    (a script adding feeds in parallel) are made one after the other, and neither lost."""
    folder = Path(path).resolve().parent
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = None  # a folder that is not there: `open` says what is missing
    try:
        if fd is not None:
            with contextlib.suppress(OSError):  # a file system without flock: edit anyway
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield FeedsFile.open(path, create=create)
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


# -- layout ---------------------------------------------------------------------------------


def _without_feeds(text: str, path: Path) -> Config | None:
    """The configuration of a file that is valid but for its missing `feeds:` key."""
    ending = "" if not text or text.endswith("\n") else "\n"
    try:
        return parse_config(f"{text}{ending}feeds: []\n", path=str(path))
    except InvalidConfig:
        return None


def _mapping_of(feed: NewFeed) -> CommentedMap:
    item = CommentedMap()
    item["name"] = spelled(feed.name)
    item["url"] = spelled(feed.url)
    if feed.interval is not None:
        item["interval"] = spelled(feed.interval)
    if feed.priority is not None:
        item["priority"] = feed.priority
    if feed.tags:
        tags = CommentedSeq([spelled(tag) for tag in feed.tags])
        tags.fa.set_flow_style()
        item["tags"] = tags
    if feed.extract is not None:
        item["extract"] = feed.extract
    if feed.paused:
        item["paused"] = True
    return item


def _expected(feed: NewFeed) -> FeedConfig:
    """The feed as the loader will read it back (checked before the file is written)."""
    from aggregator.config.settings_keys import bounded

    interval = None
    if feed.interval is not None:
        try:
            interval = bounded("interval", "duration", feed.interval)
        except ValueError:
            interval = None  # the loader says what is wrong with it, and where
    return FeedConfig(
        name=feed.name,
        url=feed.url.strip(),
        interval_s=interval,
        priority=feed.priority or 0,
        tags=feed.tags,
        extract=feed.extract,
        paused=feed.paused,
    )
