"""A loopback TCP proxy that breaks the kit's own connections to a real broker, on demand.

Retry, no-duplication and failover clauses can only be observed while the
network misbehaves.  On a shared broker the kit may not stop the broker or
close anyone else's connections, so every connection a driver under test
makes goes through one of these proxies instead (the adapter rewrites the
transport URL to point at it), and the faults act on the proxy alone:

* **cut** -- every live connection is reset on both sides, once;
* **refuse** -- new connections are refused (``ECONNREFUSED``, as from a
  host where the broker is down); with live ones cut, this is an *outage*.
  The listening socket is closed for it, and a bound socket that does not
  listen holds the port meanwhile, so that no other socket of the machine
  can take the port before the proxy listens on it again;
* **freeze** -- nothing is read or written any more, in either direction,
  and nothing is closed: a silent partition that only heartbeats or
  timeouts can detect;
* **delay** -- every chunk is held for a fixed time before it is passed on;
* **lost confirmation** (``protocol="amqp"`` only) -- the next N publishes
  reach the broker whole, and each one's connection is cut as soon as the
  broker's answer (its ``basic.ack``) arrives, before the client sees it.

The lanes run their proxies in a child process (:class:`ProxyProcess`,
driven over its stdin and stdout), so that the proxy's own sockets and
threads are never mistaken for the driver's (``driver.cleanup.releases-
resources`` counts the sockets the kit's process holds) and the proxy does
not wait for the GIL of the process whose driver it is breaking.

The package has one module per job:

* :mod:`~driver_conformance.proxy.loop` -- the proxy itself
  (:class:`FaultProxy`): a selector loop over its pipes;
* :mod:`~driver_conformance.proxy.pipes` -- what the loop keeps per
  connection, and its counters (:class:`ProxyStats`);
* :mod:`~driver_conformance.proxy.amqp` -- AMQP 0-9-1 frames read off each
  connection, publish counting and lost confirmations;
* :mod:`~driver_conformance.proxy.injector` -- :class:`ProxyFaults`, the
  kit's fault-injector interface over a set of proxies;
* :mod:`~driver_conformance.proxy.process` -- the proxies in a child
  process (:class:`ProxyProcess`, :class:`RemoteProxy`, :func:`proxies_for`);
* :mod:`~driver_conformance.proxy.wiring` -- :func:`proxied`, the one call
  an adapter of a networked driver needs: a transport URL whose hosts are
  replaced by proxies, and the injector over them.
"""

from driver_conformance.proxy.injector import ProxyFaults
from driver_conformance.proxy.loop import (
    CHUNK,
    CONTROL_TIMEOUT,
    FaultProxy,
    ProxyError,
    ProxyStats,
)
from driver_conformance.proxy.process import ProxyProcess, RemoteProxy, main, proxies_for, serve
from driver_conformance.proxy.wiring import Proxied, proxied

__all__ = [
    "CHUNK",
    "CONTROL_TIMEOUT",
    "FaultProxy",
    "Proxied",
    "ProxyError",
    "ProxyFaults",
    "ProxyProcess",
    "ProxyStats",
    "RemoteProxy",
    "main",
    "proxied",
    "proxies_for",
    "serve",
]
