"""The address guard: only public http(s) targets are fetched unless the user allows otherwise.

A feed URL (or a redirect, or an article link inside a feed) must not make the aggregator talk
to the machine it runs on, the office network or a cloud metadata service. `fetch` calls these
checks on every redirect hop; its connection layer (transport.py) resolves each host with
`public_addresses` and connects only to an address that passed.

The policy (`NetworkPolicy`, from `allow_networks` and `allow_private_networks` in
feeds.yaml) sorts every address into one of four kinds (`address_kind`):

- public: always fetched;
- private (`PRIVATE_NETWORKS`: loopback, RFC 1918, carrier-grade NAT, IPv6 unique local):
  fetched when `allow_private_networks: true` or a listed network holds it;
- other non-public (this-network, documentation, benchmarking, multicast, reserved...):
  fetched only when a listed network holds it;
- link-local and cloud metadata (`METADATA_NETWORKS`, `METADATA_ADDRESSES`): fetched only when
  `allow_networks` lists that very address (a /32 or /128), never through a broader network
  and never through `allow_private_networks`, which a metadata service would otherwise ride.

IPv4-mapped, 6to4 and NAT64 addresses are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from aggregator.errors import AddressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What `allow_private_networks: true` stands for: the networks an intranet feed lives on.
PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",  # loopback
        "100.64.0.0/10",  # carrier-grade NAT, and overlay VPNs such as Tailscale
        "::1/128",
        "fc00::/7",  # unique local
    )
)
# Refused even where private networks are allowed, unless listed by their exact address.
METADATA_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",  # link-local: AWS, GCP, Azure, Oracle and DigitalOcean metadata
        "fe80::/10",  # link-local
    )
)
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "fd00:ec2::254",  # AWS metadata over IPv6 (inside fc00::/7)
        "100.100.100.200",  # Alibaba Cloud metadata (inside 100.64.0.0/10)
        "168.63.129.16",  # Azure WireServer (a public address, reachable only inside Azure)
    )
)

ALLOW_HINT = (
    "if this is an intranet feed, list its network in allow_networks in feeds.yaml settings "
    "or set allow_private_networks: true"
)

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


def plain_address(ip: IPAddress) -> IPAddress:
    """The address as it is judged: the IPv4 address an IPv6 one carries, else without any
    %scope."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return embedded
        return ipaddress.IPv6Address(int(ip))
    return ip


def _in_any(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(ip in net for net in networks if net.version == ip.version)


def is_metadata_address(ip: IPAddress) -> bool:
    """Link-local or a cloud metadata service's address."""
    ip = plain_address(ip)
    return ip in METADATA_ADDRESSES or _in_any(ip, METADATA_NETWORKS)


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a globally reachable unicast address (and no metadata service)."""
    ip = plain_address(ip)
    if ip in METADATA_ADDRESSES or _in_any(ip, _BLOCKED):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class AddressKind(StrEnum):
    """What the policy makes of an address (see the module's docstring)."""

    PUBLIC = "public"
    PRIVATE = "private"
    OTHER = "other non-public"
    METADATA = "link-local or cloud metadata"


def address_kind(ip: IPAddress) -> AddressKind:
    ip = plain_address(ip)
    if is_metadata_address(ip):
        return AddressKind.METADATA
    if is_public_address(ip):
        return AddressKind.PUBLIC
    if _in_any(ip, PRIVATE_NETWORKS):
        return AddressKind.PRIVATE
    return AddressKind.OTHER


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Which non-public addresses may be fetched. The default allows none."""

    networks: tuple[IPNetwork, ...] = ()
    # The /32 and /128 among `networks`: the only way to a metadata address.
    exact: frozenset[IPAddress] = frozenset()

    @classmethod
    def of(
        cls, allow_networks: Iterable[str] = (), *, allow_private_networks: bool = False
    ) -> NetworkPolicy:
        """From feeds.yaml's settings (networks as config validated them: "10.0.0.0/8")."""
        listed = tuple(ipaddress.ip_network(net) for net in allow_networks)
        exact = frozenset(
            plain_address(net.network_address)
            for net in listed
            if net.prefixlen == net.max_prefixlen
        )
        networks = (*PRIVATE_NETWORKS, *listed) if allow_private_networks else listed
        return cls(networks=networks, exact=exact)

    def allows(self, ip: IPAddress) -> bool:
        """The one decision: may a connection go to `ip`?"""
        ip = plain_address(ip)
        kind = address_kind(ip)
        if kind is AddressKind.PUBLIC:
            return True
        if kind is AddressKind.METADATA:
            return ip in self.exact
        return _in_any(ip, self.networks)


PUBLIC_ONLY = NetworkPolicy()


def check_scheme(url: str) -> None:
    """Refuse anything but http and https (file:, ftp:, data:, javascript: ...)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        what = f"'{scheme}:' is refused" if scheme else f"{url!r} has no scheme"
        raise AddressRefused(f"only http and https addresses can be fetched; {what}", url=url)


def _refusal(url: str, host: str, address: str, ip: IPAddress | None) -> AddressRefused:
    where = f"host {host}" if host == address else f"host {host} resolves to {address}, which"
    kind = None if ip is None else address_kind(ip)
    if ip is not None and kind is AddressKind.METADATA:
        exact = f"{plain_address(ip)}/{plain_address(ip).max_prefixlen}"
        why = (
            f"is a {kind} address, refused even with allow_private_networks: true; only if "
            f"the feed really lives there, list exactly {exact} in allow_networks"
        )
    elif ip is not None and kind is AddressKind.OTHER:
        why = (
            "is not a public address, nor a private one (allow_private_networks does not "
            "cover it); only if the feed really lives there, list its network in allow_networks"
        )
    else:
        why = f"is not a public address; {ALLOW_HINT}"
    return AddressRefused(f"refused to fetch {url}: {where} {why}", url=url)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def check_address(url: str, host: str, address: str, policy: NetworkPolicy = PUBLIC_ONLY) -> None:
    """Refuse `address` (what `host` resolved or connected to) unless `policy` allows it."""
    ip = _parse_ip(address)
    if ip is None or not policy.allows(ip):
        raise _refusal(url, host, address, ip)


class NotPublic(Exception):
    """A host resolved to an address the policy refuses; the caller says it with the URL."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(host, address)
        self.host, self.address = host, address


async def public_addresses(
    host: str, port: int | None = None, policy: NetworkPolicy = PUBLIC_ONLY
) -> list[str]:
    """The host's addresses, in the resolver's order, refusing (NotPublic) if ANY of them is
    neither public nor allowed by `policy`: the connection may go to whichever one comes
    first. DNS failures raise OSError (socket.gaierror) or UnicodeError."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))
    for address in addresses:
        ip = _parse_ip(address)
        if ip is None or not policy.allows(ip):
            raise NotPublic(host, address)
    return addresses
