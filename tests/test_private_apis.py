"""Private attributes of libraries that the code still reads, each behind one adapter.

These fail loudly when an upgrade removes or reshapes what the adapter reads, instead of
leaving the behaviour that depends on it silently broken.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.process import BaseProcess

from aggregator.engine.pool import worker_processes


def test_process_pool_workers_are_still_listed_in_processes() -> None:
    """`worker_processes` reads ProcessPoolExecutor._processes: without it, a stuck worker
    would never be killed."""
    context = multiprocessing.get_context("forkserver")  # as Workers makes its pool
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        pid = executor.submit(os.getpid).result(timeout=60)
        assert isinstance(executor._processes, dict)
        processes = worker_processes(executor)
        assert [process.pid for process in processes] == [pid]
        assert all(isinstance(process, BaseProcess) for process in processes)
    assert worker_processes(executor) == []  # shut down: the attribute is None


def test_a_thread_pool_has_no_worker_processes() -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        assert worker_processes(executor) == []
