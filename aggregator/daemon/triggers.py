"""APScheduler wiring only: when the daemon's jobs run, never what they do.

The tick is an interval job that never overlaps itself (max_instances=1) and runs once for
any number of missed runs (coalesce). It decides nothing: the store says which feeds are due,
so the schedule survives restarts. Maintenance runs on cron triggers in UTC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

Job = Callable[[], Awaitable[None]]

# Quiet hours for the heavier jobs; a checkpoint keeps the WAL file small all day.
MAINTENANCE_CRONS: Mapping[str, Mapping[str, Any]] = {
    "retention": {"minute": 17},
    "optimize": {"hour": 4, "minute": 7},
    "checkpoint": {"minute": "*/15"},
}


def build_scheduler(
    *, tick: Job, tick_s: float, maintenance: Mapping[str, Job], now: datetime
) -> AsyncIOScheduler:
    """The daemon's scheduler, not yet started: the tick first runs at `now`."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=tick_s, timezone=UTC),
        id="tick",
        next_run_time=now,
    )
    for name, job in maintenance.items():
        scheduler.add_job(job, CronTrigger(timezone=UTC, **MAINTENANCE_CRONS[name]), id=name)
    return scheduler


def next_runs(scheduler: AsyncIOScheduler) -> dict[str, datetime | None]:
    """Each job's next run time (for the start-up log and tests)."""
    return {job.id: job.next_run_time for job in scheduler.get_jobs()}
