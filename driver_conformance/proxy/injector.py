"""The kit's fault injector over proxies: one fault, applied to every proxy of a backend."""

from __future__ import annotations

import collections
import contextlib
from typing import Any, ClassVar

from driver_conformance import faults
from driver_conformance.proxy.loop import ProxyError

#: One host of a multi-host transport URL becomes unreachable (its connections are
#: reset, new ones refused) until healed; the backend itself stays up.  Unlike
#: :data:`~driver_conformance.faults.NODE_LOSS` no node of the backend is lost, nor
#: what it stores: only the way to it.
HOST_OUTAGE = "host-outage"


class ProxyFaults(faults.FaultInjector):
    """The kit's :class:`~driver_conformance.faults.FaultInjector` over one or more proxies.

    A multi-host transport URL gets one proxy per host; every fault applies to
    all of them, so an outage is an outage of the whole cluster as the driver
    sees it.  A lost confirmation needs a proxy that understands the protocol,
    so :data:`~driver_conformance.faults.LOST_CONFIRM` is declared only when
    every proxy was built with the same known ``protocol`` (``"amqp"``); so
    is a count of publish attempts.
    """

    #: What proxies without a protocol offer; an instance's :attr:`kinds` may add to it.
    kinds: ClassVar[frozenset[str]] = frozenset(
        {faults.OUTAGE, faults.CUT, faults.FREEZE, faults.DELAY})

    def __init__(self, proxies: list[Any]) -> None:
        # FaultProxy objects, or RemoteProxy objects of a ProxyProcess.
        self.proxies = proxies
        protocols = {getattr(p, "protocol", None) for p in proxies}
        #: The protocol every proxy carries, or None.
        self.protocol: str | None = protocols.pop() if len(protocols) == 1 else None
        # An instance attribute: the kinds depend on what the proxies were told.
        self.kinds = self.kinds_for(self.protocol)  # type: ignore[misc]

    @classmethod
    def kinds_for(cls, protocol: str | None = None) -> frozenset[str]:
        """The fault kinds an injector over proxies of ``protocol`` offers.

        For an adapter's ``Capabilities.faults``, known before any proxy runs.
        """
        if protocol == "amqp":
            return cls.kinds | {faults.LOST_CONFIRM}
        return cls.kinds

    def describe(self) -> str:
        """``127.0.0.1:<port> -> <host>:<port>`` for each proxy (a report fact; no credentials)."""
        return ", ".join(f"{p.address[0]}:{p.port} -> {p.upstream[0]}:{p.upstream[1]}"
                         for p in self.proxies)

    def start_outage(self) -> None:
        for proxy in self.proxies:
            proxy.outage()

    def cut_connections(self) -> None:
        for proxy in self.proxies:
            proxy.cut()

    def lose_confirmations(self, count: int) -> None:
        """The next ``count`` publishes, through any of the proxies, lose their confirmation.

        Proxies sharing a budget (those of one :func:`proxies_for` or one
        child process) are armed once, so ``count`` is a total, not a count
        per host.
        """
        if faults.LOST_CONFIRM not in self.kinds:
            raise faults.FaultNotSupported(faults.LOST_CONFIRM)
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        armed = set()
        for proxy in self.proxies:
            if proxy.confirm_group not in armed:
                armed.add(proxy.confirm_group)
                proxy.lose_confirmations(count)

    def freeze(self) -> None:
        for proxy in self.proxies:
            proxy.freeze(True)

    def delay(self, seconds: float) -> None:
        for proxy in self.proxies:
            proxy.set_delay(seconds)

    def heal(self) -> None:
        for proxy in self.proxies:
            with contextlib.suppress(ProxyError):
                proxy.heal()

    def publish_attempts(self) -> int | None:
        """Complete publishes the clients sent through the proxies; None where unknown.

        Known only for a protocol the proxies read (``"amqp"``), and only
        while no proxy refuses connections: during an outage the driver's
        attempts end at a closed port, where no proxy can see them, so a
        count then would be too low to bound anything (None instead).  A
        difference taken across an outage leaves out the refused attempts
        for the same reason.
        """
        if self.protocol is None:
            return None
        total = 0
        for proxy in self.proxies:
            stats = proxy.stats
            if stats.refusing:
                return None
            total += stats.publishes
        return total

    @property
    def stats(self) -> dict[str, int]:
        """Counters summed over every proxy (for evidence in findings)."""
        total: collections.Counter[str] = collections.Counter()
        for proxy in self.proxies:
            total.update(proxy.stats.as_dict())
        return dict(total)


class HostFaults(ProxyFaults):
    """:class:`ProxyFaults` that can also take one proxy (one host of the URL) away.

    For a multi-host URL whose hosts are proxies in front of one backend (or
    of the nodes of a cluster): :meth:`lose_host` is an outage of one proxy
    only, so the driver has to move to another host.  Declares
    :data:`HOST_OUTAGE` only with two proxies or more.
    """

    def __init__(self, proxies: list[Any]) -> None:
        super().__init__(proxies)
        if len(proxies) >= 2:
            self.kinds = self.kinds | {HOST_OUTAGE}  # type: ignore[misc]

    def lose_host(self, index: int) -> int:
        """Host ``index`` of the URL refuses and resets until :meth:`heal`; returns ``index``."""
        if HOST_OUTAGE not in self.kinds:
            raise faults.FaultNotSupported(HOST_OUTAGE)
        self.proxies[index].outage()
        return index
