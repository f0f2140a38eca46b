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
* A connection is made to one of the broker's hosts, the last one that
  worked first; when that host is down the others are tried in turn (the
  failover of a multi-host transport URL).
* Each attempt first crosses the network (:meth:`Link.cross`): at once when
  nothing is wrong with it; under an injected delay, after the delay there
  and back; while it is frozen, after the thaw, or failed (:class:`LinkSilent`)
  once :data:`FREEZE_PATIENCE` or the deadline passes, as a networked driver
  notices a silent partition by a missed heartbeat and does not wait forever.

Retrying never duplicates: the caller builds the message (and its unique id)
once, and the broker drops a second copy of an id it has already stored.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import oslo_messaging

from driver_conformance.reference.broker import (
    HOSTS,
    Broker,
    BrokerError,
    Connection,
    ConnectionLost,
    HostUnreachable,
    LinkSilent,
)

T = TypeVar("T")

#: First pause between attempts while the broker is unreachable, in seconds.
BACKOFF_START = 0.02
#: Longest pause between attempts while the broker is unreachable.
BACKOFF_MAX = 0.25

#: How long one attempt waits on a frozen link before it counts as failed: the
#: reference's heartbeat, short because the broker is in-process.
FREEZE_PATIENCE = 0.2

#: Message ids: one counter for the process, so no two messages share an id on
#: any broker (brokers live in this process).  ``next()`` on it is atomic.
_message_ids = itertools.count(1)


class Link:
    """One driver's connection to ``broker`` (see the module docstring)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._connection: Connection | None = None
        self._connect_lock = threading.Lock()
        # The host to connect to next: the one that worked last.
        self._host = 0
        self._closed = False
        # Woken when the broker heals and when the link closes.
        self._wake = threading.Condition(broker.lock)
        with self._wake:
            broker.add_heal_waiter_locked(self._wake)

    @property
    def closed(self) -> bool:
        return self._closed

    @staticmethod
    def new_id() -> int:
        """A message id no other message in this process has (also names queues)."""
        return next(_message_ids)

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
                connection = self._connection = self._connect()
            return connection

    def _connect(self) -> Connection:
        """A connection to the first host that answers, from the last one that worked."""
        # clause: listen.partition.failover-to-live-host (the other hosts are tried)
        for step in range(HOSTS):
            host = (self._host + step) % HOSTS
            try:
                connection = self.broker.connect(host)
            except HostUnreachable:
                continue
            self._host = host
            return connection
        raise HostUnreachable(f"every host of broker {self.broker.name!r} is down")

    def run(
        self,
        operation: Callable[..., T],
        *args: Any,
        retry: int | None,
        deadline: float | None = None,
        what: str = "send",
    ) -> T:
        """Run ``operation(connection, *args)``, retrying broker errors per ``retry``."""
        connection = self._connection
        if connection is None or not connection.alive:
            connection = None  # (re)connected inside the try: connecting may fail too
        try:
            if self.broker.disturbed:  # a frozen or delayed network (faults only)
                self.cross(deadline)
            # The usual case: it works at once, on the connection there is.
            return operation(connection or self.connection(), *args)
        except BrokerError as exc:
            return self._retry(operation, args, exc, retry=retry, deadline=deadline, what=what)

    def _retry(
        self,
        operation: Callable[..., T],
        args: tuple[Any, ...],
        exc: BrokerError,
        *,
        retry: int | None,
        deadline: float | None,
        what: str,
    ) -> T:
        """The retries after a first failure ``exc`` (see the module docstring)."""
        # clause: send.retry.unlimited, send.retry.bounded-delivery-failure
        # clause: send.timeout.bounds-handoff, send.errors.messaging-exception
        # clause: send.retry.no-duplicates (``operation`` publishes one message id)
        failures = 1
        while True:
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
            try:
                if self.broker.disturbed:
                    self.cross(deadline)
                return operation(self.connection(), *args)
            except BrokerError as again:
                exc = again
                failures += 1

    def cross(self, deadline: float | None) -> None:
        """Cross the network to the broker and back, as the injected faults make it.

        Raises :class:`LinkSilent` when the network stays frozen past
        :data:`FREEZE_PATIENCE` or ``deadline``.  A heal ends both waits early.
        """
        broker = self.broker
        with self._wake:
            delay = broker.delay
            if delay:
                # clause: send.latency.timers-hold (a publish and its confirmation)
                end = time.monotonic() + 2 * delay
                while broker.delay and not self._closed:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
            if not broker.frozen:
                return
            # clause: send.partition.call-timeout, send.partition.bounded-retry
            # clause: notify.partition.bounded-retry (each attempt gives up in bounded time)
            limit = time.monotonic() + FREEZE_PATIENCE
            if deadline is not None:
                limit = min(limit, deadline)
            while broker.frozen and not self._closed:
                left = limit - time.monotonic()
                if left <= 0:
                    broker.stats.silent_attempts += 1
                    raise LinkSilent(f"no answer from broker {broker.name!r} for "
                                     f"{FREEZE_PATIENCE:.1f}s: the link is silent")
                self._wake.wait(left)

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
