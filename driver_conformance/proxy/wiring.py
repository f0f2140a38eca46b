"""Fault injection for a networked driver's adapter in one ``with``: :func:`proxied`.

An adapter whose driver talks to a broker over TCP gets every fault kind the
proxy offers by handing the kit a transport URL that points at loopback
proxies instead of the broker, and the injector that drives those proxies.
:func:`proxied` does both, so a third-party adapter needs neither
:func:`~driver_conformance.proxy.proxies_for` nor :class:`ProxyFaults` nor
URL surgery of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

from driver_conformance.proxy.injector import ProxyFaults
from driver_conformance.proxy.process import proxies_for
from driver_conformance.urls import mask_url, network_hosts, rewrite_hosts


class Proxied(NamedTuple):
    """What :func:`proxied` yields; unpacks as ``(url, faults)``."""

    #: The transport URL to build the drivers under test with: every host
    #: replaced by its own loopback proxy, credentials, virtual host and query kept.
    url: str
    #: The kit's fault injector over those proxies (``Backend.faults``).
    faults: ProxyFaults

    @property
    def ports(self) -> list[int]:
        """The proxies' loopback ports, in the order of the URL's hosts."""
        return [p.port for p in self.faults.proxies]

    @property
    def facts(self) -> dict[str, str]:
        """Report facts naming each proxy and the host behind it (no credentials)."""
        return {"fault proxy": self.faults.describe()}


@contextlib.contextmanager
def proxied(url: str, default_port: int, *, name: str = "fault-proxy",
            protocol: str | None = None, out_of_process: bool = True) -> Iterator[Proxied]:
    """Put one loopback fault proxy in front of every host of ``url`` for the block.

    ``default_port`` is the port of a host given without one (the adapter's
    :attr:`~driver_conformance.adapter.Adapter.default_port`).  ``name``
    labels the proxies (use the run's ``prefix``: several runs share a
    machine).  ``protocol`` tells the proxies what the connections carry, for
    the faults that need to know (``"amqp"`` for AMQP 0-9-1 adds lost
    confirmations and a publish count, see :meth:`ProxyFaults.kinds_for`);
    ``None`` means bytes only.  The proxies run in a child process unless ``out_of_process`` is
    false, so that their sockets are never counted as the driver's.  When the
    block ends they stop, which resets every connection the run's drivers
    made through them: nothing of the run stays connected to the broker.

    Raises ``ValueError`` (password masked) for a URL without a network host,
    and :class:`~driver_conformance.proxy.ProxyError` if the proxies cannot
    start.

    A complete adapter for a driver registered under the scheme ``mq``::

        import contextlib
        from collections.abc import Iterator

        from driver_conformance.adapter import Adapter, Backend, BackendUnavailable
        from driver_conformance.proxy import proxied
        from driver_conformance.urls import unreachable_reason


        class MyAdapter(Adapter):
            name = "mq"
            default_url = "mq://user:secret@broker.example:7000/"
            default_port = 7000

            @contextlib.contextmanager
            def backend(self, url: str, prefix: str) -> Iterator[Backend]:
                reason = unreachable_reason(url, self.default_port)
                if reason:
                    raise BackendUnavailable(reason)
                with proxied(url, self.default_port, name=f"mq-proxy-{prefix}") as proxy:
                    yield Backend(url=proxy.url, faults=proxy.faults, facts=proxy.facts)

    (``with proxied(...) as (proxy_url, injector):`` unpacks the same pair.)
    The kit then builds every driver with ``proxy.url`` and drives
    ``proxy.faults`` in its retry, failover and partition scenarios; the
    fault kinds the run offers are the injector's (:attr:`ProxyFaults.kinds`).
    """
    hosts = [(host, port or default_port) for host, port in network_hosts(url)]
    if not hosts:
        raise ValueError(f"{mask_url(url)} names no network host to put a proxy in front of")
    with proxies_for(hosts, name=name, protocol=protocol,
                     out_of_process=out_of_process) as proxies:
        rewritten = rewrite_hosts(url, [p.address for p in proxies])
        yield Proxied(url=rewritten, faults=ProxyFaults(proxies))
