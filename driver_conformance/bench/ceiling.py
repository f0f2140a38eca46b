"""``CeilingDriver``: a yardstick for the bench, **not** a conformant driver.

Behind the ``ceiling://`` scheme.  It is the thinnest in-process driver that
still keeps the public API's contract (``RPCClient.call`` and ``cast``,
``RPCServer``, ``Notifier`` and notification listeners work, and a receiver
gets its own copy of what was sent, as a service relies on: clause
``incoming.content.copied-not-shared`` is derived from ``rpc/client.py``): one
hand-off queue per listener, one reply slot per call, one JSON encode and
decode per hop, and nothing else.  Its purpose is to measure what the
public API itself costs on this machine (the caller, the
listener thread, the futurist worker, oslo's dispatch), so that
``driver-conformance bench`` can report every driver as a ratio to it, and
ratios measured on different machines can be compared.

Hypothesis: a driver that keeps the public API's contract cannot be faster
than this through the public API, because this one does no work such a
driver could skip; so a driver's ratio to it says how much of the public-API
ceiling the driver reaches.

Copies are made the cheapest way CPython has for JSON data: json's C encoder
built once, and ``raw_decode``.  ``ceiling:///?copy=no`` drops them too: the
bare floor, for a driver that would share the sender's objects (it then fails
``incoming.content.copied-not-shared`` as well); the bench's yardstick is the
default, copying one.

What it does **not** do (it fails these clauses of the catalog, on purpose;
never use it as a fake in tests, use ``reference://``):

* no store-and-forward: a message sent where no listener is subscribed is
  dropped, and what a listener had not dispatched when it stopped is lost
  (``notify.store-and-forward.*``, ``listen.subscription.*``);
* no acknowledgement, no requeue (``acknowledge``/``requeue`` do nothing),
  no balance (round-robin even to a busy listener), no retry, no faults, no
  failover, no at-most-once reply check, no batch timer semantics beyond
  "wait up to ``batch_timeout`` for more".

Addressing is the contract's (exchange, topic, server, fanout, notification
``topic.priority`` and pools), because a yardstick that delivers to the
wrong place would not measure the same workload.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import oslo_messaging
from oslo_messaging._drivers import base, common

#: Put in a listener's inbox to wake its thread for stopping.
_STOP = object()

#: An address: ("topic", exchange, topic), ("server", exchange, topic, server),
#: ("fanout", exchange, topic) or ("notify", exchange, topic.priority, pool).
Address = tuple[Any, ...]


class _Hub:
    """The listeners of one virtual host, by address (copy-on-write tuples)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inboxes: dict[Address, tuple[queue.SimpleQueue[Any], ...]] = {}
        self.turns: dict[Address, itertools.count[int]] = {}
        #: (exchange, topic.priority) -> the notification addresses (shared, pools) bound.
        self.notify_groups: dict[tuple[str, str], tuple[Address, ...]] = {}

    def add(self, addresses: Iterable[Address], inbox: queue.SimpleQueue[Any]) -> None:
        with self.lock:
            for address in addresses:
                self.inboxes[address] = (*self.inboxes.get(address, ()), inbox)
                self.turns.setdefault(address, itertools.count())
                if address[0] == "notify":
                    group = self.notify_groups.get(address[1:3], ())
                    if address not in group:
                        self.notify_groups[address[1:3]] = (*group, address)

    def remove(self, addresses: Iterable[Address], inbox: queue.SimpleQueue[Any]) -> None:
        with self.lock:
            for address in addresses:
                left = tuple(i for i in self.inboxes.get(address, ()) if i is not inbox)
                if left:
                    self.inboxes[address] = left
                else:
                    self.inboxes.pop(address, None)

    def one(self, address: Address, item: Any) -> None:
        """Hand ``item`` to one listener of ``address``, round-robin (dropped if none)."""
        inboxes = self.inboxes.get(address)
        if inboxes:
            inboxes[next(self.turns[address]) % len(inboxes)].put(item)

    def each(self, address: Address, item: Any) -> None:
        for inbox in self.inboxes.get(address, ()):
            inbox.put(item)


def _make_encode() -> Callable[[Any], str]:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    encoder = make(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                   False, False, True)
    return lambda data: "".join(encoder(data, 0))


