"""The `settings:` keys of feeds.yaml: which Settings field each fills, what kind of value it
takes, how that value is read, and the most it may be."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from aggregator.models import Publishing, Settings
from aggregator.times import parse_duration
from aggregator.urls import canonical_url

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")  # bare: 0 (see `bounded`)
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")

# feeds.yaml key -> (Settings field, kind)
SETTING_KEYS: dict[str, tuple[str, str]] = {
    "database": ("database", "str"),
    "interval": ("interval_s", "duration"),
    "extract": ("extract", "bool"),
    "user_agent": ("user_agent", "str"),
    "allow_private_networks": ("allow_private_networks", "bool"),  # all private ranges
    "allow_networks": ("allow_networks", "networks"),
    "timeout": ("timeout_s", "duration"),
    "connect_timeout": ("connect_timeout_s", "duration"),
    "max_feed_size": ("max_feed_bytes", "size"),
    "max_page_size": ("max_page_bytes", "size"),
    "max_redirects": ("max_redirects", "int"),
    "max_entries": ("max_entries", "int"),
    "concurrency": ("concurrency", "int"),
    "per_host": ("per_host", "int"),
    "host_gap": ("host_gap_s", "seconds"),
    "feed_deadline": ("feed_deadline_s", "duration"),
    "broker": ("broker", "broker"),  # the distributed mode: redis://host:6379/0
    # The daemon's schedule (schedule.py, daemon.py)
    "min_interval": ("min_interval_s", "duration"),
    "max_interval": ("max_interval_s", "duration"),
    "max_backoff": ("max_backoff_s", "duration"),
    "retention": ("retention_s", "duration"),
    "tick": ("tick_s", "period"),
    "batch": ("batch", "int"),
    "stop_timeout": ("stop_timeout_s", "seconds"),
    "worker_memory_limit": ("worker_memory_limit_bytes", "size"),
    # Near-duplicate detection (dedup.py)
    "dedup_threshold": ("dedup_threshold", "fraction"),
    "dedup_summary_threshold": ("dedup_summary_threshold", "fraction"),
    "title_confirm_threshold": ("title_confirm_threshold", "fraction"),
    "dedup_window": ("dedup_window_s", "duration"),
    # Exported and served feeds (publish/): a mapping of its own
    "publish": ("publish", "publish"),
}
DAY = 86_400
# The most each number may be, in its unit (seconds, bytes, a count), by feeds.yaml key:
# past these a typo (an extra 0, d for m) is likelier than intent, and far past them the
# scheduler's date arithmetic overflows.
MAXIMA: dict[str, float] = {
    "interval": 365 * DAY,
    "timeout": 3600,
    "connect_timeout": 3600,
    "max_feed_size": 1024**3,
    "max_page_size": 1024**3,
    "max_redirects": 30,
    "max_entries": 100_000,
    "concurrency": 1000,
    "per_host": 100,
    "host_gap": 60,
    "feed_deadline": 6 * 3600,
    "min_interval": 365 * DAY,
    "max_interval": 365 * DAY,
    "max_backoff": 365 * DAY,
    "retention": 3650 * DAY,  # ten years; to keep items for good, leave retention out
    "tick": 3600,
    "batch": 10_000,
    "stop_timeout": 3600,
    "worker_memory_limit": 64 * 1024**3,
    "dedup_window": 365 * DAY,
}
assert {f for f, _ in SETTING_KEYS.values()} <= {f.name for f in fields(Settings)}
_KEY_OF_FIELD = {field_name: key for key, (field_name, _) in SETTING_KEYS.items()}


def setting_key(field_name: str) -> str:
    """The feeds.yaml key that fills a Settings field (`timeout_s` -> `timeout`), for
    messages: people know the keys they wrote, not our fields."""
    return _KEY_OF_FIELD.get(field_name, field_name)


_NUMBERS = {
    k
    for k, (_, kind) in SETTING_KEYS.items()
    if kind not in ("str", "bool", "fraction", "publish", "networks", "broker")
}
PUBLISH_KEYS = ("link", "title")
assert set(MAXIMA) == _NUMBERS, "every number in settings needs a maximum"


def convert(kind: str, value: Any) -> Any:
    """A feeds.yaml value as the Settings/FeedConfig field wants it; ValueError says why not."""
    if kind == "duration":
        return parse_duration(str(value))
    if kind in ("publish", "networks"):  # structured values: a mapping, a list
        return _publishing(value) if kind == "publish" else networks(value)
    if kind == "broker":
        return broker_url(value)
    if kind in _CONVERTERS:
        return _CONVERTERS[kind](value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{value!r} is not a positive whole number")
        return value
    if kind == "size":
        match = _SIZE.match(str(value))
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"{value!r} is not a size; write for example 512KB, 20MB")
        return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty text")
    return value.strip()


def networks(value: Any) -> tuple[str, ...]:
    """`allow_networks`: a list of CIDRs (a bare address is its /32 or /128), normalised."""
    if not isinstance(value, list):
        raise ValueError(
            f"{value!r} is not a list of networks; write for example [10.0.0.0/8, 192.168.1.20/32]"
        )
    return tuple(network(item) for item in value)


def broker_url(value: Any) -> str:
    """`broker`: the Redis of the distributed mode, as a redis://, rediss:// or unix:// URL."""
    text = value.strip() if isinstance(value, str) else ""
    if not text.startswith(("redis://", "rediss://", "unix://")) or len(text) <= len("unix://"):
        raise ValueError(
            f"{value!r} is not a Redis URL; write for example redis://queue.example:6379/0"
        )
    return text


