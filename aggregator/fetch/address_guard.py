"""The address guard: only public http(s) targets are fetched unless the user allows otherwise.

A feed URL (or a redirect, or an article link inside a feed) must not make the aggregator talk
to the machine it runs on, the office network or a cloud metadata service. `fetch` calls these
checks on every redirect hop; its connection layer (public_transport.py) resolves each host
with `public_addresses` and connects only to an address that passed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aggregator.errors import AddressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_HINT = "set allow_private_networks: true in feeds.yaml settings if this is an intranet feed"

# Explicit on top of the stdlib's flags, whose ranges changed between Python patch releases.
_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, where cloud metadata services live
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a globally reachable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        ip = ipaddress.IPv6Address(int(ip))  # drop any %scope: compare plain addresses
    if any(ip in net for net in _BLOCKED if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_scheme(url: str) -> None:
    """Refuse anything but http and https (file:, ftp:, data:, javascript: ...)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        what = f"'{scheme}:' is refused" if scheme else f"{url!r} has no scheme"
        raise AddressRefused(f"only http and https addresses can be fetched; {what}", url=url)


def _refusal(url: str, host: str, address: str) -> AddressRefused:
    where = f"host {host}" if host == address else f"host {host} resolves to {address}, which"
    return AddressRefused(
        f"refused to fetch {url}: {where} is not a public address; {ALLOW_HINT}", url=url
    )


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def check_address(url: str, host: str, address: str) -> None:
    """Refuse `address` (what `host` resolved or connected to) unless it is public."""
    ip = _parse_ip(address)
    if ip is None or not is_public_address(ip):
        raise _refusal(url, host, address)


class NotPublic(Exception):
    """A host resolved to an address that is not public; the caller says it with the URL."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(host, address)
        self.host, self.address = host, address


async def public_addresses(host: str, port: int | None = None) -> list[str]:
    """The host's addresses, in the resolver's order, refusing (NotPublic) if ANY of them is
    not public: the connection may go to whichever one comes first. DNS failures raise
    OSError (socket.gaierror) or UnicodeError."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))
    for address in addresses:
        ip = _parse_ip(address)
        if ip is None or not is_public_address(ip):
            raise NotPublic(host, address)
    return addresses
