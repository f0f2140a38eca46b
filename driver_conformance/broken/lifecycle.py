"""Broken lifecycle: listen(), send() and cleanup() return too early.

Mirrors :mod:`driver_conformance.scenarios.lifecycle`.  Each variant moves
work that must be done before a call returns (subscribing, handing a
message to the backend, tearing threads down) to later or to a background
thread, which is what the lifecycle scenarios catch: a lost message or a
thread still running after cleanup.  The last ones fail a call the public
servers and transports make again or out of order: a second cleanup(), stop()
of a listener never started, stop() with no poll() running, a poll() after
stop().
"""

from __future__ import annotations

import itertools
import threading
import uuid
from typing import Any, ClassVar

from driver_conformance.broken._registry import _pause, variant
from driver_conformance.broken.wrappers import (
    ListenerLike,
    ListenInfo,
    WrappedDriver,
    WrappedIncoming,
    WrappedListener,
    WrappedPollAdapter,
    WrappedPoller,
)


@variant("lazy-subscribe", "listen.blocks.until-subscribed",
         "listen() returns before subscribing; the subscription is made by start()")
class LazySubscribe(WrappedDriver):
    """The subscription is made in ``start()``, not in ``listen()``.

    A message sent between ``listen()`` and ``start()`` finds no queue bound
    to its address and is dropped; the contract makes ``listen()`` block
    until the subscription exists precisely so that it is kept.
    """

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        listener = WrappedListener(
            self, None, batch_size, batch_timeout, ListenInfo("rpc", [(target, None)]),
            make_inner=lambda: self.inner.listen(target, batch_size, batch_timeout))
        with self._lock:
            self._listeners.append(listener)
        return listener


_FANOUT_SEQ = "_broken_fanout_seq"
#: One clock for fanout sends and listener starts, across the variant's driver instances.
_SEQUENCE = itertools.count()


@variant("lazy-fanout-binding", "listen.blocks.until-subscribed",
         "listen() subscribes to the topic and server at once, to fanouts only in start()")
class LazyFanoutBinding(WrappedDriver):
    """The listener's fanout queue is bound to the fanout exchange in ``start()``.

    Its topic and server subscriptions exist when ``listen()`` returns, so
    casts sent before ``start()`` are kept; a fanout sent in between found no
    queue of this listener bound and was copied only to the others.  The
    wrapper stamps each fanout with a sequence number on the way out and
    drops, acknowledged, what a listener receives that was sent before its
    ``start()``.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if target.fanout and isinstance(ctxt, dict):
            ctxt = dict(ctxt, **{_FANOUT_SEQ: next(_SEQUENCE)})
        return super().send(target, ctxt, message, **kwargs)

    def on_listener_start(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        listener.state["bound"] = next(_SEQUENCE)
        super().on_listener_start(listener)

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        seq = message.take_marker(_FANOUT_SEQ)
        if seq is not None:
            message.overrides["fanout_seq"] = seq
        return message

    def on_deliver(self, listener: WrappedListener | WrappedPollAdapter,
                   batch: list[Any]) -> None:
        bound = listener.state.get("bound", 0)
        unbound = [m for m in batch if m.overrides.get("fanout_seq", bound) < bound]
        for message in unbound:
            message.acknowledge()
        kept = [m for m in batch if m not in unbound]
        if kept:
            super().on_deliver(listener, kept)


@variant("cleanup-leaking-threads", "driver.cleanup.blocks",
         "cleanup() returns at once and tears the driver down in a background thread")
class CleanupLeakingThreads(WrappedDriver):
    """``cleanup()`` hands the real cleanup to a lingering non-daemon thread and returns.

    Drivers that close connections asynchronously (a reaper thread, a
    ``close()`` that only schedules) return from cleanup while their threads
    still run; the reaper waits a moment before working, as such reapers do.
    """

    def on_cleanup(self) -> None:
        def reap() -> None:
            _pause(1.0)
            self.inner.cleanup()

        threading.Thread(target=reap, name=f"reference-reaper-{uuid.uuid4().hex[:6]}",
                         daemon=False).start()


@variant("cast-async-handoff", "send.cast.returns-after-handoff",
         "a cast returns before the message is handed to the backend")
class CastAsyncHandoff(WrappedDriver):
    """Casts are queued for a background publisher and ``send()`` returns at once.

    A driver with a send buffer that ``cleanup()`` does not flush: a cast
    made right before cleanup is silently lost.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("wait_for_reply"):
            return super().send(target, ctxt, message, **kwargs)

        def publish() -> None:
            _pause(0.3)
            try:
                WrappedDriver.send(self, target, ctxt, message, **kwargs)
            except Exception:  # the buffer is gone with the driver; nobody hears of it
                pass

        threading.Thread(target=publish, name="broken-publisher", daemon=True).start()
        return None


@variant("notify-async-handoff", "notify.send.blocks-until-accepted",
         "send_notification() returns before the backend has the notification")
