"""Fingerprints asked for together go to the workers together: a feed's new entries cost a
few jobs, not one each, and each caller still gets its own text's fingerprint."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aggregator.engine import pool
from aggregator.engine.pool import Workers
from aggregator.errors import InternalError
from aggregator.models import Fingerprint
from aggregator.stories import dedup

pytestmark = pytest.mark.slow

WORDS = [
    "minister",
    "talks",
    "border",
    "grain",
    "exports",
    "ceasefire",
    "parliament",
    "budget",
    "vote",
    "court",
    "ruling",
]


def summary(n: int) -> str:
    return " ".join(WORDS[(n + i * 7) % len(WORDS)] for i in range(40)) + f" number {n}"


class CountedWorkers(Workers):
    """Workers that count the jobs they send (and the texts in each)."""

    def __init__(self, processes: int) -> None:
        super().__init__(processes)
        self.jobs: list[int] = []

    async def _run(self, func: Any, *args: Any, timeout: float, what: str) -> Any:
        if func is pool._fingerprints:
            self.jobs.append(len(args[0]))
        return await super()._run(func, *args, timeout=timeout, what=what)


def test_fingerprints_asked_together_share_jobs_and_each_gets_its_own() -> None:
    texts = [(f"Headline {n}", None, summary(n)) for n in range(150)]

    async def scenario() -> list[Fingerprint | None]:
        workers = CountedWorkers(2)
        try:
            found = await asyncio.gather(*(workers.fingerprint(*t) for t in texts))
        finally:
            workers.close()
        # 150 texts over 2 workers, at most FINGERPRINT_BATCH to a job.
        assert sum(workers.jobs) == len(texts)
        assert len(workers.jobs) == 3
        assert max(workers.jobs) <= pool.FINGERPRINT_BATCH
        return found

    found = asyncio.run(scenario())
    assert found == [dedup.fingerprint(*t) for t in texts]
    assert all(fp is not None for fp in found)


def test_a_caller_that_gives_up_leaves_the_others_theirs() -> None:
    async def scenario() -> None:
        workers = CountedWorkers(0)
        try:
            kept = asyncio.ensure_future(workers.fingerprint("Kept", None, summary(1)))
            dropped = asyncio.ensure_future(workers.fingerprint("Dropped", None, summary(2)))
            await asyncio.sleep(0)  # both asked in the same turn of the loop
            dropped.cancel()
            assert await kept == dedup.fingerprint("Kept", None, summary(1))
            assert dropped.cancelled()
            # A text too short to compare is None, asked for alone.
            assert await workers.fingerprint("Short", None, "two words") is None
            assert workers.jobs == [1, 1]
        finally:
            workers.close()

    asyncio.run(scenario())


def test_one_text_that_fails_costs_only_itself() -> None:
    texts: list[tuple[str | None, str | None, str | None]] = [
        ("Fine", None, summary(3)),
        ("Broken", None, 42),  # type: ignore[list-item]  # not text: fingerprinting it fails
        ("Also fine", None, summary(4)),
    ]

    results = pool._fingerprints(texts)
    assert results[0] == dedup.fingerprint(*texts[0])
    assert isinstance(results[1], InternalError)
    assert "fingerprinting failed unexpectedly" in str(results[1])
    assert results[2] == dedup.fingerprint(*texts[2])
