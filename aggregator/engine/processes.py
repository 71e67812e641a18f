"""The pool's worker processes: each with a pipe each way, its answers read by the event loop.

concurrent.futures' ProcessPoolExecutor carries every job and answer through two threads of
its own (a manager and a queue feeder). With the workers keeping the cores busy, their
wake-ups cost the main process about 0.5 ms of CPU a page (benchmarks/README.md). Here a job
is written to an idle worker's pipe and its answer read on the event loop that asked for it;
and a worker that is stuck, crashed, too large or done with its share is stopped or replaced
alone, the others' jobs untouched.

A worker does one job at a time: jobs go only to idle workers (`Workers` holds callers back
until one is free). Nothing here blocks the event loop: a job is written as the worker's
pipe drains. A job whose caller gave up runs on until its answer or its deadline, whichever
comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pickle
import struct
import termios
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from aggregator.errors import InternalError

_HEADER = struct.Struct("!i")  # multiprocessing.Connection's frame: a signed 32-bit length
_LONG_HEADER = struct.Struct("!Q")  # after a length of -1: a payload of 2 GiB or more
_READ_BYTES = 1 << 20
_PIPE_BYTES = 1 << 20  # Linux lets any process grow a pipe to 1 MB (fs.pipe-max-size)


class WorkerGone(Exception):
    """The worker process ended before it answered (killed, crashed, or out of memory).
    `job_taken` is False when it ended before reading the job: the job may run elsewhere."""

    def __init__(self, *, job_taken: bool) -> None:
        super().__init__("the worker process ended" + ("" if job_taken else " before its job"))
        self.job_taken = job_taken


def serve(
    jobs: Connection, answers: Connection, start: Callable[..., None], start_args: tuple[Any, ...]
) -> None:
    """A worker process's main loop: (function, args) in, ("ok", result) or ("raised", error)
    out, until the job pipe closes."""
    start(*start_args)
    while True:
        try:
            func, args = pickle.loads(jobs.recv_bytes())
        except (EOFError, OSError):  # retired: the parent closed its end
            return
        try:
            answer: tuple[str, Any] = ("ok", func(*args))
        except Exception as exc:
            answer = ("raised", _portable(exc))
        try:
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            payload = pickle.dumps(
                ("raised", InternalError(f"its result could not be sent: {exc!r}"))
            )
        try:
            answers.send_bytes(payload)
        except OSError:  # retired while busy: nobody reads the answer any more
            return


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling, else an InternalError that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        where = "".join(traceback.format_exception(exc)[-3:]).strip()
        return InternalError(f"a worker failed unexpectedly: {exc!r}\n{where}")
    return exc


class WorkerProcess:
    """One worker process, the parent's ends of its two pipes, and the job it is doing."""

    def __init__(
        self,
        context: BaseContext,
        start: Callable[..., None],
        start_args: tuple[Any, ...],
    ) -> None:
        jobs_out, self._jobs = context.Pipe(duplex=False)
        self._answers, answers_in = context.Pipe(duplex=False)
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=serve, args=(jobs_out, answers_in, start, start_args), daemon=True
        )
        self.process.start()
        jobs_out.close()  # the worker's ends: the worker holds them now
        answers_in.close()
        # Neither end blocks the event loop: a fresh worker reads nothing until it has
        # started, and a large page fills the pipe many times over.
        os.set_blocking(self._jobs.fileno(), False)
        os.set_blocking(self._answers.fileno(), False)
        # A pipe holds 64 KB; most pages are larger. Room for one is one write a job, not a
        # write and a wake-up for each further 64 KB the worker reads (Linux; best effort).
        with contextlib.suppress(AttributeError, OSError):
            fcntl.fcntl(self._jobs.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self.jobs = 0  # jobs answered
        self.busy = False
        self.gone = False
        self.timed_out = False  # killed at its job's deadline
        self._unsent = memoryview(b"")
        self._frame = bytearray()
        self._result: asyncio.Future[Any] | None = None
        self._keep: Callable[[Any], bool] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def submit(
        self,
        func: Callable[..., Any],
        *args: Any,
        deadline_s: float,
        keep: Callable[[Any], bool] | None = None,
    ) -> asyncio.Future[Any]:
        """Send the job to this idle worker; the future is its result, or the exception it
        raised, or WorkerGone (`job_taken` False if the worker had ended before it read the
        job). The job is stopped `deadline_s` from now whether or not anybody still waits
        for it (`timed_out` then says so). When an answer comes, `keep(result)` says whether
        the worker takes more jobs, before any other job can be given to it."""
        assert not self.busy, "one job at a time"
        assert not self.gone, "a retired worker takes no jobs"
        loop = asyncio.get_running_loop()
        payload = pickle.dumps((func, args), protocol=pickle.HIGHEST_PROTOCOL)
        header = (
            _HEADER.pack(len(payload))
            if len(payload) <= 0x7FFFFFFF
            else _HEADER.pack(-1) + _LONG_HEADER.pack(len(payload))
        )
        self.busy, self._loop, self._keep = True, loop, keep
        self._result = result = loop.create_future()
        self._unsent = memoryview(header + payload)
        self._send()
        if self.gone:  # it had died: `result` says so, the job not taken
            return result
        if self._unsent:
            loop.add_writer(self._jobs.fileno(), self._send)
        loop.add_reader(self._answers.fileno(), self._readable)
        self._deadline = loop.call_later(deadline_s, self._expire, self.jobs)
        return result

    def stranded(self) -> bool:
        """Busy with a job whose event loop has closed: nobody will read its answer."""
        return self.busy and (self._loop is None or self._loop.is_closed())

    def kill(self) -> None:
        """Stop the worker whatever it is doing; its job ends with WorkerGone."""
        if not self.gone:
            self.process.kill()
            self._ended()

    def retire(self) -> None:
        """No more jobs. Our ends of its pipes close: an idle worker exits on reading the end
        of its job pipe; a busy one finishes its job and exits when the answer finds no
        reader (the job ends with WorkerGone)."""
        if not self.gone:
            self._ended()

    def _send(self) -> None:
        """Write what the pipe takes of the job; the rest when the worker has read some."""
        try:
            while self._unsent:
                written = os.write(self._jobs.fileno(), self._unsent)
                self._unsent = self._unsent[written:]
        except BlockingIOError:
            return
        except OSError:  # it died idle (the OOM killer, a signal) or while reading the job
            self._ended()
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(self._jobs.fileno())

    def _expire(self, job: int) -> None:
        """The job's deadline: stop the worker if it is still on that job."""
        if self.busy and self.jobs == job and not self.gone:
            self.timed_out = True
            self.kill()

    def _readable(self) -> None:
        try:
            data = os.read(self._answers.fileno(), _READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker exited, its end of the pipe with it
            self._ended()
            return
        self._frame += data
        payload = _whole_frame(self._frame)
        if payload is None:
            return
        result, keep = self._result, self._keep
        self._stop()
        self.busy, self._result, self._keep = False, None, None
        self.jobs += 1
        try:
            kind, value = pickle.loads(payload)
        except Exception as exc:
            kind, value = "raised", InternalError(f"a worker's answer could not be read: {exc!r}")
        # Decided now, before the worker is seen idle by anybody: retired, or kept.
        if kind == "ok" and keep is not None and not keep(value):
            self.retire()
        if result is not None and not result.done():
            if kind == "ok":
                result.set_result(value)
            else:
                result.set_exception(value)

    def _ended(self) -> None:
        """The process is gone (or its pipe broke): fail the job in hand, close our ends."""
        # A worker that died just before a job was sent can still look alive to the send
        # for a moment (the kernel lets go of a dead process's pipes a little later): the
        # job then lies in its pipe unread, and may run elsewhere.
        job_taken = not self._unsent and self._unread_job_bytes() == 0
        self._stop()
        result, self._result, self._keep = self._result, None, None
        self.busy, self.gone = False, True
        for end in (self._jobs, self._answers):
            end.close()
        # A future of a closed loop cannot run its callbacks: nobody waits on it any more.
        if result is not None and not result.done() and not result.get_loop().is_closed():
            result.set_exception(WorkerGone(job_taken=job_taken))

    def _unread_job_bytes(self) -> int:
        """Bytes sent down the job pipe that the worker has not read (Linux: FIONREAD);
        0 where that cannot be asked."""
        if self._jobs.closed:
            return 0
        try:
            asked = fcntl.ioctl(self._jobs.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int(struct.unpack("i", asked)[0])

    def _stop(self) -> None:
        """No more reading, writing or waiting for the job's deadline."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            if not self._answers.closed:
                loop.remove_reader(self._answers.fileno())
            if not self._jobs.closed:
                loop.remove_writer(self._jobs.fileno())


def _whole_frame(frame: bytearray) -> bytes | None:
    """The payload once `frame` holds all of it (taken off `frame`), else None."""
    if len(frame) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(frame)
    start = _HEADER.size
    if size == -1:
        if len(frame) < start + _LONG_HEADER.size:
            return None
        (size,) = _LONG_HEADER.unpack_from(frame, start)
        start += _LONG_HEADER.size
    if len(frame) < start + size:
        return None
    payload = bytes(frame[start : start + size])
    del frame[: start + size]
    return payload
