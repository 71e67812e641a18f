"""The `aggregator` command, through click's runner, against a real server and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from feeds_builder import article_page, rss
from localserver import LocalServer

from aggregator.cli import cli

PARAGRAPHS = [
    "The Security Council met on Libya on Thursday to hear a briefing on the accord between "
    "the government and armed groups in Tripoli.",
    "Diplomats said the council would return to the question next month after consultations "
    "with the parties and the regional organisations involved.",
    "The session ended without a vote, and members agreed to keep the matter under review.",
]


@pytest.fixture
def setup(server: LocalServer, tmp_path: Path) -> tuple[CliRunner, list[str]]:
    server.add("/p/1", article_page("Council meets on Libya", PARAGRAPHS), content_type="text/html")
    server.add(
        "/wire.xml",
        rss([{"title": "Council meets on Libya", "link": server.url("/p/1"), "guid": "w1"}]),
        etag='"w"',
    )
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\n"
        "  database: store/news.db\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n"
    )
    return CliRunner(), ["--config", str(config)]


def test_fetch_then_list_search_and_query(
    setup: tuple[CliRunner, list[str]], tmp_path: Path
) -> None:
    runner, base = setup
    result = runner.invoke(cli, [*base, "fetch"])
    assert result.exit_code == 0, result.output
    assert "1 feeds, 1 new items, 0 failed" in result.stdout
    assert "wire: 1 entries, 1 new" in result.stderr  # plain progress lines off a terminal
    assert (tmp_path / "store" / "news.db").exists()  # settings.database, beside the config

    items = json.loads(runner.invoke(cli, [*base, "items", "--format", "json"]).stdout)
    assert [(i["title"], i["feeds"], i["extract_status"]) for i in items] == [
        ("Council meets on Libya", "wire", "ok")
    ]
    found = runner.invoke(cli, [*base, "search", "Tripoli", "--format", "ndjson"]).stdout
    assert json.loads(found.splitlines()[0])["title"] == "Council meets on Libya"
    assert runner.invoke(cli, [*base, "search", "nothing-like-this"]).stdout.strip() == "(no rows)"

    csv_out = runner.invoke(
        cli, [*base, "query", "select count(*) as n from items", "--format", "csv"]
    )
    assert csv_out.stdout == "n\n1\n"
    refused = runner.invoke(cli, [*base, "query", "delete from items"])
    assert refused.exit_code == 2
    assert "readonly" in refused.stderr

    health = json.loads(runner.invoke(cli, [*base, "feeds", "--json"]).stdout)
    assert health[0]["name"] == "wire"
    assert health[0]["state"] == "ok"
    assert health[0]["last_outcome"] == "ok"


def test_since_filters_and_bad_since_is_usage_error(setup: tuple[CliRunner, list[str]]) -> None:
    runner, base = setup
    runner.invoke(cli, [*base, "fetch"])
    assert (
        len(
            json.loads(
                runner.invoke(cli, [*base, "items", "--since", "1h", "--format", "json"]).stdout
            )
        )
        == 1
    )
    assert (
        json.loads(
            runner.invoke(cli, [*base, "items", "--since", "2999-01-01", "--format", "json"]).stdout
        )
        == []
    )
    bad = runner.invoke(cli, [*base, "items", "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "neither a duration" in bad.stderr


def test_failing_feed_exits_1_and_is_explained(
    setup: tuple[CliRunner, list[str]], server: LocalServer, tmp_path: Path
) -> None:
    runner, base = setup
    config = Path(base[1])
    config.write_text(
        config.read_text() + f"  - name: broken\n    url: {server.url('/gone.xml')}\n"
    )
    server.add("/gone.xml", "", status=410)
    result = runner.invoke(cli, [*base, "fetch"])
    assert result.exit_code == 1
    assert "1 failed" in result.stdout
    health = {
        f["name"]: f for f in json.loads(runner.invoke(cli, [*base, "feeds", "--json"]).stdout)
    }
    assert health["broken"]["state"] == "gone"
    assert "remove it from feeds.yaml. It is no longer fetched" in health["broken"]["advice"]
    table = runner.invoke(cli, [*base, "feeds"]).stdout
    assert table.index("broken") < table.index("wire")  # trouble first


def test_bad_config_exits_2_naming_line_and_fetches_nothing(
    server: LocalServer, tmp_path: Path
) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(f"feeds:\n  - name: wire\n    url: {server.url('/x')}\n    intervl: 5m\n")
    runner = CliRunner()
    for command in (["check"], ["fetch"]):
        result = runner.invoke(cli, ["--config", str(config), *command])
        assert result.exit_code == 2
        assert f"{config}:4 (feed 'wire'): unknown key 'intervl'" in result.stderr
        assert "did you mean 'interval'" in result.stderr
    assert server.requests == []


def test_check_ok_and_unknown_feed_name(setup: tuple[CliRunner, list[str]]) -> None:
    runner, base = setup
    ok = runner.invoke(cli, [*base, "check"])
    assert ok.exit_code == 0
    assert "ok, 1 feeds" in ok.stdout
    unknown = runner.invoke(cli, [*base, "fetch", "nope"])
    assert unknown.exit_code == 2
    assert "no feed named nope" in unknown.stderr


def test_reading_before_any_fetch_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "items"])
    assert result.exit_code == 2
    assert "run `aggregator fetch` first" in result.stderr


@pytest.mark.parametrize("command", ["fetch", "feeds", "items", "search", "query", "check"])
def test_every_command_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_headlines_that_look_like_markup_are_shown_as_they_are(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    titles = ["Talks [/b] resume", "[link=http://x]y[/link] vote", "[bold]Quake hits coast"]
    server.add(
        "/wire.xml",
        rss(
            [
                {"title": title, "link": server.url(f"/p/{n}"), "guid": f"g{n}"}
                for n, title in enumerate(titles)
            ]
        ),
    )
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n"
    )
    runner, base = CliRunner(), ["--config", str(config)]
    assert runner.invoke(cli, [*base, "fetch", "--no-extract"]).exit_code == 0
    for command in (["items"], ["stories"], ["search", "resume OR vote OR quake"]):
        result = runner.invoke(cli, [*base, *command])
        assert result.exit_code == 0, (command, result.output)
        for title in titles:
            assert title in result.stdout, (command, title)


@pytest.mark.parametrize(
    ("since", "words"),
    [("9999999999d", "before the year 1"), ("0001-01-01T00:00+05:00", "outside the dates")],
)
def test_since_beyond_the_calendar_is_a_usage_error(
    setup: tuple[CliRunner, list[str]], since: str, words: str
) -> None:
    runner, base = setup
    runner.invoke(cli, [*base, "fetch"])
    for command in ("items", "search x", "stories"):
        result = runner.invoke(cli, [*base, *command.split(), "--since", since])
        assert result.exit_code == 2, result.output
        assert words in result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("option", ["--limit", "--min-sources"])
def test_a_count_longer_than_the_store_can_hold_is_a_usage_error(
    setup: tuple[CliRunner, list[str]], option: str
) -> None:
    """SQLite's integers end at 2**63 - 1: a longer --limit is refused naming the range,
    never an OverflowError from inside a query."""
    runner, base = setup
    runner.invoke(cli, [*base, "fetch"])
    takes = ("items", "search x", "stories", "export --link https://d.example/f")
    for command in (
        takes if option == "--limit" else ("stories", "export --link https://d.example/f")
    ):
        result = runner.invoke(cli, [*base, *command.split(), option, "9" * 20])
        assert result.exit_code == 2, result.output
        assert "is not in the range 1<=x<=9223372036854775807" in result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)
        largest = runner.invoke(cli, [*base, *command.split(), option, str(2**63 - 1)])
        assert largest.exit_code == 0, largest.output


def test_database_under_a_file_is_a_clear_error(
    setup: tuple[CliRunner, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aggregator.daemon.logs.setup_logging", lambda *args, **kwargs: None)
    runner, base = setup
    (tmp_path / "notdb.db").write_text("a file")
    db = str(tmp_path / "notdb.db" / "x.db")
    for command in ("fetch", "run"):
        result = runner.invoke(cli, [*base, "--db", db, command])
        assert result.exit_code == 2, result.output
        assert f"cannot create the database at {db}: " in result.stderr
        assert isinstance(result.exception, SystemExit)


def test_python_tags_in_feeds_yaml_are_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        f'feeds:\n  - name: a\n    url: !!python/object/apply:os.system ["touch {tmp_path}/x"]\n'
    )
    for command in ("check", "fetch"):
        result = CliRunner().invoke(cli, ["--config", str(config), command])
        assert result.exit_code == 2
        assert f"{config}:3: cannot read this value" in result.stderr
    assert not (tmp_path / "x").exists()


def test_reading_commands_work_beside_a_broken_feeds_yaml(
    setup: tuple[CliRunner, list[str]],
) -> None:
    runner, base = setup
    assert runner.invoke(cli, [*base, "fetch"]).exit_code == 0
    config = Path(base[1])
    config.write_text(config.read_text() + "    intervl: 5m\n  - url: !!python/name:os.system\n")
    assert runner.invoke(cli, [*base, "check"]).exit_code == 2
    health = runner.invoke(cli, [*base, "feeds", "--json"])
    assert health.exit_code == 0, health.output
    assert [f["name"] for f in json.loads(health.stdout)] == ["wire"]  # from store/news.db
    assert health.stderr.count("has problems (run `aggregator check`)") == 1
    listed = runner.invoke(cli, [*base, "items", "--format", "json"])
    assert listed.exit_code == 0
    assert len(json.loads(listed.stdout)) == 1
    assert runner.invoke(cli, [*base, "stories"]).exit_code == 0
    assert runner.invoke(cli, [*base, "fetch"]).exit_code == 2  # fetching needs the config


def test_a_database_locked_too_long_is_a_clear_error(
    setup: tuple[CliRunner, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    runner, base = setup
    assert runner.invoke(cli, [*base, "fetch"]).exit_code == 0
    monkeypatch.setattr("aggregator.store.connection.BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(tmp_path / "store" / "news.db")
    other.execute("BEGIN IMMEDIATE")  # another writer that does not let go
    try:
        result = runner.invoke(cli, [*base, "fetch"])
    finally:
        other.rollback()
        other.close()
    assert result.exit_code == 2, result.output
    assert "another process has held its write lock" in result.stderr
    assert "stories rebuild" in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_query_cannot_create_files(setup: tuple[CliRunner, list[str]], tmp_path: Path) -> None:
    runner, base = setup
    runner.invoke(cli, [*base, "fetch"])
    for sql in (f"ATTACH '{tmp_path}/x.db' AS x", f"VACUUM INTO '{tmp_path}/y.db'"):
        result = runner.invoke(cli, [*base, "query", sql])
        assert result.exit_code == 2
        assert "queries only read this database" in result.stderr
    assert not (tmp_path / "x.db").exists()
    assert not (tmp_path / "y.db").exists()


def test_story_edits_need_an_existing_database(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "stories", "split", "1"])
    assert result.exit_code == 2
    assert "run `aggregator fetch` first" in result.stderr
    assert not db.exists()


def test_the_workers_table_counts_each_job_to_now_and_says_when_a_worker_was_heard() -> None:
    """A heartbeat says what a worker was doing when it was sent: the table adds the time
    since (on Redis's clock, `heard_s`), so a worker that has stopped beating stands out. A
    heartbeat that says nothing readable of it shows "?", never a fresh "0s ago"."""
    from aggregator.cli.worker_command import worker_rows

    def heartbeat(heard_s: object, doing: list[dict[str, object]]) -> dict[str, object]:
        return {
            "id": "host:1:ab",
            "queues": ["fetch", "extract"],
            "threads": 4,
            "started_at": "2026-12-01T07:00:00Z",
            "beat_at": "2026-12-01T08:00:04Z",  # the worker's own clock: not used
            "done": 3,
            "failed": 0,
            "doing": doing,
            **({} if heard_s is None else {"heard_s": heard_s}),
        }

    busy = heartbeat(6.0, [{"task": "extract_page", "subject": "https://e.org/a", "for_s": 5.0}])
    idle = heartbeat(0.2, [])
    unknown = heartbeat(None, [{"task": "fetch_page", "subject": "https://e.org/b", "for_s": "x"}])
    odd = heartbeat("soon", [])
    rows = worker_rows([busy, idle, unknown, odd])
    assert [(r["heard"], r["doing"]) for r in rows] == [
        ("6s ago", "extract_page https://e.org/a (11s)"),
        ("0s ago", "idle"),
        ("?", "fetch_page https://e.org/b (0s)"),
        ("?", "idle"),
    ]
