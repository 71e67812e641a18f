"""Which addresses may be fetched: `allow_networks`, its alias `allow_private_networks`, and
link-local / cloud-metadata addresses refused unless listed by their exact address.

The decision is a pure function (`NetworkPolicy.allows`), tested as a table: nothing listens on
a metadata address here. Then the same policy end to end, from feeds.yaml through
`aggregator fetch` to real servers on 127.0.0.1 and 127.0.0.2, redirects included.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fetch_helpers import RSS, fetch
from localserver import LocalServer

from aggregator.cli import cli
from aggregator.config.loader import parse_config
from aggregator.errors import AddressRefused, InvalidConfig
from aggregator.fetch.address_guard import AddressKind, NetworkPolicy, address_kind
from aggregator.models import Settings

POLICIES = {
    "default": NetworkPolicy.of(),
    "private": NetworkPolicy.of(allow_private_networks=True),
    "loopback-one": NetworkPolicy.of(["127.0.0.1/32"]),
    "link-local-net": NetworkPolicy.of(["169.254.0.0/16", "fe80::/10"]),
    "everything": NetworkPolicy.of(["0.0.0.0/0", "::/0"], allow_private_networks=True),
    "metadata-exact": NetworkPolicy.of(
        ["169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32", "fe80::1/128"]
    ),
    "documentation": NetworkPolicy.of(["192.0.2.0/24"]),
}
# address -> the policies above that allow it (every other one refuses it)
ALLOWED_BY: dict[str, set[str]] = {
    "8.8.8.8": set(POLICIES),
    "2606:4700:4700::1111": set(POLICIES),
    "127.0.0.1": {"private", "loopback-one", "everything"},
    "127.0.0.2": {"private", "everything"},
    "::1": {"private", "everything"},
    "::ffff:127.0.0.1": {"private", "loopback-one", "everything"},  # judged as its IPv4
    "64:ff9b::7f00:1": {"private", "loopback-one", "everything"},  # NAT64 of 127.0.0.1
    "10.1.2.3": {"private", "everything"},
    "172.16.0.1": {"private", "everything"},
    "192.168.1.20": {"private", "everything"},
    "100.64.0.1": {"private", "everything"},  # carrier-grade NAT
    "fd12:3456::1": {"private", "everything"},  # unique local
    # Link-local and metadata: only the exact address, never a network, never the alias.
    "169.254.169.254": {"metadata-exact"},
    "::ffff:169.254.169.254": {"metadata-exact"},
    "64:ff9b::a9fe:a9fe": {"metadata-exact"},  # NAT64 of 169.254.169.254
    "169.254.169.253": set(),
    "169.254.1.1": set(),
    "fe80::1": {"metadata-exact"},
    "fe80::1%2": {"metadata-exact"},  # with a scope, as getaddrinfo gives it
    "fe80::2": set(),
    "fd00:ec2::254": {"metadata-exact"},  # inside fc00::/7, still refused by the alias
    "100.100.100.200": {"metadata-exact"},  # inside 100.64.0.0/10, likewise
    "168.63.129.16": set(),  # Azure's WireServer: a public address, refused all the same
    # Other non-public: the alias does not cover them, a listed network does.
    "192.0.2.1": {"documentation", "everything"},
    "0.0.0.0": {"everything"},
    "224.0.0.1": {"everything"},
}


@pytest.mark.parametrize("address", list(ALLOWED_BY))
@pytest.mark.parametrize("policy", list(POLICIES))
def test_the_policy_decides_every_kind_of_address(address: str, policy: str) -> None:
    allowed = POLICIES[policy].allows(ipaddress.ip_address(address))
    assert allowed is (policy in ALLOWED_BY[address])


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.215.14", AddressKind.PUBLIC),
        ("127.0.0.1", AddressKind.PRIVATE),
        ("fc00::1", AddressKind.PRIVATE),
        ("100.127.255.254", AddressKind.PRIVATE),
        ("169.254.169.254", AddressKind.METADATA),
        ("fe80::abcd", AddressKind.METADATA),
        ("fd00:ec2::254", AddressKind.METADATA),
        ("100.100.100.200", AddressKind.METADATA),
        ("168.63.129.16", AddressKind.METADATA),
        ("198.18.0.1", AddressKind.OTHER),
        ("ff02::1", AddressKind.OTHER),
    ],
)
def test_address_kinds(address: str, kind: AddressKind) -> None:
    assert address_kind(ipaddress.ip_address(address)) is kind


# --- feeds.yaml ---------------------------------------------------------------------------


def test_allow_networks_is_read_and_normalised() -> None:
    config = parse_config(
        "settings:\n"
        "  allow_networks: [127.0.0.1/32, 10.0.0.0/8, '::1', fe80::1, FD00::/8]\n"
        "feeds: []\n"
    )
    assert config.settings.allow_networks == (
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
        "fe80::1/128",
        "fd00::/8",
    )
    assert config.settings.allow_private_networks is False


@pytest.mark.parametrize(
    ("value", "line", "said"),
    [
        ("\n    - 10.0.0.0/8\n    - banana", 4, "'banana' does not appear to be an IPv4"),
        ("\n    - 10.0.0.1/8", 3, "write 10.0.0.0/8 for the network or 10.0.0.1/32"),
        ("\n    - 10.0.0.0/33", 3, "does not appear to be"),
        ("\n    - 7", 3, "7 is not a network"),
        (" 10.0.0.0/8", 2, "is not a list of networks"),
    ],
)
def test_an_invalid_network_is_a_config_error_on_its_line(value: str, line: int, said: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(f"settings:\n  allow_networks:{value}\nfeeds: []\n")
    (problem,) = caught.value.problems
    assert problem.line == line
    assert said in str(problem)
    assert "settings.allow_networks" in str(problem)


def test_aggregator_check_names_the_line_of_a_bad_network(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_networks:\n    - 10.0.0.0/8\n    - 192.168.1.300/32\n"
        "feeds:\n  - name: wire\n    url: https://example.org/feed.xml\n"
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert f"{config}:4: settings.allow_networks: '192.168.1.300/32'" in result.stderr


# --- end to end: real servers on 127.0.0.1 and 127.0.0.2 -----------------------------------


@pytest.fixture
def second_loopback() -> Iterator[LocalServer]:
    """A server on 127.0.0.2: refusing it must be the policy, not a closed port."""
    other = LocalServer("127.0.0.2").start()
    try:
        yield other
    finally:
        other.stop()


ONE_ADDRESS = Settings(allow_networks=("127.0.0.1/32",), host_gap_s=0)


def test_a_listed_address_passes_and_its_neighbour_is_refused(
    server: LocalServer, second_loopback: LocalServer
) -> None:
    server.add("/feed", RSS)
    second_loopback.add("/feed", RSS)
    assert fetch(server.url("/feed"), ONE_ADDRESS).status == 200
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.2 is not a public address") as caught:
        fetch(second_loopback.url("/feed"), ONE_ADDRESS)
    assert "allow_networks" in str(caught.value)
    assert second_loopback.requests == []  # refused before connecting
    # The alias allows both; the default neither.
    private = Settings(allow_private_networks=True, host_gap_s=0)
    assert fetch(second_loopback.url("/feed"), private).status == 200
    with pytest.raises(AddressRefused):
        fetch(server.url("/feed"), Settings(host_gap_s=0))


def test_every_redirect_hop_is_held_to_the_list(
    server: LocalServer, second_loopback: LocalServer
) -> None:
    second_loopback.add("/feed", RSS)
    server.redirect("/moved", second_loopback.url("/feed"), 302)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.2") as caught:
        fetch(server.url("/moved"), ONE_ADDRESS)
    assert caught.value.url == second_loopback.url("/feed")
    assert server.hits("/moved") == 1
    assert second_loopback.requests == []
    both = Settings(allow_networks=("127.0.0.1/32", "127.0.0.2/32"), host_gap_s=0)
    assert fetch(server.url("/moved"), both).final_url == second_loopback.url("/feed")


def test_metadata_stays_refused_on_a_redirect_even_with_private_networks(
    server: LocalServer,
) -> None:
    server.redirect("/moved", "http://169.254.169.254/latest/meta-data/", 302)
    for settings in (
        Settings(allow_private_networks=True, host_gap_s=0),
        Settings(allow_networks=("127.0.0.0/8", "169.254.0.0/16"), host_gap_s=0),
    ):
        with pytest.raises(AddressRefused, match=r"list exactly 169\.254\.169\.254/32"):
            fetch(server.url("/moved"), settings)


def test_feeds_yaml_allow_networks_through_aggregator_fetch(
    server: LocalServer, second_loopback: LocalServer, tmp_path: Path
) -> None:
    rss = (
        "<rss version='2.0'><channel><title>Wire</title><item><title>One</title>"
        "<link>http://news.example/one</link><guid>1</guid></item></channel></rss>"
    )
    server.add("/wire.xml", rss)
    second_loopback.add("/wire.xml", rss)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_networks: [127.0.0.1/32]\n  host_gap: 0\n  extract: false\n"
        f"feeds:\n  - name: listed\n    url: {server.url('/wire.xml')}\n"
        f"  - name: neighbour\n    url: {second_loopback.url('/wire.xml')}\n"
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "fetch"])
    assert result.exit_code == 1  # one feed failed
    assert "listed: 1 entries, 1 new" in result.stderr
    assert "neighbour: address_refused: refused to fetch" in result.stderr
    assert second_loopback.requests == []
