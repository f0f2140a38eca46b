"""The two listener styles: callback (the default) and poll.

:class:`ReferenceListener` is a :class:`~oslo_messaging._drivers.base.Listener`:
``start(callback)`` starts one ``reference-listener-*`` thread that collects
batches from the :class:`~driver_conformance.reference.subscription.Subscription`
and calls the callback.  ``stop()`` waits for a callback in progress to
return (unless called from inside it) so that, once ``stop()`` has returned,
the callback is never called again; messages collected but not yet handed on
go back to their queue.

:class:`ReferencePollListener` is a
:class:`~oslo_messaging._drivers.base.PollStyleListener`; the driver wraps it
in :class:`PollAdapter` (a ``PollStyleListenerAdapter`` whose thread is named
``reference-poller-*`` and whose ``stop``/``cleanup`` are safe to call at any
time), because the public servers call ``start()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from oslo_messaging._drivers import base

from driver_conformance.reference.broker import Delivery
from driver_conformance.reference.incoming import ReferenceIncomingMessage, decode_request
from driver_conformance.reference.link import Link
from driver_conformance.reference.subscription import Subscription

LOG = logging.getLogger(__name__)

Callback = Callable[[list[base.IncomingMessage]], object]


def to_incoming(link: Link, deliveries: Sequence[Delivery]) -> list[ReferenceIncomingMessage]:
    """Decode deliveries; one that cannot be decoded is logged and acknowledged."""
    incoming = []
    for delivery in deliveries:
        try:
            stored = delivery.message
            ctxt, message = decode_request(stored.body, envelope=stored.kind == "notification")
        except Exception:
            LOG.exception("reference: dropping undecodable message %s", delivery.message.id)
            ReferenceIncomingMessage(link, delivery, {}, {}).acknowledge()
            continue
        incoming.append(ReferenceIncomingMessage(link, delivery, ctxt, message))
    return incoming


class ReferenceListener(base.Listener):
    """Callback-style listener with one dispatch thread (see the module docstring)."""

    def __init__(
        self,
        link: Link,
        subscription: Subscription,
        batch_size: int,
        batch_timeout: float | None,
        name: str,
        on_cleanup: Callable[[object], None] | None = None,
    ) -> None:
        super().__init__(batch_size, batch_timeout)
        self._link = link
        self._subscription = subscription
        self._name = name
        self._on_cleanup = on_cleanup
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self, on_incoming_callback: Callback) -> None:
        with self._start_lock:
            if self._thread is not None or self._subscription.stopped:
                raise RuntimeError("a reference listener can be started once")
            super().start(on_incoming_callback)
            self._thread = threading.Thread(
                target=self._run,
                args=(on_incoming_callback,),
                name=f"reference-listener-{self._name}",
                daemon=True,
            )
            self._thread.start()

    def _run(self, callback: Callback) -> None:
        subscription = self._subscription
        while True:
            deliveries = subscription.collect(self.batch_size, self.batch_timeout, None)
            if subscription.stopped:
                subscription.give_back(deliveries)
                return
            incoming = to_incoming(self._link, deliveries)
            if not incoming:
                continue
            try:
                callback(incoming)
            except Exception:
                LOG.exception("reference: listener callback failed")

    def stop(self) -> None:
        self._subscription.stop()
        with self._start_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        super().stop()

    def cleanup(self) -> None:
        self.stop()
        self._subscription.close()
        if self._on_cleanup is not None:
            self._on_cleanup(self)


class ReferencePollListener(base.PollStyleListener):
    """Poll-style listener; ``poll`` follows the contract to the letter."""

    def __init__(self, link: Link, subscription: Subscription) -> None:
        super().__init__()
        self._link = link
        self._subscription = subscription

    def poll(
        self, timeout: float | None = None, batch_size: int = 1, batch_timeout: float | None = None
    ) -> list[base.IncomingMessage]:
        """Up to ``batch_size`` messages; [] on timeout; never raises."""
        try:
            deliveries = self._subscription.collect(batch_size, batch_timeout, timeout)
            return list(to_incoming(self._link, deliveries))
        except Exception:
            LOG.exception("reference: poll failed")
            return []

    def stop(self) -> None:
        self._subscription.stop()

    def cleanup(self) -> None:
        self._subscription.close()


class PollAdapter(base.PollStyleListenerAdapter):
    """``PollStyleListenerAdapter`` with a named thread and idempotent stop/cleanup."""

    def __init__(
        self,
        poll_listener: ReferencePollListener,
        batch_size: int,
        batch_timeout: float | None,
        name: str,
        on_cleanup: Callable[[object], None] | None = None,
    ) -> None:
        super().__init__(poll_listener, batch_size, batch_timeout)
        self._listen_thread.name = f"reference-poller-{name}"
        self._on_cleanup = on_cleanup

    @property
    def poll_listener(self) -> ReferencePollListener:
        return self._poll_style_listener

    def stop(self) -> None:
        self._started = False
        self._poll_style_listener.stop()
        thread = self._listen_thread
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join()
        base.Listener.stop(self)

    def cleanup(self) -> None:
        self.stop()
        self._poll_style_listener.cleanup()
        if self._on_cleanup is not None:
            self._on_cleanup(self)
