"""An in-process message broker: the backend of the reference driver.

The broker is modelled on an AMQP broker, because the oslo.messaging driver
contract was written with one in mind, and because its vocabulary (queues,
bindings, consumers, acknowledgements, connections) names every behaviour the
contract asks for:

* A **queue** stores messages until a consumer takes them (store-and-forward).
  Queues are identified by a :class:`QueueKey` (kind, exchange, topic, name)
  and, once declared, live as long as the broker, except the per-listener
  fanout queues, deleted with their listener, and reply queues, deleted with
  their driver.
* A publish is **routed** (:meth:`Broker.publish`, one path for every kind of
  message) to every queue bound to its :class:`Address`: the shared topic
  queue and any notification pool queues for ``(exchange, topic)``, the server
  queue for ``(exchange, topic, server)``, or every fanout queue of
  ``(exchange, topic)``; a reply goes to one named queue.  A publish no queue
  is bound to is dropped, as on RabbitMQ; notifications declare the shared
  queue first, so they are kept.
* A **consumer** is attached to one or more queues through a **connection**.  It
  has *credit*: the number of messages it asks for right now.  A queue hands a
  message to the next consumer, round-robin, that has credit left; a consumer
  without credit (busy in its callback, not polling) gets nothing, so a busy
  consumer never hoards messages while another is idle.  What a consumer is
  handed goes into its *inbox*, a hand-off queue its listener thread waits
  on (see :class:`Consumer`).
* A message handed to a consumer stays **unacknowledged** until it is
  acknowledged or requeued; if the consumer is detached first (its connection
  cut, the broker unreachable) the message goes back to the front of its queue.
* A **connection** (:class:`Connection`) carries a generation number.  Cutting
  it detaches its consumers and makes every later operation on it fail with
  :class:`ConnectionLost`, so the driver has to notice, reconnect and
  resubscribe, exactly what a real driver does after a failover.
* Every message carries a unique id.  When the broker stores a publish but
  loses its confirmation, it remembers that id (and only those: a confirmed
  publish is never retried), so the sender's retry is recognised and stored
  once.
* The **network** between the drivers and the broker can be frozen or
  delayed, and the broker has several hosts, one of which can be lost: see
  :mod:`~driver_conformance.reference.network`.
* The **wire log** keeps the latest notifications exactly as stored, bounded
  in bytes, for scenarios about the envelope (:meth:`Broker.wire_records`).

The usual case (a publish to a queue whose consumer asks for a message, an
acknowledgement, a confirmed publish) runs a short path; faults, backlogs and
requeues take the longer one beside it, and each is marked where it branches.

Comments ``# clause: <id>`` mark where a clause of the catalog
(``driver_conformance/catalog.toml``) is implemented; ``tests/reference``
checks that every id named exists.

One lock (:attr:`Broker.lock`) protects all of the broker's state, and is
never held while waiting.  Methods whose name ends in ``_locked`` expect the
caller to hold it.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from driver_conformance.reference.network import HOSTS, BrokerNetwork
from driver_conformance.reference.views import BrokerViews
from driver_conformance.reference.vocabulary import (
    Address,
    BrokerError,
    BrokerStats,
    BrokerUnreachable,
    ConfirmationLost,
    Connection,
    ConnectionLost,
    Consumer,
    Delivery,
    HostUnreachable,
    LinkSilent,
    Message,
    MessageKind,
    QueueKey,
    QueueKind,
    WireRecord,
    _Queue,
)

LOG = logging.getLogger(__name__)

#: How many ids of publishes whose confirmation was lost the broker remembers
#: (the oldest are forgotten first: a sender that gave up will not retry).
DEDUP_WINDOW = 65536
#: Bytes of stored bodies the wire log keeps, newest first (see
#: :meth:`Broker.wire_records`); a body larger than this is recorded without it.
WIRE_LOG_BYTES = 1 << 20
#: Records the wire log keeps at most, however small their bodies.
WIRE_LOG_RECORDS = 1024


__all__ = [
    "DEDUP_WINDOW",
    "HOSTS",
    "WIRE_LOG_BYTES",
    "WIRE_LOG_RECORDS",
    "Address",
    "Broker",
    "BrokerError",
    "BrokerStats",
    "BrokerUnreachable",
    "ConfirmationLost",
    "Connection",
    "ConnectionLost",
    "Consumer",
    "Delivery",
    "HostUnreachable",
    "LinkSilent",
    "Message",
    "MessageKind",
    "QueueKey",
    "QueueKind",
    "WireRecord",
]


class Broker(BrokerViews, BrokerNetwork):
    """An in-process broker for one virtual host; see the module docstring."""

    def __init__(self, name: str = "/") -> None:
        self.name = name
        self.lock = threading.Lock()
        self.stats = BrokerStats()
        #: Bytes of bodies the wire log may hold (see :meth:`wire_records`).
        self.wire_log_bytes = WIRE_LOG_BYTES
        # Plain tuples, the fields of WireRecord: cheaper to make on every publish.
        self._wire: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wire_bytes = 0
        self._queues: dict[QueueKey, _Queue] = {}
        # (exchange, topic) -> the queues bound to it: the shared queue and the
        # pool queues (TOPIC), or every listener's fanout queue (FANOUT).
        self._bindings: dict[QueueKind, dict[tuple[str, str], list[_Queue]]] = {
            QueueKind.TOPIC: {}, QueueKind.FANOUT: {}}
        self._connections: set[Connection] = set()
        self._generations = itertools.count(1)
        # Ids of publishes stored whose confirmation was lost, oldest first.
        self._unconfirmed: dict[int, None] = {}
        self._reachable = True
        self._confirmations_to_lose = 0
        # The network between drivers and broker (read without the lock: flags).
        self._init_network()
        # Conditions (on self.lock) to wake when the broker becomes reachable.
        self._heal_waiters: set[threading.Condition] = set()

    def __repr__(self) -> str:
        return f"<Broker {self.name!r}>"

    # -- connections -------------------------------------------------------

    def connect(self, host: int = 0) -> Connection:
        """Open a connection to ``host``; raises :class:`BrokerUnreachable` in an outage,
        :class:`HostUnreachable` when that host is down."""
        with self.lock:
            if not self._reachable:
                self.stats.connects_refused += 1
                raise BrokerUnreachable(f"broker {self.name!r} is unreachable")
            if host in self._hosts_down:
                self.stats.connects_refused += 1
                raise HostUnreachable(f"host {host} of broker {self.name!r} is down")
            connection = Connection(self, next(self._generations), host)
            self._connections.add(connection)
            self.stats.connects += 1
            return connection

    def close(self, connection: Connection) -> None:
        """Close a connection for good; its consumers are detached."""
        self._run_hooks(self._drop_connection(connection, cut=False))

    @property
    def reachable(self) -> bool:
        """Whether an operation may succeed: no outage, and some host is up."""
        return self._reachable and len(self._hosts_down) < HOSTS

    def add_heal_waiter_locked(self, cond: threading.Condition) -> None:
        """Have ``cond`` (built on :attr:`lock`) notified when the broker heals."""
        self._heal_waiters.add(cond)

    def discard_heal_waiter_locked(self, cond: threading.Condition) -> None:
        self._heal_waiters.discard(cond)

    # -- faults (driven by ReferenceFaults) ----------------------------------

    def start_outage(self) -> None:
        """Refuse every operation and detach every consumer until :meth:`heal`.

        Connections stay open but useless; consumers must be re-made after
        the heal, which is what a driver's failover does.
        """
        with self.lock:
            self._reachable = False
            hooks = [self._detach_locked(c) for conn in self._connections for c in conn.consumers]
            for connection in self._connections:
                connection.consumers.clear()
        self._run_hooks(hooks)

    def cut_connections(self) -> int:
        """Cut every open connection once; returns how many were cut."""
        with self.lock:
            connections = list(self._connections)
            hooks: list[Callable[[], None] | None] = []
            for connection in connections:
                hooks.extend(self._drop_connection_locked(connection, cut=True))
        self._run_hooks(hooks)
        return len(connections)

    def lose_confirmations(self, count: int) -> None:
        """Store the next ``count`` publishes but report them as failed."""
        with self.lock:
            self._confirmations_to_lose = count

    def heal(self) -> None:
        with self.lock:
            self._hosts_down.clear()
            self._reachable = True
            self._confirmations_to_lose = 0
            self._frozen = False
            self._delay = 0.0
            for cond in self._heal_waiters:
                cond.notify_all()

    # -- subscriptions -----------------------------------------------------

    def subscribe(
        self,
        connection: Connection,
        keys: Iterable[QueueKey],
        *,
        sink: Callable[[Message], None] | None = None,
        on_detached: Callable[[], None] | None = None,
    ) -> Consumer:
        """Declare the queues ``keys`` (if absent) and attach a consumer to them."""
        with self.lock:
            return self.subscribe_locked(connection, keys, sink=sink, on_detached=on_detached)

    def subscribe_locked(
        self,
        connection: Connection,
        keys: Iterable[QueueKey],
        *,
        sink: Callable[[Message], None] | None = None,
        on_detached: Callable[[], None] | None = None,
    ) -> Consumer:
        self._check_usable_locked(connection)
        queues = [self._declare_locked(key) for key in keys]
        consumer = Consumer(connection, queues, sink, on_detached)
        connection.consumers.add(consumer)
        for queue in queues:
            queue.consumers.append(consumer)
        return consumer

    def unsubscribe(self, consumer: Consumer, delete: Iterable[QueueKey] = ()) -> None:
        """Detach ``consumer`` (its unsettled messages go back) and delete ``delete``."""
        with self.lock:
            # The detach hook announces an involuntary loss: not called here.
            self._detach_locked(consumer)
            consumer.connection.consumers.discard(consumer)
            for key in delete:
                self._delete_locked(key)

    def delete_queue(self, key: QueueKey) -> None:
        with self.lock:
            self._delete_locked(key)

    def set_credit_locked(self, consumer: Consumer, credit: int) -> None:
        """Accept ``credit`` more messages from now on (0: none for now).

        Messages waiting in the consumer's queues are handed to it at once:
        they wait only because no consumer had credit when they came (any
        consumer with credit would have taken them), so the one asking now
        is the one whose turn it is.
        """
        consumer.credit = credit
        if credit > 0 and consumer.attached:
            for queue in consumer.queues:
                ready = queue.ready
                while ready and consumer.credit > 0:
                    self._hand_over_locked(queue, consumer, ready.popleft())
                if consumer.credit <= 0:
                    break

    def give_back_locked(self, deliveries: Iterable[Delivery]) -> None:
        """Return messages a listener took but will never hand on, in order."""
        for delivery in reversed(list(deliveries)):
            if delivery.consumer.attached:  # else its detach returned it already
                self._settle_locked(delivery, requeue=True, front=True)

    # -- settling ------------------------------------------------------------

    def settle(self, delivery: Delivery, *, requeue: bool) -> None:
        """Acknowledge or requeue ``delivery``; raises :class:`BrokerError`."""
        with self.lock:
            consumer = delivery.consumer
            if consumer.attached and self._reachable and not requeue:
                # clause: incoming.acknowledge.notifies-backend
                if consumer.unacked.pop(delivery, False) is None:
                    delivery.settled = True
                return  # the usual case; below, requeues and faults
            if delivery.settled:
                return
            if not consumer.attached:
                # The consumer was detached and the message went back to its
                # queue.  Honour a late ack if no one has taken it since.
                if not requeue and self._withdraw_locked(delivery):
                    delivery.settled = True
                    return
                raise ConnectionLost(
                    f"message {delivery.message.id} belongs to a detached consumer"
                )
            if not self._reachable:
                raise BrokerUnreachable(f"broker {self.name!r} is unreachable")
            self._settle_locked(delivery, requeue=requeue, front=True)

    def _settle_locked(self, delivery: Delivery, *, requeue: bool, front: bool) -> None:
        if delivery.settled:
            return
        delivery.settled = True
        delivery.consumer.unacked.pop(delivery, None)
        if requeue:  # clause: incoming.requeue.redelivers
            self._requeue_locked(delivery.queue, delivery.message, front=front)

    def _withdraw_locked(self, delivery: Delivery) -> bool:
        try:
            delivery.queue.ready.remove(delivery.message)
        except ValueError:
            return False
        return True

    def _requeue_locked(self, queue: _Queue, message: Message, *, front: bool) -> None:
        if self._queues.get(queue.key) is not queue:
            return  # the queue was deleted in the meantime
        message.redelivered = True
        self.stats.redeliveries += 1
        if front:
            queue.ready.appendleft(message)
        else:
            queue.ready.append(message)
        self._pump_locked(queue)

    # -- publishing ------------------------------------------------------------

    def publish(self, connection: Connection, message: Message, to: Address | QueueKey) -> int:
        """Store ``message`` in every queue bound to ``to``; returns how many got a copy.

        ``to`` is an :class:`Address` (requests, notifications) or the key of
        one queue (replies and heartbeats).  Every message takes this one path,
        so admission, de-duplication and confirmation are the same for all.
        Raises :class:`BrokerError` when refused (nothing stored), and
        :class:`ConfirmationLost` when stored but reported failed.
        """
        with self.lock:
            stats = self.stats
            stats.publish_attempts += 1
            if not (self._reachable and connection.alive):
                stats.publishes_refused += 1
                self._check_usable_locked(connection)  # raises why
            if message.id in self._unconfirmed:
                # clause: send.retry.no-duplicates
                # A retry of a publish already stored, whose confirmation was lost.
                stats.duplicates_dropped += 1
                stored = 0
            else:
                queues = self._route_locked(to)
                if len(queues) == 1:  # the usual case
                    self._enqueue_locked(queues[0], message)
                else:
                    self._store_locked(message, queues)
                stored = len(queues)
                if message.kind is MessageKind.NOTIFICATION:
                    self._log_wire_locked(message, to, stored)  # type: ignore[arg-type]
            if self._confirmations_to_lose or self._unconfirmed:  # only under faults
                self._confirm_locked(message.id)
            return stored

    def _route_locked(self, to: Address | QueueKey) -> Sequence[_Queue]:
        """The queues a publish to ``to`` is stored in (empty: it is dropped)."""
        if type(to) is QueueKey:  # a reply queue
            queue = self._queues.get(to)
            return () if queue is None else (queue,)
        if to.fanout:  # clause: send.fanout.all-subscribers
            return self._bindings[QueueKind.FANOUT].get((to.exchange, to.topic), ())
        if to.server is not None:  # clause: send.address.topic-exchange-server
            # (a plain tuple finds its QueueKey: a named tuple is a tuple)
            queue = self._queues.get((QueueKind.SERVER, to.exchange, to.topic, to.server))
            return () if queue is None else (queue,)
        if to.store_and_forward:  # clause: notify.store-and-forward.before-first-listener
            self._declare_locked(QueueKey(QueueKind.TOPIC, to.exchange, to.topic))
        # The shared queue and each pool's queue get a copy; a consumer of one
        # of them takes it.  clause: notify-listen.pool.one-copy-per-pool
        # clause: notify.address.exchange-and-topic
        return self._bindings[QueueKind.TOPIC].get((to.exchange, to.topic), ())

    def _check_usable_locked(self, connection: Connection) -> None:
        if not self._reachable:
            raise BrokerUnreachable(f"broker {self.name!r} is unreachable")
        if not connection.alive:
            raise ConnectionLost(f"{connection!r} was cut")

    def _confirm_locked(self, message_id: int) -> None:
        """Confirm the publish of ``message_id``, or lose the confirmation (a fault)."""
        if self._confirmations_to_lose > 0:
            self._confirmations_to_lose -= 1
            self.stats.confirmations_lost += 1
            # The sender will retry this id: remember it (a bounded window).
            self._unconfirmed[message_id] = None
            if len(self._unconfirmed) > DEDUP_WINDOW:
                del self._unconfirmed[next(iter(self._unconfirmed))]
            raise ConfirmationLost("publish stored, confirmation lost")
        # Confirmed at last: the sender will not retry it again.
        self._unconfirmed.pop(message_id, None)

    def _store_locked(self, message: Message, queues: Sequence[_Queue]) -> None:
        """Store ``message`` in none or several ``queues`` (one: :meth:`_enqueue_locked`)."""
        if not queues:
            self.stats.messages_dropped += 1
        else:  # clause: send.fanout.all-subscribers
            for queue in list(queues):  # each queue gets its own copy (redelivered flag)
                self._enqueue_locked(queue, dataclasses.replace(message))

    def _log_wire_locked(self, message: Message, to: Address, stored: int) -> None:
        """Keep the stored body for :meth:`wire_records`, within the log's bounds."""
        body = message.body
        size = len(body)
        if size <= self.wire_log_bytes:
            self._wire.append((message.kind, to, stored, body, size))
            self._wire_bytes += size
        else:  # larger than the whole log: recorded without its body
            self._wire.append((message.kind, to, stored, None, size))
        if self._wire_bytes > self.wire_log_bytes or len(self._wire) > WIRE_LOG_RECORDS:
            self._trim_wire_locked()

    def _trim_wire_locked(self) -> None:
        wire = self._wire
        while self._wire_bytes > self.wire_log_bytes or len(wire) > WIRE_LOG_RECORDS:
            _, _, _, old_body, old_size = wire.popleft()
            if old_body is not None:
                self._wire_bytes -= old_size

    # -- delivery --------------------------------------------------------------

    def _enqueue_locked(self, queue: _Queue, message: Message) -> None:
        """Put ``message`` at the back of ``queue``, and hand it over if a consumer asks."""
        # clause: notify.store-and-forward.subscriber-absent
        # A stored message waits in its queue until a consumer takes it.
        if not queue.ready:  # the usual case: nothing waits, give it to whoever's turn it is
            consumer = self._next_consumer_locked(queue)
            if consumer is not None:
                self._hand_over_locked(queue, consumer, message)
                return
        queue.ready.append(message)

    def _pump_locked(self, queue: _Queue) -> None:
        """Hand ready messages, oldest first, to consumers with credit, taking turns."""
        ready = queue.ready
        while ready:
            consumer = self._next_consumer_locked(queue)
            if consumer is None:
                return  # every consumer is busy: the messages wait
            self._hand_over_locked(queue, consumer, ready.popleft())

    @staticmethod
    def _next_consumer_locked(queue: _Queue) -> Consumer | None:
        """Whose turn it is: the first consumer with credit after the last one served.

        One consumer takes each message; a consumer without credit is busy
        and is passed over; consumers with credit take turns.  Listeners grant
        their first credit in ``start()``, before their thread runs, so none
        is passed over for not having been scheduled yet.
        """
        # clause: send.one-of-many.single-copy, notify.delivery.single-copy
        # clause: send.one-of-many.balanced, notify.delivery.balanced
        # clause: notify-listen.pool.balanced
        consumers = queue.consumers
        count = len(consumers)
        if count == 1:  # a server, reply or pool queue with one listener: no turns to take
            consumer = consumers[0]
            return consumer if consumer.credit > 0 or consumer.sink is not None else None
        for _ in range(count):
            index = queue.next_consumer % count
            queue.next_consumer = index + 1
            consumer = consumers[index]
            if consumer.credit > 0 or consumer.sink is not None:
                return consumer
        return None

    @staticmethod
    def _hand_over_locked(queue: _Queue, consumer: Consumer, message: Message) -> None:
        if consumer.sink is not None:
            consumer.sink(message)
            return
        delivery = Delivery(message, queue, consumer)
        consumer.credit -= 1
        consumer.handed += 1
        consumer.unacked[delivery] = None
        consumer.inbox.put(delivery)  # wakes the listener's thread; never blocks

    # -- queues and detaching --------------------------------------------------

    def _declare_locked(self, key: QueueKey) -> _Queue:
        queue = self._queues.get(key)
        if queue is not None:
            return queue
        queue = self._queues[key] = _Queue(key)
        bindings = self._bindings.get(key.kind)
        if bindings is not None:  # TOPIC and FANOUT queues are bound to (exchange, topic)
            bindings.setdefault((key.exchange, key.topic), []).append(queue)
        return queue

    def _delete_locked(self, key: QueueKey) -> None:
        queue = self._queues.pop(key, None)
        if queue is None:
            return
        bindings = self._bindings.get(key.kind)
        bound = None if bindings is None else bindings.get((key.exchange, key.topic))
        if bound and queue in bound:
            bound.remove(queue)
            if not bound:
                del bindings[(key.exchange, key.topic)]
        for consumer in queue.consumers:
            if queue in consumer.queues:
                consumer.queues.remove(queue)

    def _detach_locked(self, consumer: Consumer) -> Callable[[], None] | None:
        """Detach a consumer: its unsettled messages return to their queues."""
        if not consumer.attached:
            return None
        consumer.attached = False
        self.stats.consumers_detached += 1
        for queue in consumer.queues:
            if consumer in queue.consumers:
                queue.consumers.remove(consumer)
        # Return every unsettled delivery, oldest at the front of its queue.
        # clause: listen.failover.restores-subscriptions (nothing is lost)
        unsettled = list(consumer.unacked)
        consumer.unacked.clear()
        consumer.credit = 0
        for delivery in reversed(unsettled):
            self._requeue_locked(delivery.queue, delivery.message, front=True)
        consumer.inbox.put(None)  # its listener looks again, and re-subscribes
        return consumer.on_detached

    def _drop_connection(self, connection: Connection, *, cut: bool) -> list:
        with self.lock:
            return self._drop_connection_locked(connection, cut=cut)

    def _drop_connection_locked(self, connection: Connection, *, cut: bool) -> list:
        if connection not in self._connections:
            return []
        self._connections.discard(connection)
        connection.alive = False
        if cut:
            self.stats.connections_cut += 1
        hooks = [self._detach_locked(c) for c in list(connection.consumers)]
        connection.consumers.clear()
        return hooks if cut else []

    @staticmethod
    def _run_hooks(hooks: Iterable[Callable[[], None] | None]) -> None:
        for hook in hooks:
            if hook is not None:
                try:
                    hook()
                except Exception:
                    LOG.exception("reference broker: detach hook failed")

    # -- inspection (for tests and the kit) ---------------------------------------
