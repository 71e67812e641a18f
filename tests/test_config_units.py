"""Durations and sizes in feeds.yaml carry their unit: a bare number is refused with the file,
line, column, key and the fix; a feed's own interval never goes below min_interval.

Real feeds.yaml files, read by `aggregator check`, `fetch` and `run` through click's runner.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from localserver import LocalServer

from aggregator.cli import cli
from aggregator.config.loader import load_config, parse_config
from aggregator.config.settings_keys import SETTING_KEYS
from aggregator.errors import InvalidConfig

PROJECT = Path(__file__).resolve().parents[1]
UNIT_KINDS = ("duration", "size", "seconds", "period")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(text: str) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(text, path="feeds.yaml")
    return [str(p) for p in caught.value.problems]


def test_check_names_file_line_column_key_and_fix(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "settings:\n"
        "  max_feed_size: 20\n"
        "feeds:\n"
        "  - name: tass-en\n"
        "    url: https://tass.com/rss/v2.xml\n"
        "    interval: 10\n",
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert f"{config}:2:18: settings.max_feed_size: 20 has no unit; write" in result.stderr
    assert "`max_feed_size: 20MB` (or 20B if you really mean bytes)" in result.stderr
    assert (
        f"{config}:6:15 (feed 'tass-en'): interval: 10 has no unit; write `interval: 10m`"
        " (or 10s if you really mean seconds)"
    ) in result.stderr
    assert "ok" not in result.stdout


@pytest.mark.parametrize("command", [["fetch"], ["run", "--workers", "0"]])
def test_fetch_and_run_refuse_to_start_with_the_same_message(
    command: list[str], server: LocalServer, tmp_path: Path
) -> None:
    server.add("/wire.xml", "<rss/>")
    config = write(
        tmp_path,
        "settings:\n  allow_private_networks: true\n  timeout: 30\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n",
    )
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
    checked = CliRunner().invoke(cli, [*base, "check"])
    started = CliRunner().invoke(cli, [*base, *command])
    assert started.exit_code == 2
    assert checked.stderr == started.stderr
    assert f"{config}:3:12: settings.timeout: 30 has no unit; write `timeout: 30s`" in (
        started.stderr
    )
    assert server.requests == []
    assert not (tmp_path / "news.db").exists()


@pytest.mark.parametrize(
    "key", sorted(k for k, (_, kind) in SETTING_KEYS.items() if kind in UNIT_KINDS)
)
def test_every_duration_and_size_setting_refuses_a_bare_number(key: str) -> None:
    (problem,) = problems(f"settings:\n  {key}: 7\nfeeds: []\n")
    column = len(f"  {key}: ") + 1
    assert problem.startswith(f"feeds.yaml:2:{column}: settings.{key}: 7 has no unit; write `")
    assert re.search(rf"write `{key}: 7[a-zA-Z]+`", problem)


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        ("'10'", "write `interval: 10m` (or 10s if you really mean seconds)"),  # quoted
        ("1.5", "write a whole number and a unit: 90s, 15m, 2h or 1d"),
    ],
)
def test_a_number_in_any_form_needs_its_unit(value: str, fix: str) -> None:
    (problem,) = problems(f"feeds:\n  - name: a\n    url: https://a.org/f\n    interval: {value}\n")
    assert problem.startswith("feeds.yaml:4:15 (feed 'a'): interval: ")
    assert problem.endswith(fix)


@pytest.mark.parametrize(
    ("setting", "fix"),
    [
        ("retention: 90", "write `retention: 90d` (or 90s if you really mean seconds)"),
        ("max_backoff: 6", "write `max_backoff: 6h` (or 6s if you really mean seconds)"),
        ("worker_memory_limit: 400", "`worker_memory_limit: 400MB` (or 400B if you really"),
        ("max_page_size: 1.5", "write a whole number and a unit: 512KB, 20MB or 1GB"),
        ("host_gap: 0.5", "write `host_gap: 0.5s`"),
        ("tick: 2", "write `tick: 2s`"),
    ],
)
def test_the_fix_offers_the_likely_unit_first(setting: str, fix: str) -> None:
    (problem,) = problems(f"settings:\n  {setting}\nfeeds: []\n")
    assert fix in problem


@pytest.mark.parametrize(
    ("setting", "field", "value"),
    [
        ("interval: 90s", "interval_s", 90),
        ("interval: 15m", "interval_s", 900),
        ("max_interval: 2h", "max_interval_s", 7200),
        ("retention: 1d", "retention_s", 86400),
        ("max_feed_size: 512KB", "max_feed_bytes", 512 * 1024),
        ("max_feed_size: 20MB", "max_feed_bytes", 20 * 1024**2),
        ("max_page_size: 1GB", "max_page_bytes", 1024**3),
        ("max_page_size: 4096B", "max_page_bytes", 4096),
        ("host_gap: 0", "host_gap_s", 0.0),  # none at all needs no unit
        ("host_gap: 500ms", "host_gap_s", 0.5),
        ("tick: 0.2s", "tick_s", 0.2),
        ("stop_timeout: 10s", "stop_timeout_s", 10.0),
        ("max_redirects: 5", "max_redirects", 5),  # a count is a bare number
    ],
)
def test_values_with_their_unit_are_read(setting: str, field: str, value: float) -> None:
    settings = parse_config(f"settings:\n  {setting}\nfeeds: []\n").settings
    assert getattr(settings, field) == value


def test_zero_is_still_no_duration() -> None:
    (problem,) = problems("settings:\n  interval: 0\nfeeds: []\n")
    assert "is not a duration" in problem


def test_a_feeds_interval_below_min_interval_names_both(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "settings:\n  min_interval: 5m\nfeeds:\n"
        "  - name: wire\n    url: https://wire.example/rss\n    interval: 10s\n"
        "  - name: partner\n    url: https://partner.example/rss\n    interval: 5m\n",
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert "1 problem(s)" in result.stderr  # 5m, the minimum itself, is allowed
    assert (
        f"{config}:6:15 (feed 'wire'): interval: 10s is shorter than settings.min_interval (5m)"
    ) in result.stderr
    assert "write `interval: 5m` or more, or lower settings.min_interval" in result.stderr


def test_the_default_min_interval_holds_and_can_be_lowered() -> None:
    feed = "feeds:\n  - {name: wire, url: 'https://wire.example/rss', interval: 1m}\n"
    (problem,) = problems(feed)
    assert "interval: 1m is shorter than settings.min_interval (5m)" in problem
    assert problem.startswith("feeds.yaml:2:")
    lowered = parse_config("settings:\n  min_interval: 1m\n" + feed)
    assert lowered.feeds[0].interval_s == 60


def test_every_problem_is_listed_with_its_column() -> None:
    found = problems(
        "settings:\n  timeout: 30\n  max_page_size: 4\nfeeds:\n"
        "  - name: a\n    url: https://a.org/f\n    interval: 15\n"
    )
    assert [p.split(": ", 1)[0] for p in found] == [
        "feeds.yaml:2:12",
        "feeds.yaml:3:18",
        "feeds.yaml:7:15 (feed 'a')",
    ]


def readme_feeds_yaml() -> str:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## feeds.yaml\n", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_and_the_shipped_file_load() -> None:
    example = parse_config(readme_feeds_yaml(), path="README.md")
    assert example.settings.max_feed_bytes == 20 * 1024**2
    assert example.feeds[0].interval_s == 600
    shipped = load_config(PROJECT / "feeds.yaml")
    assert all(f.interval_s is None or f.interval_s >= 300 for f in shipped.feeds)