def network(value: Any) -> str:
    """One CIDR, normalised ("10.0.0.0/8"); ValueError says what is wrong with it."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a network; write for example 10.0.0.0/8")
    text = value.strip()
    try:
        return str(ipaddress.ip_network(text))
    except ValueError as exc:
        try:  # host bits set: "10.0.0.1/8"
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{exc}; write for example 10.0.0.0/8, 192.168.1.20/32 or fd12:3456::/48"
            ) from None
        one = f"{text.partition('/')[0]}/{loose.max_prefixlen}"
        raise ValueError(
            f"{text!r} has bits set past its prefix; write {loose} for the network "
            f"or {one} for the one address"
        ) from None


def _publishing(value: Any) -> Publishing:
    if not isinstance(value, dict):
        raise ValueError(
            "must be a mapping, for example  link: https://desk.example/feeds/all.atom"
        )
    unknown = sorted(set(map(str, value)) - set(PUBLISH_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], PUBLISH_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown key {unknown[0]!r}{hint}; it takes {', '.join(PUBLISH_KEYS)}")
    link = value.get("link")
    if link is not None and (not isinstance(link, str) or canonical_url(link) is None):
        raise ValueError(f"link {link!r} is not an http(s) address; write the full URL")
    title = value.get("title", Publishing().title)
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"title {title!r} is not a non-empty text")
    return Publishing(link=link, title=title.strip())


class BareNumber(ValueError):
    """A duration or a size written without its unit: `interval: 10` would be ten seconds
    and `max_feed_size: 20` twenty bytes, rarely what was meant, so it is refused."""


# The unit a bare number most likely meant, by key (the fix suggests it first), and the
# unit it would have meant read literally (offered second, when it differs).
_LIKELY_UNIT = {
    "interval": "m",
    "min_interval": "m",
    "max_interval": "h",
    "max_backoff": "h",
    "retention": "d",
    "dedup_window": "d",
    "feed_deadline": "m",
}
_LITERAL_UNIT = {"duration": ("s", "seconds"), "size": ("B", "bytes")}
_UNIT_KINDS = ("duration", "size", "seconds", "period")


def _bare_number(key: str, kind: str, value: Any) -> BareNumber | None:
    """The refusal of a number written without its unit, with the fix; None when `value`
    has its unit, is 0 (which needs none), or is no number at all."""
    if kind not in _UNIT_KINDS or isinstance(value, bool):
        return None
    if isinstance(value, str) and _NUMBER.match(value):
        value = float(value) if "." in value else int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, int | float) or value <= 0:
        return None  # 0 is `host_gap: 0`, or refused by `convert` as no positive time
    number = f"{value:g}" if isinstance(value, float) else str(value)
    literal, meaning = _LITERAL_UNIT.get(kind, ("s", "seconds"))
    likely = "MB" if kind == "size" else _LIKELY_UNIT.get(key, literal)
    if kind in _LITERAL_UNIT and not isinstance(value, int):
        examples = "90s, 15m, 2h or 1d" if kind == "duration" else "512KB, 20MB or 1GB"
        return BareNumber(f"{number} has no unit; write a whole number and a unit: {examples}")
    fix = f"write `{key}: {number}{likely}`"
    if likely != literal:
        fix += f" (or {number}{literal} if you really mean {meaning})"
    return BareNumber(f"{number} has no unit; {fix}")


def bounded(key: str, kind: str, value: Any) -> Any:
    """`convert`, then no more than the key's maximum; ValueError names the maximum. A
    duration or size without its unit is a BareNumber, whose message gives the fix."""
    if (bare := _bare_number(key, kind, value)) is not None:
        raise bare
    converted = convert(kind, value)
    maximum = MAXIMA.get(key)
    if maximum is not None and converted > maximum:
        raise ValueError(f"{value!r} is more than the maximum, {_shown(kind, maximum)}")
    return converted


_UNITS = {
    "size": (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024), ("B", 1)),
    "duration": (("d", DAY), ("h", 3600), ("m", 60), ("s", 1)),
    "period": (("d", DAY), ("h", 3600), ("m", 60), ("s", 1)),
    "seconds": (("s", 1),),  # host_gap and stop_timeout are written in s or ms
}


def _shown(kind: str, maximum: float) -> str:
    """A maximum the way feeds.yaml writes it: 365d, 1h, 60s, 1GB, 1000."""
    for unit, size in _UNITS.get(kind, (("", 1),)):
        if maximum % size == 0:
            return f"{int(maximum // size)}{unit}"
    return f"{maximum:g}"


def shown_duration(seconds: float) -> str:
    """Seconds the way feeds.yaml writes them: 90s, 5m, 2h, 1d."""
    return _shown("duration", seconds)


def _fraction(value: Any) -> float:
    """A threshold between 0 (exclusive) and 1: 0.5, 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{value!r} is not a number between 0 and 1, e.g. 0.5")
    return float(value)


def _seconds(value: Any) -> float:
    """Seconds as a float, fractions welcome, 0 for none: '500ms', '2s', '0.5s', 0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value >= 0 and (isinstance(value, int) or math.isfinite(value)):
            # A whole number too big for a float is inf, for the maximum to refuse.
            return float(value) if value < 2**1000 else math.inf
    elif match := _SECONDS.match(str(value)):
        return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    raise ValueError(f"{value!r} is not a time; write for example 500ms, 2s or 0")


def _period(value: Any) -> float:
    """A positive time, fractions welcome: '200ms', '0.2s', '2s', '1m'."""
    try:
        seconds = _seconds(value)
    except ValueError:
        try:
            seconds = float(parse_duration(str(value)))
        except ValueError:
            seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive time; write for example 500ms, 5s or 1m")
    return seconds


# Kinds whose conversion is a function of its own.
_CONVERTERS: dict[str, Callable[[Any], float]] = {
    "seconds": _seconds,
    "period": _period,
    "fraction": _fraction,
}
