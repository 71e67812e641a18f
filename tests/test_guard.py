from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from aggregator.errors import AddressRefused
from aggregator.fetch import address_guard


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
    assert address_guard.is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    "url", ["http://example.org/feed", "https://example.org/", "HTTPS://EXAMPLE.ORG/"]
)
def test_check_scheme_accepts_http_and_https(url: str) -> None:
    address_guard.check_scheme(url)


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
        address_guard.check_scheme(url)
    assert scheme in str(caught.value)
    assert caught.value.outcome == "address_refused"


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", None),
        ("127.0.0.1", 8080),
        ("10.0.0.5", None),
        ("169.254.169.254", None),
        ("::1", 8080),
        ("::ffff:127.0.0.1", None),
        ("fe80::1", None),
        ("0.0.0.0", None),
        ("localhost", None),  # resolved by the local resolver, no network needed
    ],
)
def test_public_addresses_refuses_private_targets(host: str, port: int | None) -> None:
    with pytest.raises(address_guard.NotPublic) as caught:
        asyncio.run(address_guard.public_addresses(host, port))
    assert caught.value.host == host


def test_refusal_names_host_and_address() -> None:
    url, address = "http://169.254.169.254/x", "169.254.169.254"
    with pytest.raises(AddressRefused, match="allow_private_networks: true") as caught:
        address_guard.check_address(url, address, address)
    assert address in str(caught.value)
    assert "list exactly 169.254.169.254/32 in allow_networks" in str(caught.value)
    assert caught.value.url == url


def test_private_refusal_names_both_ways_to_allow_it() -> None:
    url = "http://10.0.0.5/feed"
    with pytest.raises(AddressRefused, match="allow_private_networks: true") as caught:
        address_guard.check_address(url, "intranet.example", "10.0.0.5")
    assert "resolves to 10.0.0.5" in str(caught.value)
    assert "intranet feed" in str(caught.value)
    assert "allow_networks" in str(caught.value)


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_accepts_public_ip_literals(host: str) -> None:
    assert asyncio.run(address_guard.public_addresses(host)) == [host]


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


def test_public_addresses_resolves_names(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_resolver(monkeypatch, ["93.184.215.14"])
    assert asyncio.run(address_guard.public_addresses("example.org", 8443)) == ["93.184.215.14"]
    assert asked == ["example.org"]


def test_public_addresses_refuses_when_any_address_is_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_resolver(monkeypatch, ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(address_guard.NotPublic) as caught:
        asyncio.run(address_guard.public_addresses("intranet.example"))
    assert (caught.value.host, caught.value.address) == ("intranet.example", "10.0.0.7")


def test_public_addresses_lets_dns_failure_through(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with pytest.raises(socket.gaierror):
        asyncio.run(address_guard.public_addresses("gone.example"))


def test_check_address_refuses_what_is_not_an_address() -> None:
    with pytest.raises(AddressRefused):
        address_guard.check_address("http://x.example/", "x.example", "not-an-ip")
    address_guard.check_address("http://x.example/", "x.example", "8.8.8.8")
