"""Broken incoming messages: what a listener hands on.

Mirrors :mod:`driver_conformance.scenarios.incoming`: a message without the
base attributes, a ctxt with a key the sender never set, and content shared
between the sender and the receivers instead of copied.
"""

from __future__ import annotations

import collections
import threading
import uuid
from collections.abc import Callable
from typing import Any

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import (
    ListenerLike,
    WrappedDriver,
    WrappedIncoming,
    WrappedRpcIncoming,
)

# -- what a listener delivers ----------------------------------------------------------


@variant("msg-id-missing", "incoming.attributes.base-initialised",
         "delivered messages have msg_id None (IncomingMessage.__init__ not honoured)")
class MsgIdMissing(WrappedDriver):
    """``msg_id`` of every delivered message is None.

    This is the driver whose message class skips ``IncomingMessage.__init__``
    and sets only ctxt and message; the RPC server logs msg_id.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        message.overrides["msg_id"] = None
        return message


@variant("ctxt-key-added", "incoming.content.ctxt-no-added-keys",
         "the delivered ctxt carries a 'client_timeout' key the sender never set")
class CtxtKeyAdded(WrappedDriver):
    """Every delivered ctxt gains a ``client_timeout`` key, every sent key kept.

    This is oslo's rabbit driver, which unpacks its own header into the
    context it hands on: endpoints see a key the caller never sent.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        if isinstance(inner.ctxt, dict):
            message.overrides["ctxt"] = dict(inner.ctxt, client_timeout=inner.client_timeout)
        return message


_SENT_OBJECTS: collections.OrderedDict[str, tuple[Any, Any]] = collections.OrderedDict()


_SENT_LOCK = threading.Lock()


_SENT_KEY = "_broken_shared_ref"


@variant("messages-shared", "incoming.content.copied-not-shared",
         "the listener receives the sender's very ctxt and message objects")
class MessagesShared(WrappedDriver):
    """Delivered ``ctxt`` and ``message`` are the objects the sender passed.

    An in-process driver that hands references over instead of serialising
    (oslo.messaging's old fake driver had to add a deepcopy for this): later
    mutations by either side show on the other.
    """

    def _remember(self, ctxt: Any, message: Any) -> Any:
        if not isinstance(ctxt, dict):
            return ctxt
        ref = uuid.uuid4().hex
        with _SENT_LOCK:
            _SENT_OBJECTS[ref] = (ctxt, message)
            while len(_SENT_OBJECTS) > 10000:
                _SENT_OBJECTS.popitem(last=False)
        return dict(ctxt, **{_SENT_KEY: ref})

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        return super().send(target, self._remember(ctxt, message), message, **kwargs)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(target, self._remember(ctxt, message), message,
                                         version, retry)

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        ctxt = inner.ctxt
        if isinstance(ctxt, dict) and _SENT_KEY in ctxt:
            with _SENT_LOCK:
                sent = _SENT_OBJECTS.get(ctxt[_SENT_KEY])
            if sent is not None:
                message.overrides["ctxt"], message.overrides["message"] = sent
            else:
                message.overrides["ctxt"] = {k: v for k, v in ctxt.items() if k != _SENT_KEY}
        return message


def _rebuilt(value: Any, text: Callable[[str], str]) -> Any:
    """``value`` with ``text`` applied to every string in it, dict keys included."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {_rebuilt(k, text): _rebuilt(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebuilt(v, text) for v in value]
    return value


class _Rewritten(WrappedDriver):
    """Delivers every ctxt and message with :meth:`text` applied to each string."""

    def text(self, value: str) -> str:
        return value

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        message.overrides["ctxt"] = _rebuilt(inner.ctxt, self.text)
        message.overrides["message"] = _rebuilt(inner.message, self.text)
        return message


#: What :class:`LargeBodiesTruncated` keeps of a string: one 1 MiB frame.
_FRAME = 1024 * 1024


@variant("large-bodies-truncated", "incoming.content.ctxt-and-message",
         "strings over 1 MiB in a delivered message (and in a reply) are cut to 1 MiB")
class LargeBodiesTruncated(_Rewritten):
    """Every string longer than 1 MiB arrives cut to its first MiB, in requests and replies.

    This is the driver that reads a body into one fixed frame (a 1 MiB buffer, a
    backend's default maximum message size) and hands on what fitted instead of
    reading the rest or refusing the message: everything the kit sends otherwise is
    far smaller, so only a body of several MiB shows it.
    """

    def text(self, value: str) -> str:
        return value[:_FRAME]

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        super().on_reply(message, _rebuilt(reply, self.text), failure)


@variant("non-bmp-mangled", "incoming.content.ctxt-and-message",
         "characters outside the BMP arrive as two surrogate code points each")
class NonBmpMangled(_Rewritten):
    """Each character above U+FFFF in a delivered ctxt or message (keys and values) is
    replaced by its UTF-16 surrogate pair, as two code points.

    This is the driver that passes text through UTF-16 code units (or CESU-8, the
    "modified UTF-8" of Java clients) and decodes them one unit at a time: a rocket
    emoji comes back as U+D83D U+DE80.  The kit's usual corpus is all in the BMP, so
    only text with emoji or supplementary characters shows it.
    """

    def text(self, value: str) -> str:
        return "".join(_units(c) for c in value)


def _units(char: str) -> str:
    """``char`` as its UTF-16 code units, each a code point of its own."""
    code = ord(char)
    if code <= 0xFFFF:
        return char
    code -= 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


# -- calls from several threads ---------------------------------------------------------


@variant("settle-not-thread-safe", "incoming.methods.thread-safe",
         "acknowledge() raises when another thread is acknowledging on the same listener")
class SettleNotThreadSafe(WrappedDriver):
    """A listener's messages are settled over one channel that is not thread-safe.

    This is a driver built on a client library whose channel objects may be
    used by one thread at a time (AMQP channels in most client libraries): a
    second ``acknowledge()`` while one is in flight finds the channel busy.  The
    in-flight window is widened to a few milliseconds, as a network round trip
    would, so overlapping calls really meet.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channel_busy = threading.Lock()
        self._round_trip = threading.Event()  # never set: its wait is the round trip

    def on_acknowledge(self, message: WrappedIncoming) -> None:
        if not self._channel_busy.acquire(blocking=False):
            raise RuntimeError("channel in use by another thread")
        try:
            self._round_trip.wait(0.02)
            super().on_acknowledge(message)
        finally:
            self._channel_busy.release()
