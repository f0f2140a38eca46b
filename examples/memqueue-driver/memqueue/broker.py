"""The in-process broker behind ``memqueue://``: queues, bindings, connections, faults.

The broker is deliberately shaped like a small AMQP broker, because that is
what makes the driver on top of it an honest oslo.messaging driver rather
than a shortcut: messages are stored as encoded text (so every receiver
decodes its own copy), queues are named and bound to ``(exchange, key)``
pairs, every queue bound to a key gets a copy of what is published with it,
consumers of one queue share its messages, and clients reach all of this only
through a :class:`Connection` that can die.

Two rules keep delivery fair and settlement exact:

* **credit**: the broker hands a consumer a message only while the consumer
  says it wants one (:meth:`Consumer.wants`), taking turns among the
  consumers of a queue.  A listener busy in its callback wants nothing, so a
  busy listener never hoards messages an idle one could take;
* **deliveries belong to connections**: a message handed out stays
  *unacknowledged* until settled through the connection that received it.
  When that connection dies (cut, closed, broker down) its unacknowledged
  messages go back to the front of their queues, and settling one of the old
  deliveries fails, as it would on a real broker.

Queues belong to whoever declared them, not to a connection, so a listener
whose connection is cut finds its subscriptions where it left them when it
reconnects.  Every method takes the broker's one lock; the driver builds its
wait conditions on the same (re-entrant) lock, so there is no lock order to
get wrong.

Faults (:meth:`Broker.go_down`, :meth:`Broker.cut_connections`,
:meth:`Broker.lose_confirmations`, :meth:`Broker.heal`) act on the broker, so
they hit every driver of the virtual host at once, as a broker restart would.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
from collections.abc import Iterable

#: Connection purposes.  A client says which it opens, so the broker can count the
#: attempts of publishers apart from those of consumers reconnecting.
PUBLISHER = "publisher"
CONSUMER = "consumer"

#: How many recent message ids the broker remembers to drop a re-sent duplicate.
DEDUP_WINDOW = 65536


class BrokerError(Exception):
    """Something the driver must handle: the broker could not do what was asked."""


class BrokerUnreachable(BrokerError):
    """The broker is down: it refuses connections and every operation."""


class ConnectionLost(BrokerError):
    """The connection used is dead (cut, or closed by its owner)."""


class ConfirmationLost(BrokerError):
    """The message was stored, but the publisher cannot know: its confirmation was lost."""


class StaleDelivery(BrokerError):
    """The delivery can no longer be settled: its queue is gone."""


class NoSuchQueue(BrokerError):
    """A consumer asked for a queue nobody declared (or that was deleted)."""


@dataclasses.dataclass
class Message:
    """A message as stored: its id (the same across a sender's retries) and its encoded body."""

    message_id: str
    body: str
    redelivered: bool = False


class Connection:
    """A client's session with the broker; once dead it stays dead (reconnect for a new one)."""

    def __init__(self, number: int, purpose: str) -> None:
        self.number = number
        self.purpose = purpose
        self.alive = True
        self.consumers: set[Consumer] = set()
        self.unacked: set[Delivery] = set()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"<memqueue connection {self.number} ({self.purpose}, {state})>"


@dataclasses.dataclass(eq=False)
class Delivery:
    """One hand-over of a stored message to a consumer, settled by its ``tag``."""

    queue: Queue
    tag: int
    message: Message
    connection: Connection


class Consumer:
    """What the broker hands messages to; the driver's listeners and reply routes subclass it.

    Every method is called with the broker's lock held, and must not block.
    """

    #: Auto-acknowledging consumers (reply routes) never hold unacknowledged messages.
    auto_ack = False

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.queues: set[Queue] = set()

    @property
    def attached(self) -> bool:
        return bool(self.queues) and self.connection is not None and self.connection.alive

    def wants(self) -> int:
        """How many more messages the consumer will take now."""
        raise NotImplementedError

    def accept(self, delivery: Delivery) -> None:
        """Take one message (the broker only calls this while :meth:`wants` is positive)."""
        raise NotImplementedError

    def detached(self) -> None:
        """The consumer was cancelled or lost its connection; it gets nothing more."""


class Queue:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ready: collections.deque[Message] = collections.deque()
        self.consumers: list[Consumer] = []
        self.unacked: dict[int, Delivery] = {}
        self.deleted = False
        self._turn = 0

    def __repr__(self) -> str:
        return f"<memqueue queue {self.name!r}: {len(self.ready)} ready>"


@dataclasses.dataclass
class Stats:
    """What the broker has seen; fault injection reads it to count a sender's attempts."""

    publishes: int = 0
    publishes_refused: int = 0
    connects_refused: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter)
    confirmations_lost: int = 0
    duplicates_dropped: int = 0
    connections_dropped: int = 0

    @property
    def publish_attempts(self) -> int:
        """Publishes tried, refused ones and refused publisher connects included."""
        return self.publishes + self.connects_refused[PUBLISHER]


