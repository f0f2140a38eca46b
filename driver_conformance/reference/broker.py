"""An in-process message broker: the backend of the reference driver.

The broker is modelled on an AMQP broker, because the oslo.messaging driver
contract was written with one in mind, and because its vocabulary (queues,
bindings, consumers, acknowledgements, connections) names every behaviour the
contract asks for:

* A **queue** stores messages until a consumer takes them (store-and-forward).
  Queues are identified by a :data:`QueueKey` tuple and, once declared, live as
  long as the broker, except the per-listener fanout queues, which are deleted
  with their listener.
* A publish is **routed** to every queue bound to its address: the shared topic
  queue and any notification pool queues for ``(exchange, topic)``, the server
  queue for ``(exchange, topic, server)``, or every fanout queue of
  ``(exchange, topic)``.  A publish no queue is bound to is dropped, as on
  RabbitMQ; notifications declare the default queue first, so they are kept.
* A **consumer** is attached to one or more queues through a **connection**.  It
  has *credit*: the number of messages it asks for right now.  A queue hands a
  message to the next consumer, round-robin, that has credit left; a consumer
  without credit (busy in its callback, not polling) gets nothing, so a busy
  consumer never hoards messages while another is idle.
* A message handed to a consumer stays **unacknowledged** until it is
  acknowledged or requeued; if the consumer is detached first (its connection
  cut, the broker unreachable) the message goes back to the front of its queue.
* A **connection** (:class:`Connection`) carries a generation number.  Cutting
  it detaches its consumers and makes every later operation on it fail with
  :class:`ConnectionLost`, so the driver has to notice, reconnect and
  resubscribe, exactly what a real driver does after a failover.
* Every message carries a unique id and the broker remembers the ids it has
  stored (a bounded window): a publish retried because its confirmation was lost
  is stored once.

One lock (:attr:`Broker.lock`) protects all of the broker's state.  Listeners
wait on :class:`threading.Condition` objects built on that lock, so a publish can
wake exactly the consumer it handed a message to.  Methods whose name ends in
``_locked`` expect the caller to hold the lock.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

LOG = logging.getLogger(__name__)

#: How many message ids the broker remembers for de-duplication.
DEDUP_WINDOW = 65536
#: How many raw published bodies :attr:`Broker.published` keeps.
PUBLISHED_LOG_SIZE = 1024

#: A queue's identity: ``("topic", exchange, topic, pool)``,
#: ``("server", exchange, topic, server)``, ``("fanout", exchange, topic, owner)``
#: or ``("reply", name)``.  ``pool`` is None for the default shared queue.
QueueKey = tuple[Any, ...]


class BrokerError(Exception):
    """An operation on the broker failed; the driver may retry it."""


class BrokerUnreachable(BrokerError):
    """The broker refuses every operation (an outage is in force)."""


class ConnectionLost(BrokerError):
    """The connection used for the operation has been cut."""


class ConfirmationLost(BrokerError):
    """The message was stored, but its publisher is told it failed."""


@dataclasses.dataclass(slots=True)
class Message:
    """A message as the broker stores it.

    ``body`` is JSON text, so every consumer decodes its own copy and nothing
    is ever shared by reference between publisher and consumers.
    """

    id: str
    body: str
    kind: str = "request"
    reply_to: str | None = None
    correlation_id: str | None = None
    #: ``time.monotonic()`` deadline of the caller waiting for a reply, if any.
    deadline: float | None = None
    call_monitor_timeout: float | None = None
    redelivered: bool = False


class Delivery:
    """One hand-over of a message from a queue to a consumer."""

    __slots__ = ("arrived", "consumer", "message", "queue", "settled")

    def __init__(self, message: Message, queue: _Queue, consumer: Consumer) -> None:
        self.message = message
        self.queue = queue
        self.consumer = consumer
        self.arrived = time.monotonic()
        self.settled = False


class _Queue:
    __slots__ = ("consumers", "key", "next_consumer", "ready")

    def __init__(self, key: QueueKey) -> None:
        self.key = key
        self.ready: collections.deque[Message] = collections.deque()
        self.consumers: list[Consumer] = []
        self.next_consumer = 0


class Consumer:
    """A subscription of one listener to some queues, over one connection.

    ``credit`` is how many more messages the consumer accepts now.  Messages
    handed over wait in ``buffer`` until the listener takes them.  A consumer
    with a ``sink`` (the reply router) is fed synchronously instead: the sink
    is called under the broker lock and must only touch its own leaf lock.
    """

    __slots__ = (
        "attached",
        "buffer",
        "cond",
        "connection",
        "credit",
        "on_detached",
        "queues",
        "sink",
        "unacked",
    )

    def __init__(
        self,
        connection: Connection,
        queues: list[_Queue],
        cond: threading.Condition | None,
        sink: Callable[[Message], None] | None,
        on_detached: Callable[[], None] | None,
    ) -> None:
        self.connection = connection
        self.queues = queues
        self.cond = cond
        self.sink = sink
        self.on_detached = on_detached
        self.credit = 0
        self.attached = True
        self.buffer: collections.deque[Delivery] = collections.deque()
        self.unacked: dict[int, Delivery] = {}


class Connection:
    """One driver's connection to the broker.

    ``generation`` counts the connections the broker has opened; a driver that
    reconnects gets a higher one, which makes failovers visible in tests.
    """

    def __init__(self, broker: Broker, generation: int) -> None:
        self.broker = broker
        self.generation = generation
        self.alive = True
        self.consumers: set[Consumer] = set()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "cut"
        return f"<Connection {self.broker.name!r} #{self.generation} {state}>"


@dataclasses.dataclass
class BrokerStats:
    """Counters for tests; read them, never rely on them for synchronisation."""

    publish_attempts: int = 0
    publishes_refused: int = 0
    confirmations_lost: int = 0
    duplicates_dropped: int = 0
    messages_dropped: int = 0
    connects: int = 0
    connects_refused: int = 0
    connections_cut: int = 0
    consumers_detached: int = 0
    redeliveries: int = 0


class Broker:
    """An in-process broker for one virtual host; see the module docstring."""

    def __init__(self, name: str = "/") -> None:
        self.name = name
        self.lock = threading.Lock()
        self.stats = BrokerStats()
        #: Raw bodies as stored, newest last: ``(queue keys, body text)``.
        self.published: collections.deque[tuple[tuple[QueueKey, ...], str]] = (
            collections.deque(maxlen=PUBLISHED_LOG_SIZE)
        )
        self._queues: dict[QueueKey, _Queue] = {}
        # (exchange, topic) -> the shared queue and the pool queues bound to it.
        self._topic_bindings: dict[tuple[str, str], list[_Queue]] = {}
        self._fanout_bindings: dict[tuple[str, str], list[_Queue]] = {}
        self._connections: set[Connection] = set()
        self._generations = itertools.count(1)
        self._seen_ids: set[str] = set()
        self._seen_order: collections.deque[str] = collections.deque()
        self._reachable = True
        self._confirmations_to_lose = 0
        # Conditions (on self.lock) to wake when the broker becomes reachable.
        self._heal_waiters: set[threading.Condition] = set()
        self._healed = threading.Condition(self.lock)

    def __repr__(self) -> str:
        return f"<Broker {self.name!r}>"

    # -- connections -------------------------------------------------------

    def connect(self) -> Connection:
        """Open a connection; raises :class:`BrokerUnreachable` in an outage."""
        with self.lock:
            if not self._reachable:
                self.stats.connects_refused += 1
                raise BrokerUnreachable(f"broker {self.name!r} is unreachable")
            connection = Connection(self, next(self._generations))
            self._connections.add(connection)
            self.stats.connects += 1
            return connection

    def close(self, connection: Connection) -> None:
        """Close a connection for good; its consumers are detached."""
        self._run_hooks(self._drop_connection(connection, cut=False))

    @property
    def reachable(self) -> bool:
        return self._reachable

    def wait_reachable(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` for the broker to be reachable; True if it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while not self._reachable:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._healed.wait(remaining)
            return True

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
            self._reachable = True
            self._confirmations_to_lose = 0
            self._healed.notify_all()
            for cond in self._heal_waiters:
                cond.notify_all()

    # -- subscriptions -----------------------------------------------------

    def subscribe(
        self,
        connection: Connection,
        keys: Iterable[QueueKey],
        *,
        cond: threading.Condition | None = None,
        sink: Callable[[Message], None] | None = None,
        on_detached: Callable[[], None] | None = None,
        credit: int = 0,
    ) -> Consumer:
        """Declare the queues ``keys`` (if absent) and attach a consumer to them."""
        with self.lock:
            return self.subscribe_locked(
                connection, keys, cond=cond, sink=sink, on_detached=on_detached, credit=credit
            )

    def subscribe_locked(
        self,
        connection: Connection,
        keys: Iterable[QueueKey],
        *,
        cond: threading.Condition | None = None,
        sink: Callable[[Message], None] | None = None,
        on_detached: Callable[[], None] | None = None,
        credit: int = 0,
    ) -> Consumer:
        self._check_usable_locked(connection)
        queues = [self._declare_locked(key) for key in keys]
        consumer = Consumer(connection, queues, cond, sink, on_detached)
        consumer.credit = credit
        connection.consumers.add(consumer)
        for queue in queues:
            queue.consumers.append(consumer)
        self._feed_locked(consumer)
        return consumer

    def unsubscribe(self, consumer: Consumer, delete: Iterable[QueueKey] = ()) -> None:
        """Detach ``consumer`` (its unsettled messages go back) and delete ``delete``."""
        with self.lock:
            # The detach hook announces an involuntary loss: not called here.
            self._detach_locked(consumer)
            consumer.connection.consumers.discard(consumer)
            for key in delete:
                self._delete_locked(key)

    def declare(self, key: QueueKey) -> None:
        with self.lock:
            self._declare_locked(key)

    def delete_queue(self, key: QueueKey) -> None:
        with self.lock:
            self._delete_locked(key)

    def set_credit_locked(self, consumer: Consumer, credit: int) -> None:
        """Ask for ``credit`` more messages (0: none for now)."""
        consumer.credit = credit
        if credit and consumer.attached:
            self._feed_locked(consumer)

    def take_locked(self, consumer: Consumer, count: int) -> list[Delivery]:
        """Take up to ``count`` messages out of the consumer's buffer."""
        buffer = consumer.buffer
        taken = [buffer.popleft() for _ in range(min(count, len(buffer)))]
        if taken and not buffer:
            for queue in consumer.queues:  # a pick-up the queues may wait for
                if queue.ready:
                    self._pump_locked(queue)
        return taken

    def give_back_locked(self, deliveries: Iterable[Delivery]) -> None:
        """Return messages a listener took but will never hand on, in order."""
        for delivery in reversed(list(deliveries)):
            self._settle_locked(delivery, requeue=True, front=True)

    # -- settling ------------------------------------------------------------

    def settle(self, delivery: Delivery, *, requeue: bool) -> None:
        """Acknowledge or requeue ``delivery``; raises :class:`BrokerError`."""
        with self.lock:
            if delivery.settled:
                return
            consumer = delivery.consumer
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
        delivery.settled = True
        delivery.consumer.unacked.pop(id(delivery), None)
        if requeue:
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

    def publish(
        self,
        connection: Connection,
        message: Message,
        exchange: str,
        topic: str,
        *,
        server: str | None = None,
        fanout: bool = False,
        declare: bool = False,
    ) -> int:
        """Route ``message`` to the queues bound to its address.

        ``declare`` creates the default shared queue first (notifications are
        store-and-forward).  Returns the number of queues that received a copy.
        """
        with self.lock:
            self._admit_locked(connection)
            if message.id in self._seen_ids:
                self.stats.duplicates_dropped += 1
                self._confirm_locked()
                return 0
            if fanout:
                queues = self._fanout_bindings.get((exchange, topic), ())
            elif server is not None:
                queue = self._queues.get(("server", exchange, topic, server))
                queues = (queue,) if queue is not None else ()
            else:
                if declare:
                    self._declare_locked(("topic", exchange, topic, None))
                queues = self._topic_bindings.get((exchange, topic), ())
            self._store_locked(message, queues)
            self._confirm_locked()
            return len(queues)

    def publish_to_queue(self, connection: Connection, message: Message, key: QueueKey) -> int:
        """Publish straight to one queue (replies); dropped if it does not exist."""
        with self.lock:
            self._admit_locked(connection)
            if message.id in self._seen_ids:
                self.stats.duplicates_dropped += 1
                self._confirm_locked()
                return 0
            queue = self._queues.get(key)
            self._store_locked(message, (queue,) if queue is not None else ())
            self._confirm_locked()
            return 0 if queue is None else 1

    def _admit_locked(self, connection: Connection) -> None:
        self.stats.publish_attempts += 1
        try:
            self._check_usable_locked(connection)
        except BrokerError:
            self.stats.publishes_refused += 1
            raise

    def _check_usable_locked(self, connection: Connection) -> None:
        if not self._reachable:
            raise BrokerUnreachable(f"broker {self.name!r} is unreachable")
        if not connection.alive:
            raise ConnectionLost(f"{connection!r} was cut")

    def _confirm_locked(self) -> None:
        if self._confirmations_to_lose > 0:
            self._confirmations_to_lose -= 1
            self.stats.confirmations_lost += 1
            raise ConfirmationLost("publish stored, confirmation lost")

    def _store_locked(self, message: Message, queues: Sequence[_Queue]) -> None:
        self._remember_locked(message.id)
        self.published.append((tuple(q.key for q in queues), message.body))
        if not queues:
            self.stats.messages_dropped += 1
        elif len(queues) == 1:
            queues[0].ready.append(message)
            self._pump_locked(queues[0])
        else:
            for queue in list(queues):  # each queue gets its own copy (redelivered flag)
                queue.ready.append(dataclasses.replace(message))
                self._pump_locked(queue)

    def _remember_locked(self, message_id: str) -> None:
        self._seen_ids.add(message_id)
        self._seen_order.append(message_id)
        if len(self._seen_order) > DEDUP_WINDOW:
            self._seen_ids.discard(self._seen_order.popleft())

    # -- delivery --------------------------------------------------------------

    def _pump_locked(self, queue: _Queue) -> None:
        """Hand ready messages to consumers with credit, round-robin.

        While some consumer of the queue has been handed all it asked for and
        has not picked it up yet, the queue waits: otherwise a consumer that
        comes back for more before the others have even been scheduled (green
        threads never preempt) would take everything.  Pick-up is prompt (the
        consumer's thread has been notified), so the wait is short.
        """
        ready = queue.ready
        consumers = queue.consumers
        if not ready or not consumers:
            return
        for consumer in consumers:
            if consumer.buffer and consumer.credit <= 0:
                return
        while ready:
            count = len(consumers)
            start = queue.next_consumer % count
            for offset in range(count):
                consumer = consumers[(start + offset) % count]
                if consumer.sink is not None or consumer.credit > 0:
                    break
            else:
                return
            queue.next_consumer = (start + offset + 1) % count
            self._hand_over_locked(queue, consumer, ready.popleft())

    def _hand_over_locked(self, queue: _Queue, consumer: Consumer, message: Message) -> None:
        if consumer.sink is not None:
            consumer.sink(message)
            return
        delivery = Delivery(message, queue, consumer)
        consumer.credit -= 1
        consumer.buffer.append(delivery)
        consumer.unacked[id(delivery)] = delivery
        if consumer.cond is not None:
            consumer.cond.notify()  # one thread collects for a consumer

    def _feed_locked(self, consumer: Consumer) -> None:
        for queue in consumer.queues:
            if consumer.sink is None and consumer.credit <= 0:
                return
            self._pump_locked(queue)

    # -- queues and detaching --------------------------------------------------

    def _declare_locked(self, key: QueueKey) -> _Queue:
        queue = self._queues.get(key)
        if queue is not None:
            return queue
        queue = self._queues[key] = _Queue(key)
        kind = key[0]
        if kind == "topic":
            self._topic_bindings.setdefault((key[1], key[2]), []).append(queue)
        elif kind == "fanout":
            self._fanout_bindings.setdefault((key[1], key[2]), []).append(queue)
        return queue

    def _delete_locked(self, key: QueueKey) -> None:
        queue = self._queues.pop(key, None)
        if queue is None:
            return
        for bindings in (self._topic_bindings, self._fanout_bindings):
            bound = bindings.get((key[1], key[2])) if len(key) > 2 else None
            if bound and queue in bound:
                bound.remove(queue)
                if not bound:
                    del bindings[(key[1], key[2])]
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
        unsettled = sorted(consumer.unacked.values(), key=lambda d: d.arrived)
        consumer.unacked.clear()
        consumer.buffer.clear()
        for delivery in reversed(unsettled):
            self._requeue_locked(delivery.queue, delivery.message, front=True)
        if consumer.cond is not None:
            consumer.cond.notify_all()
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

    def queue_keys(self) -> list[QueueKey]:
        with self.lock:
            return list(self._queues)

    def peek(self, key: QueueKey) -> list[Any]:
        """The decoded stored bodies waiting in queue ``key`` (not consumed)."""
        with self.lock:
            queue = self._queues.get(key)
            bodies = [m.body for m in queue.ready] if queue is not None else []
        return [json.loads(body) for body in bodies]

    def depth(self, key: QueueKey) -> int:
        """Messages ready in queue ``key`` (0 if it does not exist)."""
        with self.lock:
            queue = self._queues.get(key)
            return len(queue.ready) if queue is not None else 0

    def consumer_count(self, key: QueueKey) -> int:
        with self.lock:
            queue = self._queues.get(key)
            return len(queue.consumers) if queue is not None else 0
