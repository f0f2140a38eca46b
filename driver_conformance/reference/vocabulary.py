"""The broker's vocabulary: queues and their keys, addresses, messages, consumers, connections.

These are the nouns of :mod:`driver_conformance.reference.broker` (read its
docstring first): what a queue is keyed by, where a publish is addressed, what
a stored message and a delivery hold, a consumer's credit and inbox, a
connection's generation.  They hold state; the rules that move messages
between them are the broker's, under its one lock.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from driver_conformance.reference.broker import Broker


class QueueKind(enum.StrEnum):
    """What a queue is for: the first field of its :class:`QueueKey`."""

    #: Shared by every listener of ``(exchange, topic)`` (``name`` None), or the
    #: queue of one notification pool (``name`` the pool).
    TOPIC = "topic"
    #: The queue of one server of ``(exchange, topic)`` (``name`` the server).
    SERVER = "server"
    #: One listener's own queue for ``(exchange, topic)`` fanouts (``name`` its owner).
    FANOUT = "fanout"
    #: One driver's reply queue (``name`` the queue's name, no exchange or topic).
    REPLY = "reply"


class QueueKey(NamedTuple):
    """A queue's identity; equal to the plain tuple of its fields."""

    kind: QueueKind
    exchange: str
    topic: str
    #: The pool (TOPIC; None for the shared queue), server, owner or reply queue name.
    name: str | None = None

    @classmethod
    def reply(cls, name: str) -> QueueKey:
        return cls(QueueKind.REPLY, "", "", name)


class Address(NamedTuple):
    """Where ``send`` or ``send_notification`` publishes: the target, resolved.

    The exchange is always set: the driver has applied its default exchange.
    """

    exchange: str
    topic: str
    server: str | None = None
    fanout: bool = False
    #: Notifications are store-and-forward: the topic's shared queue is declared
    #: before routing, so what is published before anyone listens is kept.
    store_and_forward: bool = False


class MessageKind(enum.StrEnum):
    """What a stored message is."""

    #: Sent by ``send()``: a cast (no ``reply_to``) or a call.
    REQUEST = "request"
    #: Sent by ``send_notification()``; the body may be the oslo envelope.
    NOTIFICATION = "notification"
    #: The answer to a call, on the caller's reply queue.
    REPLY = "reply"
    #: A call-monitor heartbeat, on the caller's reply queue; no body.
    HEARTBEAT = "heartbeat"


class WireRecord(NamedTuple):
    """One notification as the broker stored it (:meth:`Broker.wire_records`)."""

    kind: MessageKind
    #: Where it was published.
    to: Address
    #: How many queues stored a copy (0: none was bound, it was dropped).
    queues: int
    #: The stored text itself (not a copy); None when larger than the log's budget.
    body: str | None
    #: ``len`` of the stored text, kept or not.
    size: int


class BrokerError(Exception):
    """An operation on the broker failed; the driver may retry it."""


class BrokerUnreachable(BrokerError):
    """The broker refuses every operation (an outage is in force)."""


class ConnectionLost(BrokerError):
    """The connection used for the operation has been cut."""


class ConfirmationLost(BrokerError):
    """The message was stored, but its publisher is told it failed."""


class HostUnreachable(BrokerUnreachable):
    """The host connected to is down; the broker is reachable on its other hosts."""


class LinkSilent(BrokerError):
    """Nothing came back over the link in time: it is frozen (a silent partition)."""


@dataclasses.dataclass(slots=True)
class Message:
    """A message as the broker stores it.

    ``body`` is JSON text, so every consumer decodes its own copy and nothing
    is ever shared by reference between publisher and consumers.
    """

    id: int
    body: str
    kind: MessageKind = MessageKind.REQUEST
    #: A call's reply queue (None for casts and notifications).
    reply_to: QueueKey | None = None
    #: For a reply or heartbeat, the id of the request it answers.
    correlation_id: int | None = None
    #: ``time.monotonic()`` deadline of the caller waiting for a reply, if any.
    deadline: float | None = None
    call_monitor_timeout: float | None = None
    redelivered: bool = False


class Delivery:
    """One hand-over of a message from a queue to a consumer.

    ``arrived`` (``time.monotonic()``) starts a batch's timer when it is the
    batch's first message.
    """

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

    ``credit`` is how many more messages the consumer accepts now: its
    listener grants it while it gathers a batch, each hand-over uses one.
    What is handed over is put in ``inbox``, where the listener's thread takes
    it.  The inbox is a :class:`~queue.SimpleQueue` rather than a condition on
    the broker lock: a put never blocks (so it is safe under the lock), and
    the woken thread has its message without waiting for the broker lock,
    which the publisher still holds.  None in the inbox means "look again"
    (the consumer was stopped or detached).  ``handed`` counts hand-overs, so
    that the listener knows how many it has not taken yet.

    A consumer with a ``sink`` (the reply router) is fed synchronously
    instead: the sink is called under the broker lock and must only touch
    its own leaf lock.
    """

    __slots__ = (
        "attached",
        "connection",
        "credit",
        "handed",
        "inbox",
        "on_detached",
        "queues",
        "sink",
        "unacked",
    )

    def __init__(
        self,
        connection: Connection,
        queues: list[_Queue],
        sink: Callable[[Message], None] | None,
        on_detached: Callable[[], None] | None,
    ) -> None:
        self.connection = connection
        self.queues = queues
        self.sink = sink
        self.on_detached = on_detached
        self.credit = 0
        self.handed = 0
        self.attached = True
        self.inbox: SimpleQueue[Delivery | None] = SimpleQueue()
        #: Handed over and not settled yet, in the order they were handed over.
        self.unacked: dict[Delivery, None] = {}


class Connection:
    """One driver's connection to the broker.

    ``generation`` counts the connections the broker has opened; a driver that
    reconnects gets a higher one, which makes failovers visible in tests.
    """

    def __init__(self, broker: Broker, generation: int, host: int = 0) -> None:
        self.broker = broker
        self.generation = generation
        #: Which of the broker's hosts (0 .. HOSTS - 1) the connection was made to.
        self.host = host
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
    #: Driver operations that gave up on a frozen link (see Link.cross).
    silent_attempts: int = 0
