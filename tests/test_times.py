"""Stored times and `--since`: plain ValueErrors for anything outside the calendar."""

from datetime import UTC, datetime

import pytest

from aggregator.times import iso_utc, since_to_iso

NOW = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", "2026-11-27T17:00:00Z"),
        ("2026-11-27", "2026-11-27T00:00:00Z"),
        ("2026-11-27T08:00+03:00", "2026-11-27T05:00:00Z"),
        ("0001-01-01", "0001-01-01T00:00:00Z"),
    ],
)
def test_since_accepts_durations_and_dates(text: str, expected: str) -> None:
    assert since_to_iso(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("9999999999d", "before the year 1"),
        ("99999999999999999999999999s", "before the year 1"),
        ("0001-01-01T00:00+05:00", "outside the dates"),
        ("9999-12-31T23:00-05:00", "outside the dates"),
        ("yesterday", "neither a duration"),
    ],
)
def test_since_out_of_range_is_a_plain_value_error(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        since_to_iso(text, now=NOW)


def test_stored_years_have_four_digits_so_they_sort_as_text() -> None:
    assert iso_utc(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00Z"
    assert iso_utc(datetime(999, 1, 1, tzinfo=UTC)) < iso_utc(NOW)
    assert iso_utc(datetime(2026, 11, 27, 19, 0, 0, 999_999)) == "2026-11-27T19:00:00Z"
