"""OPML in and out: the feed lists other readers export and import.

`read_opml` takes the outlines that carry an `xmlUrl` (OPML 1.0 and 2.0); the titles of the
outlines they are nested in, and their `category` attribute, become tags. An OPML file comes
from anywhere, so it is read with the standard library's expat with every entity
declaration refused at once: an entity bomb (billion laughs) or an external entity that would
read a local file or a URL stops the import before anything is expanded or fetched. Files
over MAX_OPML_BYTES, and outlines nested over MAX_DEPTH deep, are refused.

`render_opml` writes OPML 2.0 with every attribute value escaped (and characters XML cannot
carry dropped). Beside the standard attributes it writes what OPML has no word for
(`interval`, `priority`, `extract`, `paused`), so that an export imported again gives the
same feeds; other readers ignore attributes they do not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from aggregator.config.editing import NewFeed, feed_name_from, suggested_name
from aggregator.config.loader import PRIORITY_RANGE
from aggregator.config.settings_keys import bounded
from aggregator.errors import UsageError
from aggregator.models import FeedConfig, Settings
from aggregator.sanitize import plain_text, safe_url
from aggregator.urls import canonical_url

MAX_OPML_BYTES = 10 * 1024 * 1024  # a list of 100,000 feeds is under this
MAX_DEPTH = 32  # elements within elements: folders within folders, far more than any list has
_TRUE_FALSE = {"true": True, "false": False}


class OpmlError(UsageError):
    """The file is not an OPML file that can be imported; says why (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Outline:
    """One feed an OPML file lists, its attributes as written."""

    title: str  # `text`, else `title`
    xml_url: str
    tags: tuple[str, ...] = ()
    line: int = 0
    # This project's own attributes (see render_opml); None when absent.
    interval: str | None = None
    priority: str | None = None
    extract: str | None = None
    paused: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    url: str
    why: str


@dataclass(slots=True)
class ImportPlan:
    """What an import adds, what it leaves out and why, and values it could not use."""

    added: list[NewFeed] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Raised inside an expat handler: stops the parse where it stands."""


def read_opml(data: bytes, *, source: str = "the OPML file") -> list[Outline]:
    """Every feed outline of an OPML document, in document order; OpmlError if it is not
    one, or declares entities."""
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(
            f"{source} is larger than {MAX_OPML_BYTES // 2**20} MB, more than any list of "
            "feeds needs; is it an OPML file?"
        )
    reader = _OutlineReader()
    parser = expat.ParserCreate()
    # Parameter entities and the external DTD subset are never read, and any entity
    # declared is refused as soon as it is declared: nothing is ever expanded.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.StartElementHandler = lambda name, attributes: reader.start(
        name, attributes, parser.CurrentLineNumber
    )
    parser.EndElementHandler = reader.end
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise OpmlError(f"{source} refused: {exc}") from None
    except expat.ExpatError as exc:
        why = expat.errors.messages.get(exc.code, str(exc)) if exc.code else str(exc)
        raise OpmlError(f"{source} is not well-formed XML (line {exc.lineno}): {why}") from None
    if reader.root != "opml":
        found = f"<{reader.root}>" if reader.root else "nothing"
        hint = (
            "; it looks like a feed itself: add it with `aggregator feeds add NAME URL`"
            if reader.root in ("rss", "feed", "rdf:RDF")
            else ""
        )
        raise OpmlError(f"{source} is not OPML: its root element is {found}, not <opml>{hint}")
    return reader.outlines


def _refuse_entity(*_details: object) -> NoReturn:
    raise _Refused(
        "it declares an XML entity, which OPML never needs and entity bombs and "
        "local-file leaks are made of; remove the DOCTYPE's declarations to import it"
    )


class _OutlineReader:
    """Builds Outlines from expat's events, keeping the categories the current outline is
    nested in. Constant work per element, however deep the nesting."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.outlines: list[Outline] = []
        self._depth = 0
        self._body_depth: int | None = None  # while inside <body>: its depth
        self._categories: list[str | None] = []  # per open outline: its tag, if a folder

    def start(self, name: str, attributes: dict[str, str], line: int) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"its outlines are nested over {MAX_DEPTH} levels deep (line {line})")
        if self.root is None:
            self.root = name
        if name == "body" and self._body_depth is None and self._depth == 2:
            self._body_depth = self._depth
        if name != "outline" or self._body_depth is None:
            return
        values = {key.lower(): value for key, value in attributes.items()}
        title = (values.get("text") or values.get("title") or "").strip()
        xml_url = (values.get("xmlurl") or "").strip()
        if not xml_url:  # a folder of feeds: its title tags what it holds
            self._categories.append(feed_name_from(title) or None)
            return
        self._categories.append(None)
        tags = [c for c in self._categories if c] + _categories(values.get("category", ""))
        self.outlines.append(
            Outline(
                title=title,
                xml_url=xml_url,
                tags=tuple(dict.fromkeys(tags)),
                line=line,
                interval=values.get("interval"),
                priority=values.get("priority"),
                extract=values.get("extract"),
                paused=values.get("paused"),
            )
        )

    def end(self, name: str) -> None:
        if name == "outline" and self._body_depth is not None:
            self._categories.pop()
        if self._depth == self._body_depth:
            self._body_depth = None
        self._depth -= 1


