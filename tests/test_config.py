from pathlib import Path

import pytest

from aggregator.config.loader import load_config, parse_config
from aggregator.errors import InvalidConfig

GOOD = """
settings:
  interval: 20m
  timeout: 45s
  max_page_size: 2MB
feeds:
  - name: tass-en
    url: https://tass.com/rss/v2.xml
    interval: 10m
    priority: 10
    tags: [wire]
  - name: partner-x
    url: https://partner.example/feed.xml
    extract: false
"""


def test_good_config_parses_with_defaults_filled_in() -> None:
    config = parse_config(GOOD)
    assert config.settings.interval_s == 1200
    assert config.settings.timeout_s == 45.0
    assert config.settings.max_page_bytes == 2 * 1024 * 1024
    assert config.settings.allow_private_networks is False
    tass, partner = config.feeds
    assert (tass.name, tass.interval_s, tass.priority, tass.tags) == ("tass-en", 600, 10, ("wire",))
    assert tass.line == 7
    assert partner.extract is False
    assert partner.interval_s is None


@pytest.mark.parametrize(
    ("text", "line", "feed", "words"),
    [
        (
            "feeds:\n  - name: a\n    url: https://a.org/f\n    intervall: 5m\n",
            4,
            "a",
            "did you mean 'interval'",
        ),
        ("settings:\n  intreval: 5m\nfeeds: []\n", 2, None, "unknown key 'intreval'"),
        (
            "feeds:\n  - name: a\n    url: https://a.org/f\n  - name: a\n    url: https://b.org/f\n",
            4,
            "a",
            "already used at line 2",
        ),
        ("feeds:\n  - name: a\n    url: ftp://a.org/f\n", 3, "a", "not an http(s) address"),
        ("feeds:\n  - name: a\n", 2, "a", "'url' is missing"),
        ("feeds:\n  - name: Tass EN\n    url: https://a.org/f\n", 2, "Tass EN", "lower-case"),
        (
            "feeds:\n  - name: a\n    url: https://a.org/f\n    interval: 10 minutes\n",
            4,
            "a",
            "not a duration",
        ),
        (
            "feeds:\n  - name: a\n    url: https://a.org/f\n    extract: maybe\n",
            4,
            "a",
            "not true or false",
        ),
        (
            "feeds:\n  - name: a\n    url: https://a.org/f\n    priority: high\n",
            4,
            "a",
            "not a whole number",
        ),
        ("settings:\n  max_page_size: huge\nfeeds: []\n", 2, None, "not a size"),
        ("feeds: {a: 1}\n", 1, None, "must be a list"),
        ("feeds:\n  - name: a\n\turl: x\n", 3, None, "not valid YAML"),
        ("- just\n- a list\n", 1, None, "must be a mapping"),
    ],
)
def test_bad_config_names_line_feed_and_fix(
    text: str, line: int, feed: str | None, words: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(text, path="feeds.yaml")
    problem = caught.value.problems[0]
    assert problem.line == line
    assert problem.feed == feed
    assert words in str(problem)
    assert str(problem).startswith(f"feeds.yaml:{line}")


def test_every_problem_is_listed_at_once() -> None:
    text = "settings:\n  intreval: 5m\nfeeds:\n  - name: a\n    url: nope\n  - name: B\n    url: https://b.org\n"
    with pytest.raises(InvalidConfig) as caught:
        parse_config(text)
    assert [p.line for p in caught.value.problems] == [2, 5, 6]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_feeds_yaml_is_valid() -> None:
    config = load_config(Path(__file__).parents[1] / "feeds.yaml")
    assert config.feeds[0].name == "tass-en"
    assert config.feeds[0].url == "https://tass.com/rss/v2.xml"
    assert len(config.feeds) >= 5


FEED = "feeds:\n  - name: a\n    url: https://a.org/f\n"


@pytest.mark.parametrize(
    ("setting", "maximum"),
    [
        ("interval: 99999999999d", "365d"),
        ("interval: 99999999999s", "365d"),
        ("min_interval: 366d", "365d"),
        ("max_interval: 9999d", "365d"),
        ("max_backoff: 400d", "365d"),
        ("dedup_window: 400d", "365d"),
        ("retention: 99999d", "3650d"),
        ("timeout: 2h", "1h"),
        ("connect_timeout: 3601s", "1h"),
        ("tick: 2h", "1h"),
        ("stop_timeout: 3601s", "3600s"),
        ("host_gap: 61s", "60s"),
        ("host_gap: 61000ms", "60s"),
        (f"host_gap: {'9' * 400}s", "60s"),  # inf as a float
        ("max_feed_size: 2GB", "1GB"),
        ("max_page_size: 99999999999999B", "1GB"),
        ("max_entries: 100001", "100000"),
        ("concurrency: 100000", "1000"),
        ("per_host: 1000", "100"),
        ("max_redirects: 31", "30"),
        ("batch: 1000000", "10000"),
    ],
)
def test_numbers_have_a_maximum_that_the_message_names(setting: str, maximum: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(f"settings:\n  {setting}\n{FEED}")
    (problem,) = caught.value.problems
    assert problem.line == 2
    key = setting.partition(":")[0]
    assert str(problem).startswith(f"feeds.yaml:2: settings.{key}: ")
    assert str(problem).endswith(f" is more than the maximum, {maximum}")


def test_the_maxima_themselves_are_allowed() -> None:
    settings = parse_config(
        "settings:\n  interval: 365d\n  host_gap: 60s\n  max_feed_size: 1GB\n  per_host: 100\n"
        + FEED
        + "    interval: 365d\n    priority: -1000000\n"
    ).settings
    assert (settings.interval_s, settings.host_gap_s, settings.max_feed_bytes) == (
        365 * 86400,
        60.0,
        1024**3,
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("    interval: 400d\n", "interval: '400d' is more than the maximum, 365d"),
        ("    priority: 100000000000000000000000\n", "from -1000000 to 1000000"),
    ],
)
def test_a_feeds_numbers_are_bounded_too(extra: str, words: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(FEED + extra)
    assert caught.value.problems[0].line == 4
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            'feeds:\n  - name: a\n    url: !!python/object/apply:os.system ["echo hi"]\n',
            3,
            "could not determine a constructor for the tag",
        ),
        ('feeds: !!python/object/apply:os.system ["echo hi"]\n', 1, "no !!tags"),
        ("settings:\n  database: !!python/name:os.system\n" + FEED, 2, "no !!tags"),
        (FEED + "    tags: [2026-02-30]\n", 4, "day is out of range"),
        ("feeds:\n  - name: a\n    url: 2026-02-30\n", 3, "day is out of range"),
        ("feeds:\n  - name: a\n    url: !!binary xx=\n", 3, "base64"),
    ],
)
def test_values_the_safe_loader_refuses_are_config_problems_with_a_line(
    text: str, line: int, words: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(text)
    (problem,) = caught.value.problems
    assert problem.line == line
    assert words in str(problem)
    assert "cannot read this value" in str(problem)


def test_absurdly_nested_yaml_is_a_config_problem() -> None:
    with pytest.raises(InvalidConfig, match="nested too deeply"):
        parse_config("feeds: " + "[" * 5000 + "]" * 5000)


@pytest.mark.parametrize(
    ("text", "database"),
    [
        ("settings:\n  database: news/x.db\n  intreval: 5m\nfeeds: nope\n", "news/x.db"),
        ("settings:\n  database: x.db\nfeeds:\n  - url: !!python/object:os.system {}\n", "x.db"),
        ("settings:\n  interval: 5m\nfeeds: []\n", None),
        ("settings:\n  database: [a, b]\n", None),
        ("settings: [\n", None),
        ("- a list\n", None),
    ],
)
def test_database_setting_is_read_leniently(
    tmp_path: Path, text: str, database: str | None
) -> None:
    from aggregator.config.loader import database_setting

    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    assert database_setting(path) == database
    assert database_setting(tmp_path / "absent.yaml") is None


def test_page_and_worker_memory_caps() -> None:
    """An article page may be 4 MB after decompression and a worker may hold 400 MB after a
    job, unless feeds.yaml says otherwise (engine/pool.py, engine/stages.py)."""
    defaults = parse_config("feeds: []\n").settings
    assert (defaults.max_page_bytes, defaults.worker_memory_limit_bytes) == (4 * 2**20, 400 * 2**20)
    settings = parse_config(
        "settings:\n  max_page_size: 8MB\n  worker_memory_limit: 1GB\nfeeds: []\n"
    ).settings
    assert (settings.max_page_bytes, settings.worker_memory_limit_bytes) == (8 * 2**20, 2**30)
    with pytest.raises(InvalidConfig, match="worker_memory_limit: 'lots' is not a size"):
        parse_config("settings:\n  worker_memory_limit: lots\nfeeds: []\n")
