"""Times are stored as ISO 8601 UTC strings ("2026-11-27T19:00:00Z") so they sort as text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# As RSS <skipDays> names them, in datetime.weekday() order.
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def iso_utc(moment: datetime) -> str:
    """A timezone-aware (or naive, taken as UTC) datetime as stored text."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # isoformat, not strftime: strftime writes year 999 as "999", which sorts after "2026".
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_iso(text: str) -> datetime:
    """Stored text (or any ISO 8601 string) back to an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d' -> seconds. Raises ValueError with the accepted forms."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"{text!r} is not a duration; write a positive number and a unit: 90s, 15m, 2h, 1d"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def since_to_iso(text: str, *, now: datetime) -> str:
    """`--since` accepts a duration back from now ('2h') or a date ('2026-11-27').
    Raises ValueError with a plain message, also for times outside the calendar."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        try:
            return iso_utc(now - timedelta(seconds=seconds))
        except OverflowError:
            raise ValueError(
                f"{text!r} reaches back before the year 1; give a shorter duration"
            ) from None
    try:
        moment = parse_iso(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2h, 3d) nor a date (2026-11-27 or 2026-11-27T08:00)"
        ) from None
    try:
        return iso_utc(moment)
    except OverflowError:  # 0001-01-01T00:00+05:00 is in the year 0 in UTC
        raise ValueError(
            f"{text!r} is outside the dates this store can hold (years 1 to 9999 in UTC)"
        ) from None
