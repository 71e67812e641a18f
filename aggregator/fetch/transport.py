"""Connections only to addresses the guard allows, made to the very address that was checked.

client.py always installs this connection layer, with the policy from `allow_networks` and
`allow_private_networks` (metadata addresses stay refused even when private networks are
allowed): it is where hosts are resolved and checked, so a refused host is refused before a
byte of the request is sent, and a pooled connection is not resolved again.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

from aggregator.fetch import address_guard


class PublicOnly(httpcore.AsyncNetworkBackend):
    """Connects to public addresses only (and those `policy` allows), and to the very address
    it checked.

    Were a host checked and then resolved again to connect, a name whose DNS answer changes
    in between (DNS rebinding) would lead anywhere. Here the host is resolved once, every
    address checked, and the connection made to a checked address;
    httpcore still gives TLS the host name (start_tls server_hostname) and httpx the Host
    header, so certificates and virtual hosts work as before.
    """

    def __init__(self, policy: address_guard.NetworkPolicy = address_guard.PUBLIC_ONLY) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:  # address_guard.NotPublic goes up as it is: fetch.py says it with the URL
            addresses = await address_guard.public_addresses(host, port, self._policy)
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


# httpcore's errors as httpx's, most specific first: what httpx.AsyncHTTPTransport raises.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """Anything else (address_guard.NotPublic among it) goes up as it is."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)  # the pool's streams have it
        if close is not None:
            await close()


class PublicOnlyTransport(httpx.AsyncBaseTransport):
    """httpx.AsyncHTTPTransport's work over a pool that connects with `PublicOnly`.

    httpx 0.28 takes no network backend (encode/httpx#3749, open); rather than swap the pool
    inside its transport (a private attribute), this one holds its own, built as httpx's is.
    """

    def __init__(
        self,
        limits: httpx.Limits,
        policy: address_guard.NetworkPolicy = address_guard.PUBLIC_ONLY,
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicOnly(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def public_only_transport(
    limits: httpx.Limits, policy: address_guard.NetworkPolicy = address_guard.PUBLIC_ONLY
) -> httpx.AsyncBaseTransport:
    return PublicOnlyTransport(limits, policy)
