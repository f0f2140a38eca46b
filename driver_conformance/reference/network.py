"""The network between the reference drivers and their broker, and the broker's hosts.

Faults real networks have, kept as state of the broker (the
:class:`BrokerNetwork` part of :class:`~driver_conformance.reference.broker.Broker`):

* **frozen**: a silent partition; nothing passes, nothing is closed.
* **delayed**: every crossing takes :attr:`BrokerNetwork.delay` seconds more.
* **hosts**: the broker is reachable on :data:`HOSTS` hosts, as a clustered
  or multi-homed broker is through the several hosts of a transport URL.  A
  connection is made to one of them; one host can be lost
  (:meth:`BrokerNetwork.lose_host`): its connections are cut and it refuses
  new ones, and a driver moves to another host.

The broker only keeps the state; the drivers' side of the link honours it,
outbound in :meth:`Link.cross <driver_conformance.reference.link.Link.cross>`
and :meth:`Link.connection <driver_conformance.reference.link.Link.connection>`,
inbound where a listener takes a delivery
(:mod:`~driver_conformance.reference.subscription`).  The flags are read
without the broker's lock (single attribute reads); they are written under it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: How many hosts the broker is reachable on (see the module docstring).
HOSTS = 2


class BrokerNetwork:
    """The network state of a broker (a mixin of its
    :class:`~driver_conformance.reference.broker.Broker`)."""

    # Provided by the Broker.
    lock: Any
    _connections: set[Any]
    _drop_connection_locked: Callable[..., list[Any]]
    _run_hooks: Callable[..., None]

    def _init_network(self) -> None:
        self._frozen = False
        self._delay = 0.0
        self._hosts_down: set[int] = set()

    @property
    def hosts_down(self) -> frozenset[int]:
        """The hosts lost (:meth:`lose_host`) and not healed yet."""
        return frozenset(self._hosts_down)

    @property
    def frozen(self) -> bool:
        """Whether the network is frozen: nothing crosses it until :meth:`heal`."""
        return self._frozen

    @property
    def delay(self) -> float:
        """Seconds each crossing of the network takes, one way (0: none added)."""
        return self._delay

    @property
    def disturbed(self) -> bool:
        """Whether the network is frozen or delayed (the drivers' fast path checks this)."""
        return self._frozen or self._delay > 0

    def freeze(self) -> None:
        """A silent partition: nothing crosses the network, nothing is closed, until heal."""
        with self.lock:
            self._frozen = True

    def set_delay(self, seconds: float) -> None:
        """Every crossing of the network takes ``seconds`` more, one way, until heal."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        with self.lock:
            self._delay = float(seconds)

    def lose_host(self, host: int) -> int:
        """Host ``host`` goes down until heal: its connections are cut, new ones refused.

        Returns how many connections were cut.  The queues stay (they are the
        broker's, not the host's), so nothing stored is lost.
        """
        if not 0 <= host < HOSTS:
            raise ValueError(f"host must be in 0..{HOSTS - 1}, got {host}")
        with self.lock:
            self._hosts_down.add(host)
            connections = [c for c in self._connections if c.host == host]
            hooks: list[Callable[[], None] | None] = []
            for connection in connections:
                hooks.extend(self._drop_connection_locked(connection, cut=True))
        self._run_hooks(hooks)
        return len(connections)
