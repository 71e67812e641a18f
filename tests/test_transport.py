"""The guarded connection layer (fetch/transport.py) answers and fails as httpx's own
transport does: the same errors reach fetch/client.py, whichever one is in use."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace

import httpcore
import httpx
import pytest
from fetch_helpers import LOCAL, MB, RSS, fetch
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.errors import FetchError
from aggregator.fetch import address_guard, transport
from aggregator.models import FetchResult

GUARDED = replace(LOCAL, allow_private_networks=False)


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard stays on, but lets the test server on 127.0.0.1 through."""
    real = address_guard.is_public_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(address_guard, "is_public_address", lambda ip: ip == server_ip or real(ip))


def _both(url: str) -> tuple[str, str]:
    """What fetching `url` raises, as 'Type: message', with httpx's transport, then ours."""
    said = []
    for settings in (LOCAL, GUARDED):
        with pytest.raises(FetchError) as caught:
            fetch(url, settings)
        said.append(f"{type(caught.value).__name__}: {caught.value}")
    return said[0], said[1]


@pytest.mark.usefixtures("loopback_is_public")
def test_an_answer_is_the_same_through_either_transport(server: LocalServer) -> None:
    server.add("/feed", RSS, etag='"v1"')
    plain, guarded = fetch(server.url("/feed")), fetch(server.url("/feed"), GUARDED)

    def seen(result: FetchResult) -> tuple[object, ...]:
        headers = tuple(h for h in result.headers if h[0] != "date")
        return result.status, result.body, result.etag, result.final_url, headers

    assert seen(guarded) == seen(plain)


@pytest.mark.usefixtures("loopback_is_public")
def test_connection_refused_is_said_the_same() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/feed"
    plain, guarded = _both(url)
    assert guarded == plain
    assert "connection refused by host 127.0.0.1" in guarded


@pytest.mark.usefixtures("loopback_is_public")
def test_broken_headers_are_said_the_same(server: LocalServer) -> None:
    def huge_header(request: RecordedRequest, writer: ResponseWriter) -> None:
        writer.send_status(200)
        writer.send_header("X-Padding", "x" * MB)
        writer.end_headers()
        writer.write(b"ok")

    server.add_handler("/feed", huge_header)
    plain, guarded = _both(server.url("/feed"))
    assert guarded == plain
    assert "oversized or malformed headers" in guarded


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpcore.ConnectTimeout, httpx.ConnectTimeout),
        (httpcore.ReadTimeout, httpx.ReadTimeout),
        (httpcore.PoolTimeout, httpx.PoolTimeout),
        (httpcore.ConnectError, httpx.ConnectError),
        (httpcore.ReadError, httpx.ReadError),
        (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
        (httpcore.LocalProtocolError, httpx.LocalProtocolError),
        (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    ],
)
def test_httpcore_errors_become_the_most_specific_httpx_error(
    raised: type[Exception], expected: type[Exception]
) -> None:
    with pytest.raises(httpx.TransportError) as caught, transport._as_httpx_errors():
        raise raised("words")
    assert type(caught.value) is expected
    assert str(caught.value) == "words"
    assert isinstance(caught.value.__cause__, raised)


def test_other_errors_go_up_as_they_are() -> None:
    with pytest.raises(address_guard.NotPublic), transport._as_httpx_errors():
        raise address_guard.NotPublic("intranet.example", "10.0.0.7")
