"""Tables into a pipe or a file are written by aggregator/cli/plain_table.py without Rich:
they must be exactly what Rich writes (tables.rich_table), byte for byte, for every table the
plain writer accepts; it refuses (and Rich draws) what it cannot draw the same."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.cli import plain_table, tables

# Letters, digits and spaces mostly, and the characters that make wrapping and cutting hard:
# runs of spaces, newlines, no-break spaces, long words, Cyrillic, dashes and quotes, the
# ellipsis itself.
ALPHABET = st.sampled_from(
    [
        *"abcdefghij KLMNOP 0123 ",
        *("  ", "\n", " \n ", "\u00a0", "—", "«", "»", "…", "Москва ", "é", ".", "-", "/"),
    ]
)
TEXT = st.lists(ALPHABET, max_size=40).map("".join) | st.text(
    alphabet="xyz ", min_size=0, max_size=90
)
COLUMN = st.sampled_from(["id", "title", "feeds", "what happened / what to do", "state", "n"])


def both(rows: list[dict[str, Any]], **kwargs: Any) -> tuple[str, str]:
    """What render writes into a pipe (plain_table when it can), and what Rich writes."""
    fast, rich = io.StringIO(), io.StringIO()
    tables.render(rows, "table", out=fast, **kwargs)
    tables.rich_table(
        rows,
        rich,
        title=kwargs.get("title"),
        widths=kwargs.get("widths") or {},
        wrap=kwargs.get("wrap", ()),
    )
    return fast.getvalue(), rich.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.lists(COLUMN, min_size=1, max_size=6, unique=True),
    cells=st.lists(
        st.lists(TEXT | st.integers(0, 10**6).map(str), min_size=6, max_size=6),
        min_size=1,
        max_size=6,
    ),
    wrap=st.sets(COLUMN),
    title=st.none() | TEXT,
    caps=st.dictionaries(COLUMN, st.integers(1, 30)),
)
def test_plain_tables_are_richs(
    columns: list[str],
    cells: list[list[str]],
    wrap: set[str],
    title: str | None,
    caps: dict[str, int],
) -> None:
    rows = [dict(zip(columns, row, strict=False)) for row in cells]
    fast, rich = both(rows, title=title, widths=caps, wrap=tuple(wrap))
    assert fast == rich


def test_a_feeds_table_is_written_without_rich() -> None:
    advice = (
        "Stale: it answers, but no new entry since 2026-11-20 10:00, far longer than its"
        " usual rhythm; check that the feed still updates, or whether it moved."
    )
    rows = [
        {
            "feed": f"feed-{n:03d}",
            "state": "ok",
            "items": n * 37,
            "last fetch": "5 min ago",
            "what happened / what to do": advice if n % 3 else "ok",
        }
        for n in range(40)
    ]
    fast, rich = both(rows, wrap=("what happened / what to do",), title="40 feeds")
    assert fast == rich
    sizes = tables._widths(rows, tables.PIPE_WIDTH, {}, set(tables.SHRINKABLE))
    drawn = plain_table.render(
        list(sizes),
        [[tables._cell(v) for v in r.values()] for r in rows],
        list(sizes.values()),
        [False] * len(sizes),
        title=None,
        total=tables.PIPE_WIDTH,
        encoding="utf-8",
    )
    assert drawn is not None  # the plain writer drew it: Rich was not needed


@pytest.mark.parametrize(
    "text",
    ["東京で会議", "e\u0301", "tab\there", "\u00ad", "\U0001f600"],
    ids=["wide", "combining", "tab", "soft hyphen", "emoji"],
)
def test_what_plain_cannot_draw_the_same_is_left_to_rich(text: str) -> None:
    rows = [{"id": 1, "title": text}]
    assert (
        plain_table.render(
            ["id", "title"],
            [["1", text]],
            [2, 20],
            [False, False],
            title=None,
            total=160,
            encoding="utf-8",
        )
        is None
    )
    fast, rich = both(rows)
    assert fast == rich


def test_a_table_too_wide_or_an_ascii_pipe_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        plain_table.render(["a"], [["x"]], [200], [False], title=None, total=160, encoding="utf-8")
        is None
    )
    assert (
        plain_table.render(["a"], [["x"]], [5], [False], title=None, total=160, encoding="ascii")
        is None
    )
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert (
        plain_table.render(["a"], [["x"]], [5], [False], title=None, total=160, encoding="utf-8")
        is None
    )


def test_the_characters_it_draws_are_one_cell_for_rich() -> None:
    from rich.cells import cell_len

    assert {c for c in plain_table._SINGLE_CELLS if cell_len(c) != 1} == set()
