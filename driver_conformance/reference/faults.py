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
* **freeze** (:meth:`ReferenceFaults.freeze`): a silent partition.  Nothing
  crosses between the drivers and the broker and nothing is closed: a
  driver operation waits for the thaw, and gives the attempt up as failed
  after :data:`~driver_conformance.reference.link.FREEZE_PATIENCE` (or at
  its deadline), as a missed heartbeat would tell a networked driver; it
  then retries per its ``retry``.  Deliveries wait in the listeners until
  the thaw.
* **delay** (:meth:`ReferenceFaults.delay`): every crossing takes longer:
  a publish the delay there and back (the request and its confirmation), a
  delivery the delay once.
* **host outage** (:meth:`ReferenceFaults.lose_host`): one of the broker's
  :data:`~driver_conformance.reference.broker.HOSTS` hosts goes down: its
  connections are cut and it refuses new ones; drivers reconnect to another
  host and listeners re-subscribe there.  The queues are the broker's, so
  nothing stored is lost.
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
from driver_conformance.proxy.injector import HOST_OUTAGE
from driver_conformance.reference import vhosts
from driver_conformance.reference.broker import Broker, BrokerStats


class ReferenceFaults(faults.FaultInjector):
    """Faults for the broker of one virtual host (a URL, a vhost name or a Broker)."""

    kinds: ClassVar[frozenset[str]] = frozenset(
        {faults.OUTAGE, faults.CUT, faults.LOST_CONFIRM, faults.FREEZE, faults.DELAY,
         HOST_OUTAGE}
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

    def freeze(self) -> None:
        self.broker.freeze()

    def delay(self, seconds: float) -> None:
        self.broker.set_delay(seconds)

    def lose_host(self, index: int) -> int:
        """Host ``index`` of the broker goes down until :meth:`heal`; returns ``index``."""
        self.broker.lose_host(index)
        return index

    def heal(self) -> None:
        self.broker.heal()

    def publish_attempts(self) -> int:
        # A send that finds no connection fails at connect, before it can
        # publish: that is an attempt too.
        stats = self.broker.stats
        return stats.publish_attempts + stats.connects_refused
