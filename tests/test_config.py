from pathlib import Path

import pytest

from aggregator.config import load_config, parse_config
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
