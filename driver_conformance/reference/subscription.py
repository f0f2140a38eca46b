"""A listener's subscription: its consumer on the broker, batching, and failover.

Both listener styles collect messages the same way, through
:meth:`Subscription.collect`:

* The consumer has credit only while someone collects: credit is the room left
  in the batch being gathered.  A listener busy in its callback, or a poll-style
  listener nobody polls, has no credit, so the broker gives the message to
  another consumer or keeps it in the queue.  This is what keeps delivery
  balanced: ``k`` listeners whose callbacks block receive one message each from
  ``k`` messages.
* A batch is complete when it holds ``batch_size`` messages, or when it holds at
  least one and ``batch_timeout`` seconds have passed since its *first*
  message arrived.  A falsy ``batch_timeout`` means "deliver what is available".
* When the consumer is detached (connection cut, outage), ``collect`` notices,
  re-connects and re-subscribes, waiting for the broker to heal if needed.  The
  queues outlive the consumer, so nothing sent in between is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from oslo_messaging._drivers import base

from driver_conformance.reference.broker import BrokerError, Consumer, Delivery, QueueKey
from driver_conformance.reference.link import Link

#: How long ``listen()`` waits for an unreachable broker before giving up.
LISTEN_PATIENCE = 0.5


class ListenFailed(base.TransportDriverError):
    """The subscriptions could not be made (the broker stayed unreachable)."""


class Subscription:
    """The consumer of one listener, on queues ``keys``; ``owned`` die with it."""

    def __init__(self, link: Link, keys: Sequence[QueueKey], owned: Sequence[QueueKey] = ()):
        self._link = link
        self._broker = link.broker
        self._keys = list(keys)
        self._owned = list(owned)
        self.cond = threading.Condition(self._broker.lock)
        self._consumer: Consumer | None = None
        self.stopped = False
        self._closed = False
        if not self._restore(time.monotonic() + LISTEN_PATIENCE):
            raise ListenFailed(f"cannot subscribe to {self._keys}: broker unreachable")

    @property
    def consumer(self) -> Consumer | None:
        return self._consumer

    def collect(
        self, batch_size: int, batch_timeout: float | None, timeout: float | None
    ) -> list[Delivery]:
        """Wait for a batch (see the module docstring); [] on timeout."""
        batch_size = max(1, batch_size)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.cond:
                consumer = self._consumer
                if self.stopped or (consumer is not None and consumer.attached):
                    batch = self._collect_locked(consumer, batch_size, batch_timeout, deadline)
                    if batch is not None:
                        return batch
            if not self._restore(deadline):
                return []

    def _collect_locked(
        self,
        consumer: Consumer | None,
        batch_size: int,
        batch_timeout: float | None,
        deadline: float | None,
    ) -> list[Delivery] | None:
        if consumer is None:
            return []
        broker = self._broker
        if not self.stopped:
            broker.set_credit_locked(consumer, batch_size - len(consumer.buffer))
        try:
            buffer = consumer.buffer
            while not self.stopped:
                if not consumer.attached:
                    return None
                count = len(buffer)
                if count >= batch_size:
                    break
                now = time.monotonic()
                limit = deadline
                if count:
                    if not batch_timeout:
                        break
                    batch_end = buffer[0].arrived + batch_timeout
                    limit = batch_end if limit is None else min(limit, batch_end)
                if limit is None:
                    self.cond.wait()
                elif now >= limit:
                    break
                else:
                    self.cond.wait(limit - now)
        finally:
            consumer.credit = 0
        return broker.take_locked(consumer, batch_size)

    def _restore(self, deadline: float | None) -> bool:
        """(Re-)subscribe, waiting for the broker; False if stopped or past deadline."""
        while True:
            with self.cond:
                if self.stopped or self._closed:
                    return False
            try:
                connection = self._link.connection()
                with self.cond:
                    if self.stopped or self._closed:
                        return False
                    self._consumer = self._broker.subscribe_locked(
                        connection, self._keys, cond=self.cond
                    )
                    return True
            except BrokerError:
                pass
            with self.cond:
                if self.stopped or self._closed or self._link.closed:
                    return False
                if self._broker.reachable:
                    continue  # the connection was cut: reconnect at once
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return False
                self._broker.add_heal_waiter_locked(self.cond)
                try:
                    self.cond.wait(None if deadline is None else deadline - now)
                finally:
                    self._broker.discard_heal_waiter_locked(self.cond)

    def give_back(self, deliveries: Sequence[Delivery]) -> None:
        """Return deliveries that will never be handed on to their queues."""
        if deliveries:
            with self.cond:
                self._broker.give_back_locked(deliveries)

    def stop(self) -> None:
        """Stop collecting; a blocked :meth:`collect` returns what it has."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def close(self) -> None:
        """Stop, unsubscribe and delete the queues this subscription owns."""
        with self.cond:
            self.stopped = True
            self._closed = True
            consumer, self._consumer = self._consumer, None
            self.cond.notify_all()
        if consumer is not None:
            self._broker.unsubscribe(consumer, delete=self._owned)
        else:
            for key in self._owned:
                self._broker.delete_queue(key)