#: The copy of every hop: one encode by the sender, one decode by the receiver.
_encode = _make_encode()
_decode_raw = json.JSONDecoder().raw_decode


def _decode(text: str) -> Any:
    return _decode_raw(text)[0]


_msg_ids = itertools.count(1)
_hubs_lock = threading.Lock()
_hubs: dict[str, _Hub] = {}


def hub_for(vhost: str | None) -> _Hub:
    with _hubs_lock:
        return _hubs.setdefault(vhost or "/", _Hub())


def drop_hub(vhost: str | None) -> None:
    """Forget the listeners of ``vhost`` (the bench adapter's teardown)."""
    with _hubs_lock:
        _hubs.pop(vhost or "/", None)


class _ReplySlot:
    """Where one call's reply lands: a held lock the replier releases.

    Heartbeats release it too (``beat``); ``pending`` keeps the lock from
    being released twice before the caller took it again.
    """

    __slots__ = ("copy", "failure", "last_beat", "lock", "pending", "replied", "result")

    def __init__(self, copy: bool) -> None:
        self.copy = copy
        self.lock = threading.Lock()
        self.lock.acquire()
        self.pending = False
        self.replied = False
        self.result: Any = None
        self.failure: str | None = None
        self.last_beat = 0.0

    def _wake(self) -> None:
        if not self.pending:
            self.pending = True
            self.lock.release()


class CeilingIncoming(base.RpcIncomingMessage):
    """A delivered message: the sender's own objects, and the caller's slot if a call."""

    def __init__(self, ctxt: Any, message: Any, slot: _ReplySlot | None,
                 call_monitor_timeout: float | None) -> None:
        # A cheap msg_id (the base class would make a uuid4 for every message).
        super().__init__(ctxt, message, msg_id=str(next(_msg_ids)))
        self.client_timeout = call_monitor_timeout
        self._slot = slot

    def acknowledge(self) -> None:
        pass

    def requeue(self) -> None:
        pass

    def reply(self, reply: Any = None, failure: Any = None) -> None:
        slot = self._slot
        if slot is None:
            return
        if failure is not None:
            if isinstance(failure, BaseException):
                failure = (type(failure), failure, failure.__traceback__)
            slot.failure = common.serialize_remote_exception(failure)
        slot.result = _encode(reply) if slot.copy else reply
        slot.replied = True
        slot._wake()

    def heartbeat(self) -> None:
        slot = self._slot
        if slot is not None:
            slot.last_beat = time.monotonic()
            slot._wake()


#: What an inbox holds: (copied, payload, reply slot, call_monitor_timeout); the
#: payload is the JSON text of [ctxt, message] when copied, else the pair itself.
Item = tuple[bool, Any, "_ReplySlot | None", "float | None"]


def _incoming(item: Item) -> CeilingIncoming:
    """The receiver's message: its own copy of the payload, unless copies are off."""
    copied, payload, slot, call_monitor_timeout = item
    ctxt, message = _decode(payload) if copied else payload
    return CeilingIncoming(ctxt, message, slot, call_monitor_timeout)