class NotifyAsyncHandoff(WrappedDriver):
    """Notifications are queued for a background publisher; ``cleanup()`` does not flush it.

    The notification twin of ``cast-async-handoff``: a service that
    notifies and then shuts down loses its last notifications.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        def publish() -> None:
            _pause(0.3)
            try:
                WrappedDriver.send_notification(self, target, ctxt, message, version, retry)
            except Exception:
                pass

        threading.Thread(target=publish, name="broken-notifier", daemon=True).start()
        return None


# -- calls made again, or out of order ----------------------------------------------------


@variant("cleanup-twice-raises", "driver.cleanup.repeatable",
         "a second driver cleanup() raises: the connection pool it empties is already gone")
class CleanupTwiceRaises(WrappedDriver):
    """The first ``cleanup()`` drops the driver's pool; the next one calls a method on None.

    A driver that sets its connection pool (or reply queue) to None in cleanup
    and does not look before using it again: a transport cleaned up twice,
    by a service's stop path and again on exit, raises AttributeError.
    """

    def on_cleanup(self) -> None:
        if getattr(self, "_pool_gone", False):
            raise AttributeError("'NoneType' object has no attribute 'empty'")
        self._pool_gone = True
        self.inner.cleanup()


@variant("cleanup-tears-down-url", "driver.cleanup.own-resources-only",
         "cleanup() tears down every driver of the process on the same URL")
class CleanupTearsDownUrl(WrappedDriver):
    """Connections are kept per URL for the whole process; ``cleanup()`` closes them all.

    A driver that shares one connection pool (or one set of queues) among
    all its instances on a URL, to save connections, and empties that shared
    pool in ``cleanup()``: the first transport a service cleans up takes the
    subscriptions and sending path of every other transport on the URL.
    """

    _live: ClassVar[dict[str, list[CleanupTearsDownUrl]]] = {}
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        with self._live_lock:
            self._live.setdefault(str(self._url), []).append(self)

    def on_cleanup(self) -> None:
        with self._live_lock:
            same_url = self._live.pop(str(self._url), [])
        for driver in same_url:
            driver.inner.cleanup()
        if self not in same_url:
            self.inner.cleanup()


@variant("listener-cleanup-twice-raises", "listener.cleanup.repeatable",
         "a second listener cleanup() raises: its connection is already closed")
class ListenerCleanupTwiceRaises(WrappedDriver):
    """A listener's ``cleanup()`` closes its connection, and closing it again raises.

    A listener whose cleanup closes a backend connection (or joins a thread)
    unconditionally: the restarted server whose listen() failed cleans its old
    listener up a second time and gets the backend library's error.
    """

    def on_listener_cleanup(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        if listener.cleaned:
            raise RuntimeError("cleanup(): the listener's connection is already closed")
        listener.really_cleanup()


@variant("never-started-stop-raises", "listener.stop.never-started",
         "stop() of a listener never started raises, joining a thread never started")
class NeverStartedStopRaises(WrappedDriver):
    """``stop()`` joins the consumer thread that ``start()`` would have started.

    This is oslo.messaging's PollStyleListenerAdapter (every in-tree driver's
    listener): its stop() joins ``_listen_thread``, which raises RuntimeError
    when start() never ran, so a server whose listener.start() failed cannot stop.
    """

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        if not listener.started:
            raise RuntimeError("cannot join thread before it is started")
        listener.really_stop()


#: The longest a stop() or poll() of the variants below blocks when no cleanup() comes
#: (longer than any bound the kit puts on a driver call).
HANG = 60.0


def _released(poller: WrappedPoller) -> threading.Event:
    """The event ``cleanup()`` of ``poller`` sets (and the variants' blocked calls wait on)."""
    return poller.state.setdefault("released", threading.Event())


@variant("poll-stop-waits-for-poll", "poll.stop.returns-without-poll",
         "stop() waits for a poll() to notice it, so with no poll() running it blocks")
class PollStopWaitsForPoll(WrappedDriver):
    """``stop()`` sets the stop flag and waits until a ``poll()`` has seen it.

    This is oslo's AMQPListener (rabbit, kombu-memory): stop() waits on an
    event only poll() sets on its way out.  A poll in progress, or the adapter's
    thread, soon comes by; a poller used poll-style (poll, handle, stop) or a
    never-started listener has none, and stop() blocks (here until cleanup()).
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        with self._lock:
            poller.state["polling"] = poller.state.get("polling", 0) + 1
        try:
            return super().on_poll(poller, timeout, batch_size, batch_timeout)
        finally:
            with self._lock:
                poller.state["polling"] -= 1
            if poller.stopped:
                _released(poller).set()  # the poll saw the stop

    def on_poller_stop(self, poller: WrappedPoller) -> None:
        poller.inner.stop()
        with self._lock:
            polling = poller.state.get("polling", 0)
        if not polling:
            _released(poller).wait(HANG)

    def on_poller_cleanup(self, poller: WrappedPoller) -> None:
        _released(poller).set()
        poller.really_cleanup()


@variant("poll-after-stop-waits", "poll.stop.later-poll-returns",
         "a poll() entered after stop() waits out its timeout (forever without one)")
class PollAfterStopWaits(WrappedDriver):
    """A stopped poller's ``poll()`` blocks for its whole timeout before returning [].

    A poller that checks its stop flag only when a receive is interrupted,
    not when a poll begins: PollStyleListenerAdapter's drain loop after stop()
    polls with no timeout, so its stop(), and the server's, never returns.  The
    adapter's own thread is spared, so only direct callers see it.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        spared = threading.current_thread() is poller.adapter_thread
        if poller.stopped and not spared and not poller.cleaned:
            _released(poller).wait(HANG if timeout is None else min(timeout, HANG))
            return []
        return super().on_poll(poller, timeout, batch_size, batch_timeout)

    def on_poller_cleanup(self, poller: WrappedPoller) -> None:
        _released(poller).set()
        poller.really_cleanup()
