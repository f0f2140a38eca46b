"""A driver's link to its broker: one connection, re-made after a cut, and retries.

Every broker operation of the driver runs through :meth:`Link.run`, which
applies the contract's ``retry`` rule in one place:

* ``retry`` None or -1: retry until it works; 0: one attempt; N: N retries.
* When the attempts are used up, :class:`oslo_messaging.MessageDeliveryFailure`.
* ``deadline`` (from ``send``'s ``timeout``) also bounds the retrying, with
  :class:`oslo_messaging.MessagingTimeout`.
* Between attempts the link waits on a condition that the broker notifies when
  it becomes reachable again, for a short, growing, bounded backoff; when the
  broker is reachable (a lost confirmation, a cut connection) the next attempt
  is made at once.  No sleeping, no polling.

Retrying never duplicates: the caller builds the message (and its unique id)
once, and the broker drops a second copy of an id it has already stored.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import oslo_messaging

from driver_conformance.reference.broker import Broker, BrokerError, Connection, ConnectionLost

T = TypeVar("T")

#: First pause between attempts while the broker is unreachable, in seconds.
BACKOFF_START = 0.02
#: Longest pause between attempts while the broker is unreachable.
BACKOFF_MAX = 0.25


class Link:
    """One driver's connection to ``broker`` (see the module docstring)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._connection: Connection | None = None
        self._connect_lock = threading.Lock()
        self._closed = False
        # Woken when the broker heals and when the link closes.
        self._wake = threading.Condition(broker.lock)
        with self._wake:
            broker.add_heal_waiter_locked(self._wake)
        # Unique, cheap message ids: this link's uuid and a counter.
        self._prefix = uuid.uuid4().hex
        self._counter = itertools.count()

    @property
    def closed(self) -> bool:
        return self._closed

    def new_id(self) -> str:
        """A message id no other message in this process has."""
        return f"{self._prefix}.{next(self._counter)}"

    def connection(self) -> Connection:
        """The live connection, re-made if the last one was cut."""
        connection = self._connection
        if connection is not None and connection.alive:
            return connection
        with self._connect_lock:
            if self._closed:
                raise ConnectionLost("the driver has been cleaned up")
            connection = self._connection
            if connection is None or not connection.alive:
                connection = self._connection = self.broker.connect()
            return connection

    def run(
        self,
        operation: Callable[[Connection], T],
        *,
        retry: int | None,
        deadline: float | None = None,
        what: str = "send",
    ) -> T:
        """Run ``operation(connection)``, retrying broker errors per ``retry``."""
        failures = 0
        while True:
            try:
                return operation(self.connection())
            except BrokerError as exc:
                failures += 1
                if self._closed:
                    raise oslo_messaging.MessageDeliveryFailure(
                        f"{what}: the driver has been cleaned up"
                    ) from exc
                if retry is not None and retry >= 0 and failures > retry:
                    raise oslo_messaging.MessageDeliveryFailure(
                        f"{what}: failed after {failures} attempt(s): {exc}"
                    ) from exc
                pause = min(BACKOFF_START * 2 ** (failures - 1), BACKOFF_MAX)
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise oslo_messaging.MessagingTimeout(
                            f"{what}: timed out after {failures} attempt(s): {exc}"
                        ) from exc
                    pause = min(pause, remaining)
                self.pause(pause)

    def pause(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the broker to be reachable, or the link closed."""
        with self._wake:
            if not self._closed and not self.broker.reachable:
                self._wake.wait(timeout)

    def close(self) -> None:
        """Close the connection; every later operation fails without retrying."""
        with self._wake:
            self._closed = True
            self.broker.discard_heal_waiter_locked(self._wake)
            self._wake.notify_all()
        with self._connect_lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            self.broker.close(connection)