class CeilingListener(base.Listener):
    """One inbox and one thread; ``stop`` joins the thread."""

    def __init__(self, hub: _Hub, addresses: list[Address], batch_size: int,
                 batch_timeout: float | None, on_cleanup: Callable[[CeilingListener], None]):
        super().__init__(batch_size, batch_timeout)
        self._hub = hub
        self._addresses = addresses
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._on_cleanup = on_cleanup
        hub.add(addresses, self._inbox)

    def start(self, on_incoming_callback: Callable[[list[Any]], object]) -> None:
        super().start(on_incoming_callback)
        self._thread = threading.Thread(target=self._run, args=(on_incoming_callback,),
                                        name="ceiling-listener", daemon=True)
        self._thread.start()

    def _run(self, callback: Callable[[list[Any]], object]) -> None:
        inbox, size, wait = self._inbox, max(1, self.batch_size), self.batch_timeout
        while True:
            item = inbox.get()
            if item is _STOP or self._stopped:
                return
            batch = [_incoming(item)]
            if size > 1:
                end = time.monotonic() + (wait or 0)
                while len(batch) < size:
                    try:
                        more = inbox.get(timeout=max(0.0, end - time.monotonic()))
                    except queue.Empty:
                        break
                    if more is _STOP:
                        inbox.put(_STOP)
                        break
                    batch.append(_incoming(more))
            callback(batch)

    def stop(self) -> None:
        self._stopped = True
        self._inbox.put(_STOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        super().stop()

    def cleanup(self) -> None:
        self.stop()
        self._hub.remove(self._addresses, self._inbox)
        self._on_cleanup(self)


class CeilingDriver(base.BaseDriver):
    """The yardstick driver; see the module docstring (it is not conformant)."""

    def __init__(self, conf: Any, url: Any, default_exchange: str | None = None,
                 allowed_remote_exmods: list[str] | None = None) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self._hub = hub_for(url.virtual_host)
        self._copy = (url.query or {}).get("copy") != "no"
        self._listeners: set[CeilingListener] = set()
        self._lock = threading.Lock()

    def require_features(self, requeue: bool = False) -> None:
        """Claims everything, so the bench runs every workload (requeue does nothing)."""

    def _exchange(self, target: oslo_messaging.Target) -> str:
        return target.exchange or self._default_exchange or "openstack"

    def send(self, target: oslo_messaging.Target, ctxt: Any, message: Any,
             wait_for_reply: bool | None = None, timeout: float | None = None,
             call_monitor_timeout: float | None = None, retry: int | None = None,
             transport_options: Any = None) -> Any:
        exchange = self._exchange(target)
        slot = _ReplySlot(self._copy) if wait_for_reply else None
        incoming = self._item(ctxt, message, slot, call_monitor_timeout)
        if target.fanout:
            self._hub.each(("fanout", exchange, target.topic), incoming)
        elif target.server:
            self._hub.one(("server", exchange, target.topic, target.server), incoming)
        else:
            self._hub.one(("topic", exchange, target.topic), incoming)
        if slot is None:
            return None
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        while not slot.replied:
            limit = deadline
            if call_monitor_timeout:
                monitor = max(started, slot.last_beat) + call_monitor_timeout
                limit = monitor if limit is None else min(limit, monitor)
            wait = -1.0 if limit is None else limit - time.monotonic()
            if limit is not None and wait <= 0:
                raise oslo_messaging.MessagingTimeout("ceiling: no reply in time")
            if slot.lock.acquire(timeout=wait):
                slot.pending = False
        if slot.failure is not None:
            raise common.deserialize_remote_exception(slot.failure,
                                                      self._allowed_remote_exmods)
        return _decode(slot.result) if self._copy else slot.result

    def _item(self, ctxt: Any, message: Any, slot: _ReplySlot | None,
              call_monitor_timeout: float | None) -> Item:
        """What goes into an inbox (see :data:`Item`)."""
        if self._copy:
            return (True, _encode([ctxt, message]), slot, call_monitor_timeout)
        return (False, (ctxt, message), slot, call_monitor_timeout)

    def send_notification(self, target: oslo_messaging.Target, ctxt: Any, message: Any,
                          version: float, retry: int | None = None) -> None:
        exchange = self._exchange(target)
        incoming = self._item(ctxt, message, None, None)
        # One copy to the listeners without a pool, one to each pool.
        for address in self._hub.notify_groups.get((exchange, target.topic), ()):
            self._hub.one(address, incoming)

    def listen(self, target: oslo_messaging.Target, batch_size: int,
               batch_timeout: float | None) -> CeilingListener:
        exchange = self._exchange(target)
        addresses: list[Address] = [("topic", exchange, target.topic),
                                    ("fanout", exchange, target.topic)]
        if target.server:
            addresses.append(("server", exchange, target.topic, target.server))
        return self._listener(addresses, batch_size, batch_timeout)

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> CeilingListener:
        addresses = list(dict.fromkeys(
            ("notify", self._exchange(t), f"{t.topic}.{p}", pool)
            for t, p in targets_and_priorities))
        return self._listener(addresses, batch_size, batch_timeout)

    def _listener(self, addresses: list[Address], batch_size: int,
                  batch_timeout: float | None) -> CeilingListener:
        listener = CeilingListener(self._hub, addresses, batch_size, batch_timeout,
                                   self._forget)
        with self._lock:
            self._listeners.add(listener)
        return listener

    def _forget(self, listener: CeilingListener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def cleanup(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.cleanup()
