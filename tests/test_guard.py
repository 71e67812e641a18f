from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from aggregator import guard
from aggregator.errors import AddressRefused, FetchError


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("0.1.2.3", False),
        ("198.18.0.1", False),  # benchmarking
        ("192.0.2.1", False),  # documentation
        ("203.0.113.9", False),
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fe80::1%1", False),  # with a scope, as getaddrinfo gives link-local addresses
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),  # documentation
        ("2001::1", False),  # Teredo
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),  # deprecated IPv4-compatible
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("93.184.215.14", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2606:4700:4700::1111", True),
        ("2a00:1450:4001:80b::200e", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert guard.is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    "url", ["http://example.org/feed", "https://example.org/", "HTTPS://EXAMPLE.ORG/"]
)
def test_check_scheme_accepts_http_and_https(url: str) -> None:
    guard.check_scheme(url)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("file:///etc/passwd", "file:"),
        ("ftp://example.org/feed", "ftp:"),
        ("gopher://example.org/", "gopher:"),
        ("javascript:alert(1)", "javascript:"),
        ("data:text/plain,hi", "data:"),
        ("example.org/feed", "has no scheme"),
    ],
)
def test_check_scheme_refuses_others(url: str, scheme: str) -> None:
    with pytest.raises(AddressRefused, match="only http and https") as caught:
        guard.check_scheme(url)
    assert scheme in str(caught.value)
    assert caught.value.outcome == "address_refused"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/feed",
        "http://127.0.0.1:8080/feed",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://localhost/",  # resolved by the local resolver, no network needed
    ],
)
def test_check_host_refuses_private_targets(url: str) -> None:
    with pytest.raises(AddressRefused, match="allow_private_networks: true") as caught:
        asyncio.run(guard.check_host(url, allow_private=False))
    assert caught.value.url == url


def test_refusal_names_host_and_address() -> None:
    with pytest.raises(AddressRefused) as caught:
        asyncio.run(guard.check_host("http://169.254.169.254/x", allow_private=False))
    assert "169.254.169.254" in str(caught.value)
    assert "intranet feed" in str(caught.value)


@pytest.mark.parametrize("url", ["http://8.8.8.8/feed", "https://[2606:4700:4700::1111]/"])
def test_check_host_accepts_public_ip_literals(url: str) -> None:
    asyncio.run(guard.check_host(url, allow_private=False))


def test_check_host_allows_anything_when_private_networks_are_allowed() -> None:
    asyncio.run(guard.check_host("http://127.0.0.1/", allow_private=True))
    asyncio.run(guard.check_host("http://no-such-host.invalid/", allow_private=True))


def test_check_host_without_host_is_an_error() -> None:
    with pytest.raises(FetchError, match="names no host"):
        asyncio.run(guard.check_host("http:///feed", allow_private=False))


def _fake_resolver(
    monkeypatch: pytest.MonkeyPatch, answer: list[str] | socket.gaierror
) -> list[str]:
    """Make the event loop's getaddrinfo answer `answer`; returns the hosts asked for."""
    asked: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if isinstance(answer, socket.gaierror):
            raise answer
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in answer]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return asked


def test_check_host_resolves_names(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_resolver(monkeypatch, ["93.184.215.14"])
    asyncio.run(guard.check_host("https://Example.ORG:8443/feed", allow_private=False))
    assert asked == ["example.org"]


def test_check_host_refuses_when_any_address_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(AddressRefused, match=r"intranet\.example resolves to 10\.0\.0\.7"):
        asyncio.run(guard.check_host("http://intranet.example/rss", allow_private=False))


def test_check_host_reports_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with pytest.raises(FetchError, match=r"could not resolve host gone\.example") as caught:
        asyncio.run(guard.check_host("http://gone.example/rss", allow_private=False))
    assert type(caught.value) is FetchError
    assert caught.value.outcome == "network_error"


def test_check_address_refuses_what_is_not_an_address() -> None:
    with pytest.raises(AddressRefused):
        guard.check_address("http://x.example/", "x.example", "not-an-ip")
    guard.check_address("http://x.example/", "x.example", "8.8.8.8")
