"""Connections only to public addresses, made to the very address that was checked.

fetch.py installs this connection layer unless `allow_private_networks` is set: it is where
hosts are resolved and checked, so a refused host is refused before a byte of the request is
sent, and a pooled connection is not resolved again.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from aggregator import guard


class PublicOnly(httpcore.AsyncNetworkBackend):
    """Connects to public addresses only, and to the very address it checked.

    Were a host checked and then resolved again to connect, a name whose DNS answer changes
    in between (DNS rebinding) would lead anywhere. Here the host is resolved once, every
    address checked, and the connection made to a checked address;
    httpcore still gives TLS the host name (start_tls server_hostname) and httpx the Host
    header, so certificates and virtual hosts work as before.
    """

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:  # guard.NotPublic goes up as it is: fetch.py says it with the URL
            addresses = await guard.public_addresses(host, port)
        except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
            raise httpcore.ConnectError(f"could not resolve host {host}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"no address for host {host}")
        for address in addresses:  # in the resolver's order, as a plain connect would
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("only TCP connections are made")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def public_only_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx 0.28 takes no network backend (encode/httpx#3749, open): the transport gets a
    # pool built as its own is, with ours. httpcore's network backends are public API.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=PublicOnly(),
    )
    return transport
