"""A listener's subscription: its consumer on the broker, batching, and failover.

Both listener styles collect messages the same way, through
:meth:`Subscription.collect`:

* The consumer has credit only while someone collects: credit is the room left
  in the batch being gathered.  A listener busy in its callback, or a poll-style
  listener nobody polls, has no credit, so the broker gives the message to
  another consumer or keeps it in the queue.  This is what keeps delivery
  balanced: ``k`` listeners whose callbacks block receive one message each from
  ``k`` messages.  A started listener grants its first credit in ``start()``
  (:meth:`Subscription.grant`), so it takes its turn even before its thread
  first runs.
* Messages handed over wait in the consumer's inbox (see
  :class:`~driver_conformance.reference.broker.Consumer`); collecting waits on
  the inbox, without the broker lock, and takes the lock only when a message
  already waits in a queue or a batch ends short (see
  :meth:`Subscription._offer_credit`).
* A batch is complete when it holds ``batch_size`` messages, or when it holds at
  least one and ``batch_timeout`` seconds have passed since its *first*
  message arrived.  A falsy ``batch_timeout`` means "deliver what is available".
* Under an injected network fault a delivery taken from the inbox is held as
  the network would hold it (:meth:`Subscription._arrive`): for the delay,
  counted from when the broker handed it over, or until a freeze ends.
* When the consumer is detached (connection cut, outage), ``collect`` notices,
  re-connects and re-subscribes, waiting for the broker to heal if needed.  The
  queues outlive the consumer, so nothing sent in between is lost.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence

from oslo_messaging._drivers import base

from driver_conformance.reference.broker import BrokerError, Consumer, Delivery, QueueKey
from driver_conformance.reference.link import Link

#: How long ``listen()`` waits for an unreachable broker before giving up.
LISTEN_PATIENCE = 0.5
#: The longest single wait of a delivery held by a frozen network; the thaw
#: (a heal) and stop() end it early, so this only bounds each wait.
HOLD_STEP = 0.5


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
        # Deliveries this subscription took from its consumer's inbox.
        self._taken = 0
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
        # clause: poll.delivery.unblocks-on-message, poll.batch-size.waits-for-full-batch
        # clause: poll.batch-timeout.from-first-message
        # clause: listener.batch.timeout-flushes-partial
        if batch_size < 1:
            batch_size = 1
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            consumer = self._consumer
            if self.stopped:
                return []
            if consumer is not None and consumer.attached:
                batch = self._gather(consumer, batch_size, batch_timeout, deadline)
                if batch is not None:
                    return batch
            if not self._restore(deadline):
                return []

    def grant(self, batch_size: int) -> None:
        """Ask for a batch's worth of messages now (a listener about to collect)."""
        consumer = self._consumer
        if consumer is not None:
            with self._broker.lock:
                self._grant_locked(consumer, max(1, batch_size))

    def _offer_credit(self, consumer: Consumer, batch_size: int) -> bool:
        """Grant a batch's credit; False if the consumer was detached.

        Mostly without the broker lock, by a rule that keeps the lock's
        guarantee.  When the consumer holds no credit (its last batch used it
        all), the broker writes neither ``credit`` nor ``handed`` (it skips
        consumers without credit), so this thread, the only one collecting,
        may set ``credit`` itself.  It then looks at its queues: if one holds
        a message, it takes the lock and grants there (the broker hands the
        waiting messages over).  If none does, a message stored later is
        stored by a publisher that, under the lock, offers it to a consumer
        with credit, and sees this one's.  Either way no message waits while
        this consumer has credit, which is what the locked grant ensures.
        """
        if consumer.credit == 0 and consumer.attached:
            consumer.credit = batch_size - (consumer.handed - self._taken)
            for queue in consumer.queues:
                if queue.ready:
                    break  # a message waits: grant under the lock, which serves it
            else:
                return True
        with self._broker.lock:
            if not consumer.attached:
                return False
            self._grant_locked(consumer, batch_size)
        return True

    def _grant_locked(self, consumer: Consumer, batch_size: int) -> None:
        # Room left in the batch: what was handed over but not taken yet counts.
        self._broker.set_credit_locked(consumer, batch_size - (consumer.handed - self._taken))

    def _gather(
        self,
        consumer: Consumer,
        batch_size: int,
        batch_timeout: float | None,
        deadline: float | None,
    ) -> list[Delivery] | None:
        """One batch from ``consumer``'s inbox; None if it was detached meanwhile.

        Credit is granted first (:meth:`_offer_credit`); the broker lock is
        taken again only to withdraw what is left of it when the batch ends
        short (timeout, stop); waiting and taking are the inbox's.
        """
        if not self._offer_credit(consumer, batch_size):
            return None
        inbox = consumer.inbox
        if batch_size == 1 and deadline is None:  # what RPC servers ask: one message, no timer
            item = inbox.get()
            if item is None:  # stopped (return nothing) or detached (re-subscribe)
                return [] if self.stopped or consumer.attached else None
            self._taken += 1
            if self._broker.disturbed and not self._arrive(item):
                return []  # stopped while the network held it: given back
            return [item] if consumer.attached else None
        batch: list[Delivery] = []
        while len(batch) < batch_size and not self.stopped and consumer.attached:
            limit = deadline
            if batch and batch_timeout:  # the batch's timer runs from its first message
                end = batch[0].arrived + batch_timeout
                limit = end if limit is None else min(limit, end)
            try:
                if batch and not batch_timeout:  # deliver what is available now
                    item = inbox.get_nowait()
                elif limit is None:
                    item = inbox.get()
                else:
                    item = inbox.get(timeout=max(0.0, limit - time.monotonic()))
            except queue.Empty:
                break
            if item is not None:  # None: stopped or detached, look again
                self._taken += 1
                if self._broker.disturbed and not self._arrive(item):
                    break  # stopped while the network held it: given back
                batch.append(item)
        if not consumer.attached:
            return None  # what it had was returned to the queues by the detach
        if len(batch) < batch_size:
            with self._broker.lock:
                consumer.credit = 0
        return batch

    def _arrive(self, item: Delivery) -> bool:
        """Hold ``item`` while the network would: False (it is given back) if stopped first."""
        broker = self._broker
        with self.cond:
            broker.add_heal_waiter_locked(self.cond)
            try:
                while not self.stopped:
                    if broker.frozen:
                        # clause: send.partition.recovers (held, not lost: after the thaw)
                        self.cond.wait(HOLD_STEP)
                        continue
                    # clause: send.latency.timers-hold (a delivery crosses once)
                    left = item.arrived + broker.delay - time.monotonic()
                    if left <= 0:
                        return True
                    self.cond.wait(left)
                broker.give_back_locked([item])
                return False
            finally:
                broker.discard_heal_waiter_locked(self.cond)

    def _restore(self, deadline: float | None) -> bool:
        """(Re-)subscribe, waiting for the broker; False if stopped or past deadline."""
        # clause: listen.failover.restores-subscriptions
        # clause: listen.subscription.active-until-stop
        while True:
            with self.cond:
                if self.stopped or self._closed:
                    return False
            try:
                connection = self._link.connection()
                with self.cond:
                    if self.stopped or self._closed:
                        return False
                    self._consumer = self._broker.subscribe_locked(connection, self._keys)
                    self._taken = 0
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
            self.cond.notify_all()  # a restore waiting for the broker to heal
            if self._consumer is not None:
                self._consumer.inbox.put(None)  # a collect waiting on the inbox

    def close(self) -> None:
        """Stop, unsubscribe and delete the queues this subscription owns."""
        with self.cond:
            self.stopped = True
            self._closed = True
            consumer, self._consumer = self._consumer, None
            self.cond.notify_all()
            if consumer is not None:
                consumer.inbox.put(None)
        if consumer is not None:
            self._broker.unsubscribe(consumer, delete=self._owned)
        else:
            for key in self._owned:
                self._broker.delete_queue(key)
