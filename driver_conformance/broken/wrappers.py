"""Wrappers that change one behaviour of a working driver, for the negative controls.

A broken variant is not a second driver: it is the reference driver seen
through :class:`WrappedDriver`, which delegates every call of the public
driver API (``send``, ``send_notification``, ``listen``,
``listen_for_notifications``, ``require_features``, ``cleanup``) to the
driver it wraps, and wraps what comes back:

* listeners (:class:`WrappedListener` for callback-style ones,
  :class:`WrappedPollAdapter` around a :class:`WrappedPoller` for poll-style
  ones), so that start, stop, cleanup, poll and the delivery of each batch to
  the callback pass through the driver;
* every incoming message (:class:`WrappedIncoming`,
  :class:`WrappedRpcIncoming`), so that acknowledge, requeue, reply and
  heartbeat, and the attributes a server reads, pass through the driver.

Each of those passages is a method of :class:`WrappedDriver` named ``on_*``
whose default does exactly what the wrapped driver does.  A variant
overrides one or two of them, so the whole difference between a variant and
the reference is the few lines of that override.  Nothing here looks inside
the reference driver: only the oslo.messaging driver API is used, so a
variant stays valid however the reference is implemented.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from oslo_messaging._drivers import base

from driver_conformance.adapter import Capabilities

LOG = logging.getLogger(__name__)

Callback = Callable[[list[Any]], object]
ExcInfo = Any

_numbers = itertools.count(1)

#: Longest a :class:`WrappedPollAdapter` waits for its polling thread to end, in
#: ``stop()`` and in ``cleanup()``, in seconds.  A wrapped driver is not told the
#: run's ``--time-scale``, so this is a constant: well above the kit's own bound on
#: any driver call (``Timing.call_bound``, 10 s times the scale; the bench's is
#: 15 s) and well below pytest-timeout's 300 s.  A polling thread that never ends
#: (``poll-stop-not-unblocking`` on a started listener, or a regression in the
#: reference) is then reported by the kit as a hung ``stop()`` naming its
#: scenario; once this bound has passed too, the wrapper logs, leaves the
#: daemon thread behind and lets teardown go on, instead of blocking forever.
THREAD_JOIN_BOUND = 60.0


def _join_poll_thread(thread: threading.Thread, when: str) -> None:
    """Wait at most :data:`THREAD_JOIN_BOUND` for ``thread``; log if it is still running."""
    if not thread.is_alive() or thread is threading.current_thread():
        return
    thread.join(THREAD_JOIN_BOUND)
    if thread.is_alive():
        LOG.warning("broken: polling thread %s still running %.0fs into %s; left behind",
                    thread.name, THREAD_JOIN_BOUND, when)


class ListenInfo:
    """What a listener was asked to listen to, as the wrapping driver saw it."""

    def __init__(self, kind: str, targets: list[tuple[Any, str | None]],
                 pool: str | None = None) -> None:
        #: ``"rpc"`` for ``listen()``, ``"notifications"`` for ``listen_for_notifications()``.
        self.kind = kind
        #: ``[(target, None)]`` for RPC, the (target, priority) pairs for notifications.
        self.targets = targets
        self.pool = pool

    @property
    def target(self) -> Any:
        return self.targets[0][0]


# -- incoming messages -----------------------------------------------------------------


def _delegated(name: str) -> property:
    """An attribute read from the wrapped message, unless the driver overrode it."""

    def get(self: WrappedIncoming) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        return getattr(self.inner, name)

    def put(self: WrappedIncoming, value: Any) -> None:
        self.overrides.pop(name, None)
        setattr(self.inner, name, value)

    return property(get, put, doc=f"The wrapped message's ``{name}``.")


class WrappedIncoming(base.IncomingMessage):
    """An incoming message whose methods go through the wrapping driver's ``on_*`` hooks.

    ``IncomingMessage.__init__`` is deliberately not called: ``ctxt``,
    ``message``, ``msg_id`` and ``client_timeout`` are the wrapped message's,
    read through, unless the driver put a value in :attr:`overrides`.
    """

    ctxt = _delegated("ctxt")
    message = _delegated("message")
    msg_id = _delegated("msg_id")
    client_timeout = _delegated("client_timeout")

    def __init__(self, inner: base.IncomingMessage, listener: ListenerLike) -> None:
        self.inner = inner
        self.listener = listener
        self.driver: WrappedDriver = listener.driver
        self.overrides: dict[str, Any] = {}
        #: Set by the hooks, for variants that care what was already done.
        self.acknowledged = False
        self.requeued = False
        self.replied = False

    def take_marker(self, key: str) -> Any:
        """Remove ``key``, which the wrapping driver added to the ctxt it sent, from the
        delivered ctxt, and return its value (None when the ctxt does not carry it).

        Variants that must recognise their own messages at delivery mark the ctxt
        on the way out; the receiver must never see the mark.
        """
        ctxt = self.inner.ctxt
        if not isinstance(ctxt, dict) or key not in ctxt:
            return None
        self.overrides["ctxt"] = {k: v for k, v in ctxt.items() if k != key}
        return ctxt[key]

    def acknowledge(self) -> None:
        self.driver.on_acknowledge(self)

    def requeue(self) -> None:
        self.driver.on_requeue(self)

    def __getattr__(self, name: str) -> Any:
        # Anything else a scenario may read (e.g. a driver-specific flag).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class WrappedRpcIncoming(WrappedIncoming, base.RpcIncomingMessage):
    """A wrapped RPC message: ``reply`` and ``heartbeat`` go through the driver too."""

    def reply(self, reply: Any = None, failure: ExcInfo = None) -> None:
        self.driver.on_reply(self, reply, failure)

    def heartbeat(self) -> None:
        self.driver.on_heartbeat(self)


# -- listeners -----------------------------------------------------------------------


class WrappedListener(base.Listener):
    """A callback-style listener around the wrapped driver's listener.

    The wrapped listener calls :meth:`dispatch`, which wraps each message and
    hands the batch to :meth:`WrappedDriver.on_deliver`; that calls the
    callback given to :meth:`start`.  ``inner`` may be None until start when
    a variant subscribes lazily (``make_inner``).
    """

    def __init__(self, driver: WrappedDriver, inner: base.Listener | None, batch_size: int,
                 batch_timeout: float | None, info: ListenInfo,
                 make_inner: Callable[[], base.Listener] | None = None) -> None:
        super().__init__(batch_size, batch_timeout)
        self.driver = driver
        self.inner = inner
        self.info = info
        self.make_inner = make_inner
        self.callback: Callback | None = None
        self.started = False
        self.stopped = False
        self.cleaned = False
        #: Free per-listener state for variants.
        self.state: dict[str, Any] = {}

    def start(self, on_incoming_callback: Callback) -> None:
        super().start(on_incoming_callback)
        self.callback = on_incoming_callback
        self.started = True
        self.driver.on_listener_start(self)

    def really_start(self) -> None:
        if self.inner is None and self.make_inner is not None:
            self.inner = self.make_inner()
        if self.inner is not None:
            self.inner.start(self.dispatch)

    def dispatch(self, batch: list[Any]) -> None:
        self.driver.on_deliver(self, [self.driver.wrap_incoming(m, self) for m in batch])

    def stop(self) -> None:
        self.stopped = True
        self.driver.on_listener_stop(self)

    def really_stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()
        base.Listener.stop(self)

    def cleanup(self) -> None:
        if self.started and not self.stopped:  # a listener never started has nothing to stop
            self.stop()
        self.driver.on_listener_cleanup(self)

    def really_cleanup(self) -> None:
        if not self.cleaned:
            self.cleaned = True
            if self.inner is not None:
                self.inner.stop()
                self.inner.cleanup()
            self.driver.forget(self)


class WrappedPoller(base.PollStyleListener):
    """A poll-style listener around the wrapped driver's; ``poll`` goes through the driver."""

    def __init__(self, driver: WrappedDriver, inner: base.PollStyleListener,
                 info: ListenInfo) -> None:
        super().__init__(getattr(inner, "prefetch_size", -1))
        self.driver = driver
        self.inner = inner
        self.info = info
        self.stopped = False
        self.cleaned = False
        #: The thread of the :class:`WrappedPollAdapter` that polls this poller, if any.
        self.adapter_thread: threading.Thread | None = None
        self.state: dict[str, Any] = {}

    def poll(self, timeout: float | None = None, batch_size: int = 1,
             batch_timeout: float | None = None) -> list[Any]:
        return self.driver.on_poll(self, timeout, batch_size, batch_timeout)

    def wrap(self, batch: Iterable[Any]) -> list[Any]:
        return [self.driver.wrap_incoming(m, self) for m in batch]

    def stop(self) -> None:
        self.stopped = True
        self.driver.on_poller_stop(self)

    def cleanup(self) -> None:
        self.stopped = True
        self.driver.on_poller_cleanup(self)

    def really_cleanup(self) -> None:
        if not self.cleaned:
            self.cleaned = True
            self.inner.stop()
            self.inner.cleanup()


