import io
import json

import pytest

from aggregator.output import render

ROWS = [
    {
        "id": 12345,
        "first_seen_at": "2026-11-27T20:11:58Z",
        "state": "failing",
        "title": "Libya government reaches preliminary accord with powerful armed group " * 3,
    },
    {"id": 7, "first_seen_at": None, "state": "ok", "title": "Short"},
]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_tables_fit_the_terminal_and_keep_short_columns_whole(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    render(ROWS, "table", out=out)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    body = "\n".join(lines)
    assert "12345" in body
    assert "2026-11-27 20:11" in body  # stored times to the minute
    assert "failing" in body
    assert "Libya" in body


def test_machine_formats_carry_every_column_unchanged() -> None:
    out = io.StringIO()
    render(ROWS, "json", out=out, columns=("id",))
    assert json.loads(out.getvalue())[0]["first_seen_at"] == "2026-11-27T20:11:58Z"
    out = io.StringIO()
    render(ROWS, "csv", out=out)
    assert out.getvalue().splitlines()[0] == "id,first_seen_at,state,title"
