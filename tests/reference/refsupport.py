"""Helpers for the reference driver's tests: deadlines instead of sleeps.

Every wait here has a ceiling (``EVENTUALLY``, scaled by ``SCALE``): a
regression fails its test within seconds instead of hanging the run.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import oslo_messaging

#: Stretch every timing constant by this factor on slow machines.
SCALE = float(os.environ.get("REFERENCE_TEST_SCALE", "1"))
#: Ceiling for "eventually" waits.
EVENTUALLY = 5.0 * SCALE
#: The quiet window used to check that nothing else arrives.
QUIET = 0.3 * SCALE


def joined(thread: threading.Thread, timeout: float = EVENTUALLY) -> None:
    """Join ``thread``, failing the test if it is still running after ``timeout``."""
    thread.join(timeout)
    assert not thread.is_alive(), f"thread {thread.name} still running after {timeout:.1f}s"


class Inbox:
    """A queue of received items with deadline-bounded getters."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def get(self, timeout: float = EVENTUALLY) -> Any:
        return self._queue.get(timeout=timeout)

    def take(self, count: int, timeout: float = EVENTUALLY) -> list[Any]:
        deadline = time.monotonic() + timeout
        return [self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                for _ in range(count)]

    def assert_quiet(self, window: float = QUIET) -> None:
        try:
            item = self._queue.get(timeout=window)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected extra item: {item!r}")

    def drain(self) -> list[Any]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items


def rpc_server(transport: Any, target: Any, endpoints: list[Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return oslo_messaging.get_rpc_server(transport, target, endpoints, executor="threading")


@contextmanager
def running(*servers: Any) -> Iterator[None]:
    """Start servers, and stop and wait for them (in parallel) afterwards."""
    for server in servers:
        server.start()
    try:
        yield
    finally:
        for server in servers:
            server.stop()
        waiters = [threading.Thread(target=s.wait, daemon=True, name="server-wait")
                   for s in servers]
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + EVENTUALLY
        for waiter in waiters:
            joined(waiter, max(0.0, deadline - time.monotonic()))
