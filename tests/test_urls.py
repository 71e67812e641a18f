import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.urls import canonical_url


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed&id=7", "https://example.com/a?id=7"),
        ("https://example.com/a?fbclid=x&gclid=y&mc_cid=z&mc_eid=w", "https://example.com/a"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?at_medium=RSS&at_campaign=KARANGA", "https://example.com/a"),
        ("https://example.com/%7Euser", "https://example.com/~user"),
        ("https://bücher.de/x", "https://xn--bcher-kva.de/x"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("ftp://example.com/a", None),
        ("javascript:alert(1)", None),
        ("/relative/only", None),
        ("https://example.com:99999/", None),
        ("http://a b.example/x", None),
        ('http://"quoted".example/', None),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
    ],
)
def test_canonical_url(url: str, canonical: str | None) -> None:
    assert canonical_url(url) == canonical


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_canonical_url_never_raises_and_is_idempotent(text: str) -> None:
    once = canonical_url(text)
    if once is not None:
        assert canonical_url(once) == once


@given(
    st.sampled_from(["http", "https", "HTTPS"]),
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,5}){1,2}", fullmatch=True),
    st.lists(st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True), max_size=4),
    st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.text(max_size=8), max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_tracking_parameters_and_order_do_not_change_identity(
    scheme: str, host: str, path: list[str], params: dict[str, str]
) -> None:
    from urllib.parse import urlencode

    base = f"{scheme}://{host.upper()}/{'/'.join(path)}"
    plain = canonical_url(f"{base}?{urlencode(sorted(params.items()))}")
    tracked = dict(params, utm_source="feed", fbclid="abc")
    shuffled = canonical_url(f"{base}?{urlencode(sorted(tracked.items(), reverse=True))}#top")
    assert plain == shuffled