class WrappedPollAdapter(base.PollStyleListenerAdapter):
    """oslo.messaging's adapter around a :class:`WrappedPoller` (how in-tree drivers do it).

    It replaces the wrapped driver's own adapter, which is never started but
    is cleaned up with this one.  Its thread is named ``broken-poller-*``;
    ``stop`` and ``cleanup`` may be called in any order and more than once,
    and each waits for that thread at most :data:`THREAD_JOIN_BOUND`.
    Batches go through :meth:`WrappedDriver.on_deliver` like those of a
    callback-style listener.
    """

    def __init__(self, driver: WrappedDriver, poller: WrappedPoller,
                 inner_adapter: base.Listener, batch_size: int,
                 batch_timeout: float | None) -> None:
        super().__init__(poller, batch_size, batch_timeout)
        self._listen_thread.name = f"broken-poller-{next(_numbers)}"
        poller.adapter_thread = self._listen_thread
        self.driver = driver
        self.poller = poller
        self.inner_adapter = inner_adapter
        self.info = poller.info
        self.callback: Callback | None = None
        self.started = False
        self.stopped = False
        self.cleaned = False
        self.state: dict[str, Any] = {}

    @property
    def poll_listener(self) -> WrappedPoller:
        return self.poller

    def start(self, on_incoming_callback: Callback) -> None:
        self.callback = on_incoming_callback
        self.started = True
        self.driver.on_listener_start(self)

    def really_start(self) -> None:
        base.PollStyleListenerAdapter.start(self, self.dispatch)

    def dispatch(self, batch: list[Any]) -> None:
        self.driver.on_deliver(self, batch)

    def stop(self) -> None:
        self.stopped = True
        self.driver.on_listener_stop(self)

    def really_stop(self) -> None:
        self._started = False
        self._poll_style_listener.stop()
        _join_poll_thread(self._listen_thread, "stop()")
        base.Listener.stop(self)

    def cleanup(self) -> None:
        if self.started and not self.stopped:
            self.stop()
        self.driver.on_listener_cleanup(self)

    def really_cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        self._started = False
        self._poll_style_listener.cleanup()
        _join_poll_thread(self._listen_thread, "cleanup()")
        try:
            self.inner_adapter.cleanup()
        except Exception:
            LOG.exception("broken: cleanup of the wrapped driver's listener failed")
        self.driver.forget(self)


