"""Broken partitions: drivers that handle a dead backend but not a silent or slow link.

Mirrors :mod:`driver_conformance.scenarios.partitions`.  Each variant
behaves exactly like the reference while the network is whole, so only the
partition scenarios see it.  A wrapper sees only the driver API, where a
frozen or slow link shows as nothing but time passing; a real driver learns
of it from its socket (a heartbeat missed, a confirmation late).  The
variants learn it from the reference broker's network state instead
(:meth:`_NetworkAware.network`, the state the fault injector sets), so that
they break the partition behaviour and nothing else, deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import oslo_messaging

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import WrappedDriver

#: Longest a variant waits for a frozen link to thaw: longer than any scenario's
#: bound on a frozen send (so the scenario sees it still blocked), and bounded,
#: so that a variant never hangs a run (the kit's heal ends the wait early).
THAW_BOUND = 30.0


class _NetworkAware(WrappedDriver):
    """What the network between this driver and its broker is doing (see the docstring)."""

    def network(self) -> Any:
        from driver_conformance.reference.faults import ReferenceFaults

        return ReferenceFaults.for_url(self._url).broker

    def wait_for_thaw(self) -> None:
        """Block while the link is frozen, at most :data:`THAW_BOUND` (a heal ends it)."""
        broker = self.network()
        self._wait_healed(lambda: not broker.frozen)

    def _wait_healed(self, healed: Callable[[], bool]) -> None:
        broker = self.network()
        cond = threading.Condition(broker.lock)
        with cond:
            broker.add_heal_waiter_locked(cond)
            try:
                cond.wait_for(healed, THAW_BOUND)
            finally:
                broker.discard_heal_waiter_locked(cond)


@variant("frozen-call-ignores-timeout", "send.partition.call-timeout",
         "on a frozen link a call waits on the driver's own 2.5 s reconnect budget, "
         "not its timeout")
class FrozenCallIgnoresTimeout(_NetworkAware):
    """A call whose publish finds the link silent is retried on the driver's own budget.

    The reconnect-and-republish loop of such a driver (oslo's rabbit driver's
    ``ensure()`` is the example that prompted this clause) has its own retry
    policy and never looks at the call's ``timeout``; only once the publish
    is through does the caller's timer matter.  On a frozen link the call
    then ends when the loop's budget (2.5 s here, a constant so it shows
    within the kit's call bound) runs out, long after its timeout.
    """

    OWN_BUDGET = 2.5

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("wait_for_reply") and kwargs.get("timeout") is not None \
                and self.network().frozen:
            kwargs["timeout"] = self.OWN_BUDGET
        return super().send(target, ctxt, message, **kwargs)


@variant("frozen-cast-never-fails", "send.partition.bounded-retry",
         "an attempt on a frozen link never counts as failed: bounded casts wait for the thaw")
class FrozenCastNeverFails(_NetworkAware):
    """Casts with a bounded ``retry`` wait for a frozen link to thaw instead of giving up.

    A driver with no timer of its own on a publish (no heartbeat, no
    confirmation timeout) counts only refused connections and resets as
    failed attempts; a link that answers nothing is neither, so ``retry=0``
    blocks as long as the partition lasts.  Unlimited retries and calls
    (their timeout bounds them) are left alone.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        retry = kwargs.get("retry")
        if not kwargs.get("wait_for_reply") and retry is not None and retry >= 0 \
                and self.network().frozen:
            self.wait_for_thaw()
        return super().send(target, ctxt, message, **kwargs)


@variant("frozen-notify-never-fails", "notify.partition.bounded-retry",
         "a notification with a bounded retry waits for a frozen link to thaw")
class FrozenNotifyNeverFails(_NetworkAware):
    """send_notification with a bounded ``retry`` waits for a frozen link to thaw.

    The same missing timer as ``frozen-cast-never-fails``, on the notifier's
    path only: drivers often publish notifications through a code path of
    their own (another producer, another connection pool).
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        if retry is not None and retry >= 0 and self.network().frozen:
            self.wait_for_thaw()
        return super().send_notification(target, ctxt, message, version, retry=retry)


@variant("frozen-buffer-dropped", "send.partition.recovers",
         "casts with unlimited retry made on a frozen link are buffered, reported sent, "
         "and dropped with the dead connection")
class FrozenBufferDropped(_NetworkAware):
    """A cast with unlimited retry on a frozen link returns at once and is never delivered.

    Such a driver queues the publish in a send buffer of its connection and
    reports it accepted (the retry is "unlimited", so the caller is not made
    to wait); when the link is found dead the connection is thrown away,
    and its buffer with it.  The application was told the message was sent.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        retry = kwargs.get("retry")
        if not kwargs.get("wait_for_reply") and (retry is None or retry < 0) \
                and self.network().frozen:
            return None
        return super().send(target, ctxt, message, **kwargs)


@variant("confirm-timer-too-short", "send.latency.timers-hold",
         "on a slow link a cast's confirmation is late for the driver's fixed timer: "
         "a cast the broker stored fails")
class ConfirmTimerTooShort(_NetworkAware):
    """The driver waits for a publish's confirmation a fixed time, shorter than a round trip.

    A confirmation timeout tuned on a local broker (tens of milliseconds)
    expires on every publish once the link has real latency: the broker has
    the message, the driver counts the attempt as failed, and with
    ``retry=0`` reports a MessageDeliveryFailure for a message that is
    delivered (with retries left it publishes it again: a duplicate).  The
    wrapper takes "slower than the timer" from the reference broker's
    injected delay (every delay the kit injects is longer than the timer),
    so it is deterministic.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        result = super().send(target, ctxt, message, **kwargs)
        if not kwargs.get("wait_for_reply") and self.network().delay > 0:
            retry = kwargs.get("retry")
            if retry is not None and retry >= 0:
                raise oslo_messaging.MessageDeliveryFailure(
                    "cast: no publish confirmation within the driver's confirm timer")
            return super().send(target, ctxt, message, **kwargs)
        return result


@variant("first-host-only", "listen.partition.failover-to-live-host",
         "the driver only ever connects to the first host of its URL: while it is down, "
         "sends wait for it")
class FirstHostOnly(_NetworkAware):
    """Every connection goes to the URL's first host; the others are never tried.

    A driver that parses a multi-host URL but keeps only its first host (or
    whose reconnect loop retries the host it lost) is stuck while that host
    is down, however healthy the others are: its sends wait for the host to
    come back (at most :data:`THAW_BOUND`, then they go through).
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        broker = self.network()
        if 0 in broker.hosts_down:
            self._wait_healed(lambda: 0 not in broker.hosts_down)
        return super().send(target, ctxt, message, **kwargs)
