"""What tests, scenarios and adapters may read of a broker, without changing it.

:class:`BrokerViews` is the read-only half of
:class:`~driver_conformance.reference.broker.Broker`: the queues it holds,
what waits in them, and the wire log of notifications as stored (the raw
view the envelope clause is judged on).  Every view takes the broker's lock
and returns copies of lists, never the broker's own.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any

from driver_conformance.reference.vocabulary import MessageKind, QueueKey, WireRecord, _Queue


class BrokerViews:
    """Read-only views of a broker's state (mixed into ``Broker``)."""

    lock: threading.Lock
    wire_log_bytes: int
    _queues: dict[QueueKey, _Queue]
    _wire: collections.deque[tuple[Any, ...]]
    _wire_bytes: int

    def wire_records(
        self,
        *,
        exchange: str | None = None,
        topic: str | None = None,
        kind: MessageKind | None = None,
    ) -> list[WireRecord]:
        """The latest notifications as stored, oldest first.

        The raw view for scenarios about what goes on the wire: the
        notification envelope (``version`` 2.0) or its absence (1.0), the one
        stored form a clause speaks of.  Each record holds the body exactly as
        stored, the same string object, no copy.  The log is bounded in bytes
        (:attr:`wire_log_bytes`, by default ``broker.WIRE_LOG_BYTES``) and
        in records (``broker.WIRE_LOG_RECORDS``), the oldest going first; a body
        larger than the whole budget is recorded with ``body`` None.
        Requests, replies and heartbeats are not recorded: their stored form
        is the reference's own, and recording them would cost every call
        (:meth:`peek` shows what waits in a queue).  ``topic`` matches the
        published topic exactly (``"t.info"`` for priority info on ``t``).
        """
        with self.lock:
            records = [WireRecord(*fields) for fields in self._wire]
        return [r for r in records
                if (exchange is None or r.to.exchange == exchange)
                and (topic is None or r.to.topic == topic)
                and (kind is None or r.kind == kind)]

    def clear_wire_records(self) -> None:
        """Forget the wire log (memory it holds is released)."""
        with self.lock:
            self._wire.clear()
            self._wire_bytes = 0

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
