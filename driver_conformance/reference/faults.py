"""Fault injection for the reference broker: the kit's :class:`FaultInjector`.

The faults act on the broker, not on a driver, so they hit every driver
connected to it, like a real broker restart or network cut would:

* **outage** (:meth:`ReferenceFaults.start_outage`): the broker refuses every
  publish, connect and subscribe, and detaches every consumer.  A send fails
  each attempt and retries per its ``retry``; ``listen()`` waits for the heal
  for up to :data:`~driver_conformance.reference.subscription.LISTEN_PATIENCE`
  seconds, then raises a ``TransportDriverError``; listeners already running
  re-subscribe on their own after the heal.
* **cut** (:meth:`ReferenceFaults.cut_connections`): every open connection is
  closed once.  Consumers are detached and their unacknowledged messages go
  back to their queues; drivers reconnect (a new connection generation) and
  listeners re-subscribe without being told.
* **lost confirmation** (:meth:`ReferenceFaults.lose_confirmations`): the next
  ``n`` publishes are stored but reported as failed; the sender retries and
  the broker drops the duplicate by message id.

:attr:`ReferenceFaults.stats` exposes the broker's counters (publish attempts,
confirmations lost, duplicates dropped, connections cut, ...).
"""

from __future__ import annotations

from typing import ClassVar

import oslo_messaging

from driver_conformance import faults
from driver_conformance.reference import vhosts
from driver_conformance.reference.broker import Broker, BrokerStats


class ReferenceFaults(faults.FaultInjector):
    """Faults for the broker of one virtual host (a URL, a vhost name or a Broker)."""

    kinds: ClassVar[frozenset[str]] = frozenset(
        {faults.OUTAGE, faults.CUT, faults.LOST_CONFIRM}
    )

    def __init__(self, broker: Broker | str | oslo_messaging.TransportURL | None = None):
        self.broker = broker if isinstance(broker, Broker) else vhosts.get_broker(broker)

    @classmethod
    def for_url(cls, url: str | oslo_messaging.TransportURL | None) -> ReferenceFaults:
        return cls(vhosts.get_broker(url))

    @property
    def stats(self) -> BrokerStats:
        return self.broker.stats

    def start_outage(self) -> None:
        self.broker.start_outage()

    def cut_connections(self) -> None:
        self.broker.cut_connections()

    def lose_confirmations(self, count: int) -> None:
        self.broker.lose_confirmations(count)

    def heal(self) -> None:
        self.broker.heal()

    def publish_attempts(self) -> int:
        # A send that finds no connection fails at connect, before it can
        # publish: that is an attempt too.
        stats = self.broker.stats
        return stats.publish_attempts + stats.connects_refused
