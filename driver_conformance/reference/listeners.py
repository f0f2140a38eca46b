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

Waiting in ``stop()`` for a callback in progress is bounded by
:data:`STOP_PATIENCE`: a callback that never returns is logged and left
behind (its thread is a daemon, and it will not be called again), so a stuck
application callback does not hang ``stop()``, ``cleanup()`` or a test.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from oslo_messaging._drivers import base

from driver_conformance.reference.broker import Delivery, MessageKind
from driver_conformance.reference.incoming import ReferenceIncomingMessage, decode_request
from driver_conformance.reference.link import Link
from driver_conformance.reference.subscription import Subscription

LOG = logging.getLogger(__name__)

Callback = Callable[[list[base.IncomingMessage]], object]

#: Seconds ``stop()`` waits for a callback in progress before giving up on it.
STOP_PATIENCE = 60.0


def join_bounded(thread: threading.Thread | None, what: str) -> None:
    """Join ``thread`` (unless it is this one) for up to :data:`STOP_PATIENCE`; log if stuck."""
    if thread is None or thread is threading.current_thread():
        return
    thread.join(STOP_PATIENCE)
    if thread.is_alive():
        LOG.error("reference: %s still running %.0f s after stop(); left behind "
                  "(it will not be called again)", what, STOP_PATIENCE)


def to_incoming(link: Link, deliveries: Sequence[Delivery]) -> list[ReferenceIncomingMessage]:
    """Decode deliveries; one that cannot be decoded is logged and acknowledged."""
    incoming = []
    for delivery in deliveries:
        try:
            stored = delivery.message
            envelope = stored.kind is MessageKind.NOTIFICATION
            ctxt, message = decode_request(stored.body, envelope=envelope)
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
            # clause: listener.start.nothing-taken-before-start (no credit before start)
            self._subscription.grant(self.batch_size)  # its turn starts now
            self._thread = threading.Thread(
                target=self._run,
                args=(on_incoming_callback,),
                name=f"reference-listener-{self._name}",
                daemon=True,
            )
            self._thread.start()

    def _run(self, callback: Callback) -> None:
        subscription = self._subscription
        batch_size, batch_timeout = self.batch_size, self.batch_timeout
        while True:
            deliveries = subscription.collect(batch_size, batch_timeout, None)
            if subscription.stopped:
                subscription.give_back(deliveries)
                return
            incoming = to_incoming(self._link, deliveries)
            if not incoming:
                continue
            try:
                # clause: listener.start.callback-with-list
                # clause: listener.batch.at-most-batch-size
                callback(incoming)
            except Exception:
                LOG.exception("reference: listener callback failed")

    def stop(self) -> None:
        # clause: listener.stop.no-callback-after (joins the thread, whose loop
        # checks ``stopped`` before every callback)
        # clause: listener.stop.never-started (no thread yet: nothing to join)
        self._subscription.stop()
        with self._start_lock:
            thread = self._thread
        join_bounded(thread, f"the callback of listener {self._name}")
        super().stop()

    def cleanup(self) -> None:
        # clause: listener.cleanup.blocks
        # clause: listener.cleanup.repeatable (stop and close are idempotent)
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

    @property
    def subscription(self) -> Subscription:
        return self._subscription

    def poll(
        self, timeout: float | None = None, batch_size: int = 1, batch_timeout: float | None = None
    ) -> list[base.IncomingMessage]:
        """Up to ``batch_size`` messages; [] on timeout; never raises."""
        # clause: poll.returns.up-to-batch-size, poll.timeout.returns-empty
        # clause: poll.errors.no-raise
        try:
            deliveries = self._subscription.collect(batch_size, batch_timeout, timeout)
            return list(to_incoming(self._link, deliveries))
        except Exception:
            LOG.exception("reference: poll failed")
            return []

    def stop(self) -> None:
        # clause: poll.stop.unblocks, poll.stop.thread-safe
        # clause: poll.stop.returns-without-poll (sets a flag, waits for nothing)
        # clause: poll.stop.later-poll-returns (collect() returns at once once stopped)
        self._subscription.stop()

    def cleanup(self) -> None:
        # clause: poll.cleanup.blocks
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

    def start(self, on_incoming_callback: Callback) -> None:
        # Its turn starts now, not when the polling thread first runs.
        # clause: listener.start.nothing-taken-before-start
        self._poll_style_listener.subscription.grant(self.batch_size)
        super().start(on_incoming_callback)

    def stop(self) -> None:
        self._started = False
        self._poll_style_listener.stop()
        thread = self._listen_thread
        if thread.is_alive():
            join_bounded(thread, f"the callback of {thread.name}")
        base.Listener.stop(self)

    def cleanup(self) -> None:
        self.stop()
        self._poll_style_listener.cleanup()
        if self._on_cleanup is not None:
            self._on_cleanup(self)
