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
    assert "Remove the feed from feeds.yaml" in health["broken"]["advice"]
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
