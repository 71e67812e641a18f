import io
import json

import pytest

from aggregator.cli.tables import render

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


HOSTILE = ["Talks [/b] resume", "[link=http://x]y[/link]", "[bold]shouting", ":warning: [red]x"]


def test_untrusted_text_is_shown_literally_never_as_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal: links and styles would be live
    rows = [{"id": n, "title": title, "[/i]": "x"} for n, title in enumerate(HOSTILE)]
    out = io.StringIO()
    render(rows, "table", out=out, title="[/b] feeds [link=http://x]z[/link]")
    body = out.getvalue()
    for text in [*HOSTILE, "[/i]", "[/b] feeds [link=http://x]z[/link]"]:
        assert text in body
    assert "\x1b]8;" not in body  # no terminal hyperlink (OSC 8)


def test_fetch_summary_and_progress_show_errors_literally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from aggregator.cli.fetch_progress import FetchView
    from aggregator.models import FeedOutcome

    monkeypatch.setenv("COLUMNS", "200")
    outcomes = [
        FeedOutcome("wire", "parse_error", error="bad XML near [/b] [link=http://x]y[/link]"),
        FeedOutcome("partner", "leased", warning="[bold]busy"),
    ]
    view = FetchView(total=2, interactive=True)
    assert view.progress is not None
    view.done(FeedOutcome("[/b]", "ok"))  # feed names are checked, but the bar must not care
    progress = io.StringIO()
    Console(file=progress, width=120).print(view.progress.get_renderable())
    assert "[/b]" in progress.getvalue()

    view.summary(outcomes)
    shown = capsys.readouterr().out
    assert "bad XML near [/b] [link=http://x]y[/link]" in shown
    assert "[bold]busy" in shown


def test_control_characters_never_reach_the_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aggregator.cli.fetch_progress import FetchView
    from aggregator.models import FeedOutcome

    monkeypatch.setenv("COLUMNS", "200")
    sneaky = "red \x1b[31malert\x1b]8;;http://x\x1b\\link\r\x9b2J"
    out = io.StringIO()
    render([{"title": sneaky}], "table", out=out)
    assert "\x1b" not in out.getvalue()
    assert "\r" not in out.getvalue()
    assert "\x9b" not in out.getvalue()
    assert "red \\x1b[31malert\\x1b]8;;http://x\\x1b\\link\\r\\u009b2J" in out.getvalue()
    out = io.StringIO()
    render([{"title": sneaky}], "json", out=out)
    assert json.loads(out.getvalue())[0]["title"] == sneaky  # machine formats keep the data

    view = FetchView(total=1, interactive=False)
    view.done(FeedOutcome("wire", "parse_error", error=sneaky))
    view.summary([FeedOutcome("wire", "parse_error", error=sneaky)])
    shown = capsys.readouterr()
    assert "\x1b" not in shown.out + shown.err
    assert "wire: parse_error: red \\x1b[31malert" in shown.err


def test_a_table_into_a_pipe_is_wide_enough_for_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()  # not a terminal
    render(ROWS, "table", out=out, wrap=("title",))
    assert max(len(line) for line in out.getvalue().splitlines()) > 80
    assert "Libya government reaches preliminary accord with powerful armed group" in out.getvalue()
