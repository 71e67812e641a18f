"""Redirects, and the address guard on the first request and on every hop, against a real
HTTP server on 127.0.0.1 (see localserver.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import replace
from typing import Any

import pytest
from fetch_helpers import LOCAL, RSS, fetch
from localserver import LocalServer

from aggregator.errors import AddressRefused, HTTPStatusError, TooManyRedirects
from aggregator.fetch import address_guard
from aggregator.models import Settings


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [
        ((301,), "/hop1"),
        ((308,), "/hop1"),
        ((302,), None),
        ((307,), None),
        ((303,), None),
        ((301, 301), "/hop2"),
        ((301, 302), "/hop1"),  # permanent up to the temporary hop
        ((302, 301), None),  # a temporary hop first: the feed's own URL stays
    ],
)
def test_redirects_are_followed_and_permanent_ones_recorded(
    server: LocalServer, statuses: tuple[int, ...], permanent: str | None
) -> None:
    for hop, status in enumerate(statuses):
        server.redirect(f"/hop{hop}", server.url(f"/hop{hop + 1}"), status)
    final = f"/hop{len(statuses)}"
    server.add(final, RSS)
    result = fetch(server.url("/hop0"))
    assert result.body == RSS.encode()
    assert result.final_url == server.url(final)
    assert result.permanent_redirect == (permanent and server.url(permanent))


def test_relative_location_is_resolved(server: LocalServer) -> None:
    server.redirect("/news/old.xml", "../feeds/new.xml", 302)
    server.add("/feeds/new.xml", RSS)
    assert fetch(server.url("/news/old.xml")).final_url == server.url("/feeds/new.xml")


def test_redirect_loop(server: LocalServer) -> None:
    server.redirect("/a", server.url("/b"))
    server.redirect("/b", "/a")
    with pytest.raises(TooManyRedirects, match=r"redirected 6 times \(loop between") as caught:
        fetch(server.url("/a"), replace(LOCAL, max_redirects=5))
    assert caught.value.outcome == "redirect_error"
    assert server.hits("/a") + server.hits("/b") == 6


def test_too_many_redirects(server: LocalServer) -> None:
    for hop in range(10):
        server.redirect(f"/r{hop}", f"/r{hop + 1}", 302)
    with pytest.raises(TooManyRedirects, match="redirected 3 times, more than the limit of 2"):
        fetch(server.url("/r0"), replace(LOCAL, max_redirects=2))


def test_redirect_without_location(server: LocalServer) -> None:
    server.add("/feed", status=302)
    with pytest.raises(HTTPStatusError, match="no Location header"):
        fetch(server.url("/feed"))


def test_redirect_to_file_url_is_refused(server: LocalServer) -> None:
    server.redirect("/feed", "file:///etc/passwd")
    with pytest.raises(AddressRefused, match="'file:' is refused"):
        fetch(server.url("/feed"))


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the guard pass the test server itself, so redirects from it can be checked."""
    real = address_guard.is_public_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(address_guard, "is_public_address", lambda ip: ip == server_ip or real(ip))


@pytest.mark.usefixtures("loopback_is_public")
@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin", "http://[::1]/"],
)
def test_redirect_to_private_address_is_refused(server: LocalServer, target: str) -> None:
    server.redirect("/feed", target, 302)
    server.add("/ok", RSS)
    settings = Settings(allow_private_networks=False)
    assert fetch(server.url("/ok"), settings).status == 200  # the server itself passes
    with pytest.raises(AddressRefused, match="allow_private_networks: true") as caught:
        fetch(server.url("/feed"), settings)
    assert caught.value.url == target


def test_private_address_is_refused_before_any_request(server: LocalServer) -> None:
    server.add("/feed", RSS)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        fetch(server.url("/feed"), Settings(allow_private_networks=False))
    assert server.requests == []


def fooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection layer's look-up answers without checking, as if DNS had lied."""

    async def unchecked(host: str, port: int | None = None, policy: object = None) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
        return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))

    monkeypatch.setattr(address_guard, "public_addresses", unchecked)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_address_is_refused_before_connecting(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """The connection layer resolves the name itself, once, and connects only to an address
    that passed: nothing reaches a private one, whatever an earlier look-up said."""
    server.add("/feed", RSS)
    url = server.url("/feed").replace("127.0.0.1", host)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1") as caught:
        fetch(url, Settings(allow_private_networks=False))
    assert caught.value.url == url
    assert server.requests == []


def test_connected_peer_is_checked_too(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Belt and braces: were the connection fooled as well, the address it reached is checked
    before the answer is read."""
    fooled(monkeypatch)
    server.add("/feed", RSS)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        fetch(server.url("/feed"), Settings(allow_private_networks=False))


def test_a_name_is_connected_at_the_address_checked(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to an address the guard passed, the server still sees the name;
    an address that does not answer (nothing listens on ::1) gives way to the next."""
    monkeypatch.setattr(address_guard, "is_public_address", lambda ip: ip.is_loopback)
    asked: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host != "wire.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (family, socket.SOCK_STREAM, 6, "", (ip, port))
            for family, ip in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1"))
        ]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    server.add("/feed", RSS)
    url = server.url("/feed").replace("127.0.0.1", "wire.example")
    assert fetch(url, Settings(allow_private_networks=False)).status == 200
    assert "wire.example" in asked
    (request,) = server.requests
    assert request.headers["host"] == url.split("/")[2]
