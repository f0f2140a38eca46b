"""An inbox: the callback the kit hands to listeners, and the waits on what arrived.

Scenarios never sleep to see whether a message came: they ask the inbox to
wait for a count with a deadline (returning as soon as it is reached), or for
one quiet window in which nothing more may arrive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)


class Inbox:
    """Collects every batch a listener delivers.

    ``ack`` acknowledges each message as it arrives, as the RPC server does;
    ``on_message`` runs for each message inside the driver's callback (a
    scenario can block there to make a listener busy).
    """

    def __init__(
        self,
        name: str = "",
        *,
        ack: bool = True,
        on_message: Callable[[Any], None] | None = None,
    ) -> None:
        self.name = name
        self.ack = ack
        self.on_message = on_message
        self._cond = threading.Condition()
        self.messages: list[Any] = []
        self.batches: list[list[Any]] = []
        self.arrivals: list[float] = []
        #: Deliveries that came after :meth:`close` (a listener stopped but still calling back).
        self.after_close: list[Any] = []
        self._closed = False

    def __call__(self, incoming: list[Any]) -> None:
        with self._cond:
            if self._closed:
                self.after_close.extend(incoming)
                self._cond.notify_all()
                return
        for message in incoming:
            if self.ack:
                message.acknowledge()
        now = time.monotonic()
        with self._cond:
            self.batches.append(list(incoming))
            self.messages.extend(incoming)
            self.arrivals.extend([now] * len(incoming))
            self._cond.notify_all()
        if self.on_message is not None:
            for message in incoming:
                self.on_message(message)

    def close(self) -> None:
        """From now on, any delivery is recorded in :attr:`after_close`."""
        with self._cond:
            self._closed = True

    def count(self) -> int:
        with self._cond:
            return len(self.messages)

    def bodies(self) -> list[Any]:
        with self._cond:
            return [m.message for m in self.messages]

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        """Wait until at least ``count`` messages arrived; fail after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(
                    f"inbox {self.name!r}: expected {count} message(s) within "
                    f"{timeout:.2f}s, got {len(self.messages)}"
                )
            return list(self.messages)

    def gather(self, count: int, timeout: float) -> list[Any]:
        """Wait until ``count`` messages arrived or ``timeout`` passed; return what arrived.

        Unlike :meth:`wait_for` it does not judge: a scenario of several
        clauses gathers first, then judges each clause on what arrived.
        """
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def quiet(self, window: float) -> list[Any]:
        """Wait out one quiet window and return everything received by its end."""
        deadline = time.monotonic() + window
        with self._cond:
            while (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self.messages)