class Broker:
    """One virtual host's broker; see the module docstring."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.lock = threading.RLock()
        self.stats = Stats()
        self._queues: dict[str, Queue] = {}
        self._bindings: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self._connections: set[Connection] = set()
        self._numbers = itertools.count(1)
        self._tags = itertools.count(1)
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._down = False
        self._unconfirmed = 0

    def __repr__(self) -> str:
        return f"<memqueue broker {self.name!r}>"

    # -- connections ---------------------------------------------------------------------
    def connect(self, purpose: str) -> Connection:
        with self.lock:
            if self._down:
                self.stats.connects_refused[purpose] += 1
                raise BrokerUnreachable(f"broker {self.name!r} is down")
            connection = Connection(next(self._numbers), purpose)
            self._connections.add(connection)
            return connection

    def close(self, connection: Connection | None) -> None:
        """Close ``connection``: its consumers stop, its unsettled messages are requeued."""
        if connection is not None:
            with self.lock:
                self._drop(connection)

    def _check(self, connection: Connection | None) -> Connection:
        if self._down:
            raise BrokerUnreachable(f"broker {self.name!r} is down")
        if connection is None or not connection.alive:
            raise ConnectionLost(f"{connection!r} is gone")
        return connection

    def _drop(self, connection: Connection) -> None:
        if not connection.alive:
            return
        connection.alive = False
        self._connections.discard(connection)
        self.stats.connections_dropped += 1
        for consumer in list(connection.consumers):
            self._detach(consumer)
        # Back to the front of their queues, in the order they were handed out.
        touched: set[Queue] = set()
        for delivery in sorted(connection.unacked, key=lambda d: d.tag, reverse=True):
            queue = delivery.queue
            del queue.unacked[delivery.tag]
            if not queue.deleted:
                queue.ready.appendleft(dataclasses.replace(delivery.message, redelivered=True))
                touched.add(queue)
        connection.unacked.clear()
        for queue in touched:
            self._pump(queue)

    # -- topology --------------------------------------------------------------------------
    def bind(self, connection: Connection | None, exchange: str, key: str, queue: str) -> None:
        """Declare ``queue`` (if new) and bind it to ``(exchange, key)`` (if not yet)."""
        with self.lock:
            self._check(connection)
            if queue not in self._queues:
                self._queues[queue] = Queue(queue)
            self._bindings[(exchange, key)].add(queue)

    def delete(self, queue: str) -> None:
        """Delete ``queue`` and its bindings, and whatever it still held.

        Allowed without a connection: a queue owned by a listener goes when the
        listener does, even if the broker is unreachable at that moment.
        """
        with self.lock:
            gone = self._queues.pop(queue, None)
            if gone is None:
                return
            gone.deleted = True
            for names in self._bindings.values():
                names.discard(queue)
            for consumer in list(gone.consumers):
                consumer.queues.discard(gone)
            gone.consumers.clear()
            gone.ready.clear()

    # -- publishing --------------------------------------------------------------------------
    def publish(self, connection: Connection | None, exchange: str, key: str, message_id: str,
                body: str) -> int:
        """Store a copy in every queue bound to ``(exchange, key)``; how many got one.

        A message id seen recently is a sender's retry of a message already
        stored: it is confirmed again but not stored twice.
        """
        with self.lock:
            self.stats.publishes += 1
            try:
                self._check(connection)
            except BrokerError:
                self.stats.publishes_refused += 1
                raise
            reached = 0
            if message_id in self._seen:
                self.stats.duplicates_dropped += 1
            else:
                self._remember(message_id)
                for name in sorted(self._bindings.get((exchange, key), ())):
                    queue = self._queues[name]
                    queue.ready.append(Message(message_id, body))
                    self._pump(queue)
                    reached += 1
            if self._unconfirmed:
                self._unconfirmed -= 1
                self.stats.confirmations_lost += 1
                raise ConfirmationLost(f"no confirmation for message {message_id}")
            return reached

    def _remember(self, message_id: str) -> None:
        self._seen[message_id] = None
        if len(self._seen) > DEDUP_WINDOW:
            self._seen.popitem(last=False)

    # -- consuming ---------------------------------------------------------------------------
    def consume(self, consumer: Consumer, queues: Iterable[str]) -> None:
        """Attach ``consumer`` (on its connection) to ``queues``, which must exist."""
        with self.lock:
            connection = self._check(consumer.connection)
            for name in queues:
                queue = self._queues.get(name)
                if queue is None:
                    raise NoSuchQueue(f"queue {name!r} does not exist")
                if queue not in consumer.queues:
                    queue.consumers.append(consumer)
                    consumer.queues.add(queue)
            connection.consumers.add(consumer)
            self.pump(consumer)

    def cancel(self, consumer: Consumer) -> None:
        """Detach ``consumer``; what it already received stays for it to settle."""
        with self.lock:
            self._detach(consumer)

    def _detach(self, consumer: Consumer) -> None:
        for queue in consumer.queues:
            queue.consumers.remove(consumer)
        consumer.queues.clear()
        if consumer.connection is not None:
            consumer.connection.consumers.discard(consumer)
        consumer.detached()

    def pump(self, consumer: Consumer) -> None:
        """Hand ``consumer`` what it wants now (call after its credit grew)."""
        with self.lock:
            for queue in list(consumer.queues):
                self._pump(queue)

    def _pump(self, queue: Queue) -> None:
        while queue.ready and queue.consumers:
            count = len(queue.consumers)
            for offset in range(count):
                consumer = queue.consumers[(queue._turn + offset) % count]
                if consumer.wants() > 0:
                    break
            else:
                return
            queue._turn = (queue._turn + offset + 1) % count
            connection = consumer.connection
            assert connection is not None
            delivery = Delivery(queue, next(self._tags), queue.ready.popleft(), connection)
            if not consumer.auto_ack:
                queue.unacked[delivery.tag] = delivery
                connection.unacked.add(delivery)
            consumer.accept(delivery)

    # -- settling ----------------------------------------------------------------------------
    def settle(self, delivery: Delivery, *, requeue: bool) -> bool:
        """Acknowledge ``delivery``, or put it back at the front of its queue.

        Returns False when it was already settled through its own connection
        (a second acknowledge is not an error).  Raises :class:`BrokerError`
        when it cannot be settled: broker down, connection gone (the message
        was requeued when it went), queue deleted.
        """
        with self.lock:
            self._check(delivery.connection)
            queue = delivery.queue
            if queue.deleted:
                raise StaleDelivery(f"queue {queue.name!r} was deleted")
            if queue.unacked.get(delivery.tag) is not delivery:
                return False
            del queue.unacked[delivery.tag]
            delivery.connection.unacked.discard(delivery)
            if requeue:
                queue.ready.appendleft(dataclasses.replace(delivery.message, redelivered=True))
                self._pump(queue)
            return True

    def release(self, deliveries: Iterable[Delivery]) -> None:
        """Requeue deliveries a consumer received but will never process (it stopped)."""
        deliveries = sorted(deliveries, key=lambda d: d.tag, reverse=True)
        with self.lock:
            for delivery in deliveries:
                queue = delivery.queue
                if queue.unacked.get(delivery.tag) is delivery:
                    del queue.unacked[delivery.tag]
                    delivery.connection.unacked.discard(delivery)
                    queue.ready.appendleft(delivery.message)
            for delivery in deliveries:
                if not delivery.queue.deleted:
                    self._pump(delivery.queue)

    # -- faults ------------------------------------------------------------------------------
    def go_down(self) -> None:
        """An outage: every connection drops, and nothing works until :meth:`heal`."""
        with self.lock:
            self._down = True
            for connection in list(self._connections):
                self._drop(connection)

    def cut_connections(self) -> int:
        """Drop every live connection once; returns how many there were."""
        with self.lock:
            connections = list(self._connections)
            for connection in connections:
                self._drop(connection)
            return len(connections)

    def lose_confirmations(self, count: int) -> None:
        """The next ``count`` publishes are stored but their confirmations are lost."""
        with self.lock:
            self._unconfirmed = count

    def heal(self) -> None:
        """End every fault: the broker accepts connections and confirms publishes again."""
        with self.lock:
            self._down = False
            self._unconfirmed = 0


_brokers: dict[str, Broker] = {}
_registry_lock = threading.Lock()


def broker_for(virtual_host: str | None) -> Broker:
    """The broker of ``virtual_host``, started on first use (a server that is just there)."""
    name = virtual_host or ""
    with _registry_lock:
        if name not in _brokers:
            _brokers[name] = Broker(name)
        return _brokers[name]


def drop_broker(virtual_host: str | None) -> None:
    """Forget the broker of ``virtual_host`` and everything it stored."""
    with _registry_lock:
        _brokers.pop(virtual_host or "", None)
