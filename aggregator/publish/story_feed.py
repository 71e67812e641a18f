"""A feed of stories for republishing, as `aggregator export` writes it and `serve` answers
it: names checked, stories read, one rendering."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.errors import UsageError
from aggregator.models import StoryFilter
from aggregator.publish.syndication import MEDIA_TYPES, Channel, render_feed
from aggregator.sanitize import safe_url
from aggregator.store import Reader


class NoPublishLink(UsageError):
    """An exported feed must say where it is published (Atom rel="self")."""

    def __init__(self) -> None:
        super().__init__(
            "an exported feed needs the address it is published at: pass --link"
            " https://desk.example/feeds/stories.atom, or set settings.publish.link in feeds.yaml"
        )


@dataclass(frozen=True, slots=True)
class StoryFeed:
    body: str
    media_type: str
    stories: int
    updated: str  # ISO 8601 UTC: the latest change among its stories (Last-Modified)


def publish_link(given: str | None, configured: str | None) -> str:
    """--link, else settings.publish.link; an http(s) URL or a clear error."""
    link = given or configured
    if link is None:
        raise NoPublishLink
    if safe_url(link) is None:
        raise UsageError(f"the publish link {link!r} is not an absolute http(s) URL")
    return link


def story_feed(
    reader: Reader, wanted: StoryFilter, fmt: str, *, link: str, title: str
) -> StoryFeed:
    """Unknown feed or tag names raise UnknownName before anything is rendered."""
    reader.check_names(feed=wanted.feed, tag=wanted.tag)
    entries = reader.export_entries(wanted)
    created_on = reader.created_on()
    updated = max((e.last_seen_at for e in entries), default=f"{created_on}T00:00:00Z")
    if wanted.until is not None:
        # A story carried again moves past ?until= and leaves the feed: it changed though
        # none of the stories still in it did. The store's latest change covers that.
        updated = max(updated, reader.latest_change() or updated)
    channel = Channel(title=title, link=link, updated=updated, created_on=created_on)
    return StoryFeed(render_feed(entries, fmt, channel), MEDIA_TYPES[fmt], len(entries), updated)
