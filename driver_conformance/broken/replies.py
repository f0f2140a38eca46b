"""Broken replies: the answer to a call, or its failure, does not get back as sent.

Mirrors :mod:`driver_conformance.scenarios.replies`.  The variants break
the server side of a call (``reply()`` on the incoming message) or how a
failure is rebuilt for the caller; ``send()`` itself is left alone except
where correlating replies is the breakage.
"""

from __future__ import annotations

from typing import Any

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import (
    ListenerLike,
    WrappedDriver,
    WrappedIncoming,
    WrappedRpcIncoming,
)


@variant("replies-misrouted", "send.wait-for-reply.correlated",
         "replies are matched to requests by arrival order, not by correlation id")
class RepliesMisrouted(WrappedDriver):
    """Each reply goes to the oldest request of the listener still waiting for one.

    A driver that correlates replies by position (one reply queue, answers
    assumed to come back in request order) is right as long as calls are
    answered one at a time, and wrong as soon as a server answers concurrent
    calls out of order: a caller then gets another caller's result.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        if isinstance(message, WrappedRpcIncoming):
            with self._lock:
                listener.state.setdefault("pending", []).append(message)
        return message

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        with self._lock:
            pending = message.listener.state.setdefault("pending", [])
            oldest = pending.pop(0) if pending else message
        oldest.inner.reply(reply=reply, failure=failure)
        message.replied = True


@variant("failures-not-rebuilt", "rpc-incoming.reply.failure-rebuilt",
         "a failure is sent back as an ordinary result string, not as an exception")
class FailuresNotRebuilt(WrappedDriver):
    """``reply(failure=...)`` sends ``"ExcType: message"`` as the result.

    A driver that serialises whatever it is given with ``str()`` instead of
    ``serialize_remote_exception`` does this: the caller's ``send()``
    returns a string where it should raise the remote exception.
    """

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        if failure is not None:
            exc = failure[1] if isinstance(failure, tuple) else failure
            reply, failure = f"{type(exc).__name__}: {exc}", None
        super().on_reply(message, reply, failure)


@variant("exmods-ignored", "driver.init.allowed-remote-exmods",
         "allowed_remote_exmods is ignored: every non-builtin failure becomes RemoteError")
class ExmodsIgnored(WrappedDriver):
    """The driver is built without the ``allowed_remote_exmods`` it was given.

    An exception from a whitelisted module then reaches the caller as a
    generic ``RemoteError`` instead of an instance of its own class, which
    is what happens when a driver drops the constructor argument.
    """

    @classmethod
    def inner_exmods(cls, allowed_remote_exmods: list[str]) -> list[str]:
        return []


@variant("not-rpc-incoming", "rpc-incoming.class.used-for-rpc",
         "messages of calls are plain IncomingMessage objects without reply()/heartbeat()")
class NotRpcIncoming(WrappedDriver):
    """Every delivered message is a plain ``IncomingMessage``, calls included.

    A driver with one message class for casts and notifications that forgot
    the RPC one: a server cannot answer a call.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        return WrappedIncoming(inner, listener)


@variant("reply-raises-twice", "rpc-incoming.reply.no-raise",
         "a second reply() to the same message raises instead of being ignored")
class ReplyRaisesTwice(WrappedDriver):
    """``reply()`` raises ``RuntimeError`` when the message was already answered.

    Guarding at-most-once replies with an exception (instead of a log line)
    is a natural mistake; the contract says reply() does not raise, because
    the server calling it has nobody to hand the exception to.
    """

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        if message.replied:
            raise RuntimeError(f"message {message.msg_id} was already answered")
        super().on_reply(message, reply, failure)
