"""Entries -> ItemDrafts: the identity of each entry, before anything is fetched (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import fields

from aggregator.models import Entry, Fate, ItemDraft, KnownEntries
from aggregator.sanitize import plain_text
from aggregator.urls import canonical_url


def _digest(*parts: str | None) -> str:
    joined = "\x1f".join(part or "" for part in parts)
    return hashlib.sha1(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def entry_hash(entry: Entry) -> str:
    """Changes whenever the feed edits what it says about the entry."""
    return _digest(
        entry.link,
        entry.title,
        entry.summary,
        entry.content_html,
        entry.author,
        entry.published_at,
        entry.updated_at,
    )


def draft_for(entry: Entry) -> ItemDraft:
    """The entry's key in its feed: its GUID, else its canonical link, else a content hash."""
    url = canonical_url(entry.link) if entry.link else None
    key = entry.guid or url or "sha1:" + _digest(entry.title, entry.summary, entry.content_html)
    return ItemDraft(entry=entry, key=key, url=url, entry_hash=entry_hash(entry))


def drafts_for(entries: Iterable[Entry]) -> list[ItemDraft]:
    """One draft per distinct key, first occurrence wins (feeds do repeat entries)."""
    return drafts_and_skips(entries)[0]


def drafts_and_skips(entries: Iterable[Entry]) -> tuple[list[ItemDraft], list[str]]:
    """`drafts_for`, leaving out each entry that cannot be stored, with the reason: one bad
    entry costs only itself, never the feed's others."""
    seen: dict[str, ItemDraft] = {}
    skipped: list[str] = []
    for number, entry in enumerate(entries, 1):
        problem = _unstorable(entry)
        if problem is not None:
            title = plain_text(entry.title.encode("utf-8", "replace").decode())[:60]
            skipped.append(f"entry {number} ({title!r}): {problem}")
            continue
        draft = draft_for(entry)
        seen.setdefault(draft.key, draft)
    return list(seen.values()), skipped


def _unstorable(entry: Entry) -> str | None:
    """Why the entry's text cannot be stored, or None. A lone surrogate (valid in JSON's
    \\ud800 escapes) has no UTF-8 form, so neither the entry's digest nor SQLite takes it."""
    for field in fields(entry):
        value = getattr(entry, field.name)
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and not _encodable(text):
                return f"its {field.name} is not valid Unicode (it has a lone surrogate)"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fate_of(draft: ItemDraft, known: KnownEntries) -> Fate:
    """What becomes of an entry, given what the store already has: decided once, before its
    page is fetched, and applied as decided when the feed's refresh is committed."""
    stored_hash = known.hashes.get(draft.key)
    if stored_hash is not None:
        return Fate.UNCHANGED if stored_hash == draft.entry_hash else Fate.EDITED
    if draft.url is not None and draft.url in known.urls:
        return Fate.SEEN_ELSEWHERE
    return Fate.NEW