def _categories(attribute: str) -> list[str]:
    """OPML 2.0's `category`: comma-separated, each a slash-delimited path; every step a tag."""
    steps = (step for path in attribute.split(",") for step in path.split("/"))
    return [tag for tag in (feed_name_from(step) for step in steps) if tag]


# -- import ----------------------------------------------------------------------------------


def plan_import(
    outlines: Iterable[Outline], existing: Sequence[FeedConfig], settings: Settings
) -> ImportPlan:
    """The feeds to add for `outlines`: names made from their titles (valid and unique), URLs
    already polled (or listed twice) skipped with the reason. An outline's own value that
    `settings` would refuse (an interval under min_interval) is left out with a note."""
    plan = ImportPlan()
    names = {feed.name for feed in existing}
    tried: dict[str, int] = {}
    polled = {
        canonical_url(feed.url): f"already in feeds.yaml as {feed.name!r}" for feed in existing
    }
    for outline in outlines:
        canonical = canonical_url(outline.xml_url)
        if canonical is None:
            plan.skipped.append(Skipped(outline.xml_url, "not an http(s) address"))
            continue
        if canonical in polled:
            plan.skipped.append(Skipped(outline.xml_url, polled[canonical]))
            continue
        name = suggested_name(outline.title, canonical, names, tried)
        names.add(name)
        polled[canonical] = f"listed before (line {outline.line}), imported as {name!r}"
        plan.added.append(_new_feed(name, outline, settings, plan.notes))
    return plan


def _new_feed(name: str, outline: Outline, settings: Settings, notes: list[str]) -> NewFeed:
    """The feed, with the outline's own attributes where they are valid; one that is not is
    left out with a note, and the feed imported without it."""
    interval: str | None = None
    if outline.interval is not None:
        try:
            if bounded("interval", "duration", outline.interval.strip()) < settings.min_interval_s:
                raise ValueError("shorter than settings.min_interval")
            interval = outline.interval.strip()
        except ValueError as exc:
            notes.append(f"{name}: interval {outline.interval!r} left out ({exc})")
    priority: int | None = None
    if outline.priority is not None:
        low, high = PRIORITY_RANGE
        try:
            priority = int(outline.priority)
            if not low <= priority <= high:
                raise ValueError(f"not from {low} to {high}")
        except ValueError as exc:
            priority = None
            notes.append(f"{name}: priority {outline.priority!r} left out ({exc})")
    return NewFeed(
        name=name,
        url=outline.xml_url,
        interval=interval,
        priority=priority,
        tags=outline.tags,
        extract=_flag(name, "extract", outline.extract, notes),
        paused=bool(_flag(name, "paused", outline.paused, notes)),
    )


def _flag(name: str, key: str, value: str | None, notes: list[str]) -> bool | None:
    if value is None:
        return None
    flag = _TRUE_FALSE.get(value.strip().lower())
    if flag is None:
        notes.append(f"{name}: {key} {value!r} left out (not true or false)")
    return flag


# -- export ----------------------------------------------------------------------------------


def render_opml(feeds: Sequence[FeedConfig], *, title: str, created: datetime) -> str:
    """OPML 2.0 listing `feeds`, one outline each, every attribute value escaped."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        "  <head>",
        f"    <title>{_element_text(title)}</title>",
        f"    <dateCreated>{format_datetime(created, usegmt=True)}</dateCreated>",
        "    <docs>http://opml.org/spec2.opml</docs>",
        "  </head>",
        "  <body>",
    ]
    lines += [f"    <outline{_attributes(feed)}/>" for feed in feeds]
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _attributes(feed: FeedConfig) -> str:
    values: list[tuple[str, str]] = [
        ("type", "rss"),
        ("text", feed.name),
        ("title", feed.name),
        ("xmlUrl", safe_url(feed.url) or feed.url),
    ]
    if feed.tags:
        values.append(("category", ",".join(feed.tags)))
    if feed.interval_s is not None:
        values.append(("interval", _duration(feed.interval_s)))
    if feed.priority:
        values.append(("priority", str(feed.priority)))
    if feed.extract is not None:
        values.append(("extract", "true" if feed.extract else "false"))
    if feed.paused:
        values.append(("paused", "true"))
    return "".join(f" {key}={_attribute(value)}" for key, value in values)


def _attribute(value: str) -> str:
    """A quoted attribute value: &, <, > and quotes escaped, characters XML 1.0 cannot carry
    dropped, whitespace runs (line breaks too) as one space."""
    return quoteattr(plain_text(value))


def _element_text(value: str) -> str:
    return escape(plain_text(value))


def _duration(seconds: int) -> str:
    """Seconds as feeds.yaml writes them: 90s, 10m, 2h, 1d."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
