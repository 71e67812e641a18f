"""An editor's corrections to stories, each in one write transaction of the store."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.store import Store
from aggregator.stories import editing
from aggregator.stories.dedup import DedupPolicy


def split_item(store: Store, item_id: int, *, now: str) -> editing.Split:
    """`aggregator stories split`: the item leaves its story, and stays apart."""
    with store.transaction() as tx:
        return editing.split_item(tx, item_id, now=now)


def merge_stories(store: Store, story_ids: Sequence[int], *, now: str) -> editing.Merged:
    """`aggregator stories merge`: the stories become one, and stay one."""
    with store.transaction() as tx:
        return editing.merge_stories(tx, story_ids, now=now)


def rebuild_stories(store: Store, policy: DedupPolicy, *, now: str) -> editing.Rebuilt:
    """`aggregator stories rebuild`: re-cluster everything under `policy`, in one transaction
    (feeds' refreshes wait for it)."""
    with store.transaction() as tx:
        return editing.rebuild(tx, policy, now=now)
