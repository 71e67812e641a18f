"""Response bodies: Content-Encoding undone in small steps, refused once past the size cap.

httpx's own decoders inflate a whole network read at once, and 64 KB of gzipped zeros is
64 MB; here each decoder hands on at most `_PIECE` bytes at a time and the size is counted
after decompression, so memory stays flat on a compression bomb. Pure bytes in, bytes out:
no httpx, so `fetch` stays the only module that meets the network library.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterable, Callable
from typing import IO, Protocol, cast

import brotli  # type: ignore[import-untyped]  # ships no type information
import zstandard

from aggregator.errors import BodyFragmented, BodyTooLarge, FetchError

ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # exactly what the decoders below understand
_PIECE = 64 * 1024  # decoded bytes per step
# Parsing a network piece costs the same whatever its size: a body sent in one-byte chunks
# keeps the event loop busy (~100,000 pieces a second) and the other feeds' requests starve
# into their timeouts. Past this many pieces, a body averaging fewer bytes than this is
# refused; a real server's pieces are kilobytes.
_MANY_PIECES = 4096
_FEW_BYTES = 64
_YIELD_EVERY = 256  # pieces between turns for the other tasks on the loop


async def read_body(
    raw: AsyncIterable[bytes],
    *,
    content_encoding: str,
    content_length: str,
    max_bytes: int,
    url: str,
) -> bytes:
    """The decoded body from the raw (still encoded) chunks and the two response headers.

    Raises BodyTooLarge past `max_bytes` (decoded), FetchError when decoding fails.
    """
    if not content_encoding and content_length.isdecimal() and int(content_length) > max_bytes:
        raise _too_large(max_bytes, url)  # no need to download it to know
    body = _Body(max_bytes, url)
    sink = _decoders(content_encoding, body)
    pieces = received = 0
    try:
        async for chunk in raw:
            sink.write(chunk)
            pieces += 1
            received += len(chunk)
            if pieces % _YIELD_EVERY == 0:
                if pieces >= _MANY_PIECES and received < pieces * _FEW_BYTES:
                    raise BodyFragmented(
                        f"the server sent {received:,} bytes in {pieces:,} pieces (under"
                        f" {_FEW_BYTES} bytes each on average); a body cut this fine costs"
                        " more to read than it carries, so it was refused",
                        url=url,
                    )
                await asyncio.sleep(0)  # buffered pieces arrive without a pause otherwise
        sink.close()
    except _DECODE_ERRORS as exc:
        raise FetchError(
            f"the response body could not be decompressed ({content_encoding}): {exc}", url=url
        ) from exc
    return body.value()


class _Sink(Protocol):
    def write(self, data: bytes) -> object: ...
    def close(self) -> None: ...


class _Body:
    """The decoded body; refused as soon as it grows past the limit.

    One growing buffer, not a list of the pieces: a chunked response in 1-byte chunks makes a
    1-byte bytes object per chunk, and kept in a list each costs ~57 bytes (object header and
    list slot), so a 20 MB cap let a body hold 1.2 GB. Copied into the buffer, the body costs
    its own size (plus the buffer's 1/8 of growth room) however it was cut up on the wire.
    """

    def __init__(self, limit: int, url: str) -> None:
        self._limit, self._url = limit, url
        self._buffer = bytearray()

    def write(self, data: bytes) -> object:
        if len(self._buffer) + len(data) > self._limit:
            raise _too_large(self._limit, self._url)
        self._buffer += data
        return None

    def close(self) -> None:
        pass

    def value(self) -> bytes:
        return bytes(self._buffer)


def _too_large(limit: int, url: str) -> BodyTooLarge:
    size = f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit} byte"
    return BodyTooLarge(
        f"the response is larger than the {size} limit (counted after decompression)", url=url
    )


class _Zlib:
    """gzip, or deflate in either the zlib wrapping RFC 9110 asks for or the raw form some send."""

    def __init__(self, out: _Sink, *, gzip: bool) -> None:
        self._out, self._gzip = out, gzip
        self._head = b""  # deflate's wrapping is known after two bytes
        self._inflate: zlib._Decompress | None = None

    def write(self, data: bytes) -> object:
        if self._inflate is None:
            self._head += data
            if len(self._head) < 2:
                return None
            data, self._head = self._head, b""
            self._inflate = zlib.decompressobj(self._wbits(data))
        while True:
            piece = self._inflate.decompress(data, _PIECE)
            data = self._inflate.unconsumed_tail
            if piece:
                self._out.write(piece)
            if not data and len(piece) < _PIECE:
                return None

    def _wbits(self, head: bytes) -> int:
        if self._gzip:
            return 16 + zlib.MAX_WBITS
        zlib_header = head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS

    def close(self) -> None:
        if self._inflate is not None:
            self._out.write(self._inflate.flush())
        self._out.close()


class _Brotli:
    def __init__(self, out: _Sink) -> None:
        self._out = out
        self._decompressor = brotli.Decompressor()

    def write(self, data: bytes) -> object:
        # brotli keeps output back once the limit is hit; drain it with empty input
        piece: bytes = self._decompressor.process(data, output_buffer_limit=_PIECE)
        while piece or not self._decompressor.can_accept_more_data():
            self._out.write(piece)
            piece = self._decompressor.process(b"", output_buffer_limit=_PIECE)
        return None

    def close(self) -> None:
        self._out.close()


class _Zstd:
    def __init__(self, out: _Sink) -> None:
        self._out = out
        # The writer hands `out` one piece at a time; `out` only needs `write`.
        self._writer = zstandard.ZstdDecompressor().stream_writer(
            cast(IO[bytes], out), write_size=_PIECE, closefd=False
        )

    def write(self, data: bytes) -> object:
        return self._writer.write(data)

    def close(self) -> None:
        self._out.close()


_DECODERS: dict[str, Callable[[_Sink], _Sink]] = {
    "gzip": lambda out: _Zlib(out, gzip=True),
    "x-gzip": lambda out: _Zlib(out, gzip=True),
    "deflate": lambda out: _Zlib(out, gzip=False),
    "br": _Brotli,
    "zstd": _Zstd,
}
_DECODE_ERRORS = (zlib.error, brotli.error, zstandard.ZstdError)


def _decoders(content_encoding: str, body: _Body) -> _Sink:
    """The chain that undoes Content-Encoding, last applied first, ending in `body`."""
    sink: _Sink = body
    for name in content_encoding.lower().split(","):
        make = _DECODERS.get(name.strip())
        if make is not None:  # identity and unknown labels pass through, as in httpx
            sink = make(sink)
    return sink
