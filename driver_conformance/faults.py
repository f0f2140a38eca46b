"""The fault-injection interface that retry and failover scenarios drive.

A driver's retry and failover clauses ("retry never duplicates", "the driver
must restore the subscription(s) in the case of failover") can only be seen
while something goes wrong between the driver and its backend.  Each adapter
that can make things go wrong hands the kit a :class:`FaultInjector`; the
scenarios speak only to this interface, so the same scenario runs against the
in-process reference broker and against a real broker behind a TCP proxy.

An injector declares the fault kinds it can produce in :attr:`kinds`; a
scenario that needs a kind the injector lacks is reported as not run, with
the reason, instead of passing vacuously.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

#: The backend refuses every new connection and every send fails, until healed.
OUTAGE = "outage"
#: Every live connection between the driver and the backend is closed once.
CUT = "cut"
#: The next N publishes reach the backend but their confirmation never comes back.
LOST_CONFIRM = "lost-confirm"
#: Traffic stops flowing in both directions without any connection closing.
FREEZE = "freeze"
#: Every byte is delayed by a fixed amount.
DELAY = "delay"
#: One node of a clustered backend goes away (crashes) until healed; the others stay.
NODE_LOSS = "node-loss"

ALL_KINDS = frozenset({OUTAGE, CUT, LOST_CONFIRM, FREEZE, DELAY, NODE_LOSS})


class FaultNotSupported(NotImplementedError):
    """Raised when an injector is asked for a fault kind it did not declare."""


class FaultInjector:
    """Base class: override the methods for the kinds you list in :attr:`kinds`.

    Every method returns promptly; none of them waits for the driver to react.
    :meth:`heal` ends every fault in force and must be safe to call at any time,
    because the kit calls it after every scenario that used the injector.
    """

    kinds: ClassVar[frozenset[str]] = frozenset()

    def start_outage(self) -> None:
        """Make the backend unreachable: new connections and sends fail."""
        raise FaultNotSupported(OUTAGE)

    def cut_connections(self) -> None:
        """Close every live connection of the driver under test, once."""
        raise FaultNotSupported(CUT)

    def lose_confirmations(self, count: int) -> None:
        """Let the next ``count`` publishes reach the backend, unconfirmed."""
        raise FaultNotSupported(LOST_CONFIRM)

    def freeze(self) -> None:
        """Stop all traffic without closing anything (a silent partition)."""
        raise FaultNotSupported(FREEZE)

    def delay(self, seconds: float) -> None:
        """Delay all traffic by ``seconds``."""
        raise FaultNotSupported(DELAY)

    def lose_node(self, which: int | str = "leader", *, topic: str | None = None) -> int:
        """Take one node of a clustered backend away; return its index in the URL's hosts.

        ``which`` is an index, or ``"leader"``: the node that leads (or hosts)
        the queue the backend keeps for ``topic``.  :meth:`heal` brings it back.
        """
        raise FaultNotSupported(NODE_LOSS)

    def heal(self) -> None:
        """End every fault in force; the backend is reachable again."""

    def publish_attempts(self) -> int | None:
        """How many publishes the backend has seen attempted so far, refused ones included.

        Lets a retry scenario count the attempts a driver made during an
        outage (``retry=N`` allows at most N + 1).  None when the injector
        cannot see individual publishes (a TCP proxy sees bytes, not messages).
        """
        return None

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The backend is unreachable inside the block, reachable after it."""
        self.start_outage()
        try:
            yield
        finally:
            self.heal()
