"""Private details of libraries that the code still relies on, each behind one adapter.

These fail loudly when an upgrade reshapes what the adapter reads, instead of leaving the
behaviour that depends on it silently broken.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from aggregator.engine.processes import _whole_frame


@pytest.mark.parametrize("size", [0, 5, 16_385, 300_000])
def test_a_connection_frames_bytes_as_the_worker_pipes_read_them(size: int) -> None:
    """The workers answer with `Connection.send_bytes`; the event loop reads the pipe itself
    (`processes._whole_frame`): a signed 32-bit big-endian length, then the bytes."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    payload = os.urandom(size)
    # On a thread: a pipe holds 64 KB unread, and a larger answer waits for its reader.
    sender = threading.Thread(target=writer.send_bytes, args=(payload,))
    sender.start()
    try:
        frame, got = bytearray(), None
        while got is None:
            frame += os.read(reader.fileno(), 1 << 20)
            got = _whole_frame(frame)
        assert got == payload
        assert frame == bytearray()  # emptied for the next answer
    finally:
        sender.join()
        reader.close()
        writer.close()