ListenerLike = WrappedListener | WrappedPoller | WrappedPollAdapter


# -- the driver ------------------------------------------------------------------------


class WrappedDriver(base.BaseDriver):
    """A driver that delegates everything to ``inner``; variants override ``on_*`` hooks.

    Class-level hooks let a variant also change what its adapter declares
    (:meth:`capabilities`) and how the wrapped driver is built
    (:meth:`inner_exmods`).
    """

    #: Set by :func:`driver_conformance.broken._registry.variant`.
    variant_name: ClassVar[str] = ""

    def __init__(self, inner: base.BaseDriver) -> None:
        super().__init__(inner.conf, inner._url, inner._default_exchange,
                         inner._allowed_remote_exmods)
        self.inner = inner
        self.prefetch_size = getattr(inner, "prefetch_size", 0)
        self._listeners: list[ListenerLike] = []
        self._lock = threading.Lock()

    # -- adapter-level hooks ------------------------------------------------------------
    @classmethod
    def capabilities(cls, declared: Capabilities) -> Capabilities:
        """What the variant's adapter declares, from what the reference declares."""
        return declared

    @classmethod
    def inner_exmods(cls, allowed_remote_exmods: list[str]) -> list[str]:
        """The ``allowed_remote_exmods`` the wrapped driver is built with."""
        return allowed_remote_exmods

    # -- helpers for variants ---------------------------------------------------------
    def exchange_of(self, target: Any) -> str:
        """The exchange a target means: its own, else the default (as the contract says)."""
        return target.exchange or self._default_exchange or "openstack"

    @property
    def vhost(self) -> str:
        return str(getattr(self._url, "virtual_host", "") or "")

    # -- the driver API -----------------------------------------------------------------
    def require_features(self, requeue: bool = False) -> None:
        self.inner.require_features(requeue=requeue)

    def send(self, target: Any, ctxt: Any, message: Any, wait_for_reply: bool | None = None,
             timeout: float | None = None, call_monitor_timeout: float | None = None,
             retry: int | None = None, transport_options: Any = None) -> Any:
        return self.inner.send(target, ctxt, message, wait_for_reply=wait_for_reply,
                               timeout=timeout, call_monitor_timeout=call_monitor_timeout,
                               retry=retry, transport_options=transport_options)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return self.inner.send_notification(target, ctxt, message, version, retry=retry)

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        inner = self.inner.listen(target, batch_size, batch_timeout)
        return self.wrap_listener(inner, batch_size, batch_timeout,
                                  ListenInfo("rpc", [(target, None)]))

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        pairs = list(targets_and_priorities)
        inner = self.inner.listen_for_notifications(pairs, pool, batch_size, batch_timeout)
        return self.wrap_listener(inner, batch_size, batch_timeout,
                                  ListenInfo("notifications", list(pairs), pool))

    def cleanup(self) -> None:
        """Stop and clean up every listener this driver made, then the wrapped driver."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                if getattr(listener, "started", True):  # a bare poller has no start()
                    listener.stop()
                listener.cleanup()
            except Exception:
                LOG.exception("broken: listener cleanup failed")
        self.on_cleanup()

    def on_cleanup(self) -> None:
        self.inner.cleanup()

    # -- listeners --------------------------------------------------------------------
    def wrap_listener(self, inner: Any, batch_size: int, batch_timeout: float | None,
                      info: ListenInfo) -> Any:
        """Wrap what the wrapped driver's ``listen*`` returned, keeping its style."""
        listener: ListenerLike
        if isinstance(inner, base.PollStyleListenerAdapter):
            poller = WrappedPoller(self, inner._poll_style_listener, info)
            listener = WrappedPollAdapter(self, poller, inner, inner.batch_size,
                                          inner.batch_timeout)
        elif isinstance(inner, base.PollStyleListener):
            listener = WrappedPoller(self, inner, info)
        else:
            listener = WrappedListener(self, inner, batch_size, batch_timeout, info)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def forget(self, listener: ListenerLike) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def on_listener_start(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        listener.really_start()

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        listener.really_stop()

    def on_listener_cleanup(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        listener.really_cleanup()

    def on_deliver(self, listener: WrappedListener | WrappedPollAdapter,
                   batch: list[Any]) -> None:
        """Hand one batch to the listener's callback."""
        if listener.callback is not None:
            listener.callback(batch)

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=timeout, batch_size=batch_size,
                                             batch_timeout=batch_timeout))

    def on_poller_stop(self, poller: WrappedPoller) -> None:
        poller.inner.stop()

    def on_poller_cleanup(self, poller: WrappedPoller) -> None:
        poller.really_cleanup()

    # -- incoming messages ----------------------------------------------------------------
    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        if isinstance(inner, base.RpcIncomingMessage):
            return WrappedRpcIncoming(inner, listener)
        return WrappedIncoming(inner, listener)

    def on_acknowledge(self, message: WrappedIncoming) -> None:
        message.inner.acknowledge()
        message.acknowledged = True

    def on_requeue(self, message: WrappedIncoming) -> None:
        message.inner.requeue()
        message.requeued = True

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: ExcInfo) -> None:
        message.inner.reply(reply=reply, failure=failure)
        message.replied = True

    def on_heartbeat(self, message: WrappedRpcIncoming) -> None:
        message.inner.heartbeat()
