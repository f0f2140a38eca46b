"""Broken replies: the answer to a call, or its failure, does not get back as sent.

Mirrors :mod:`driver_conformance.scenarios.replies` and its continuation
:mod:`driver_conformance.scenarios.reply_routing`.  The variants break
the server side of a call (``reply()`` on the incoming message) or how a
failure is rebuilt for the caller; ``send()`` itself is left alone except
where correlating replies is the breakage.
"""

from __future__ import annotations

import threading
from typing import Any

import oslo_messaging

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import (
    ListenerLike,
    WrappedDriver,
    WrappedIncoming,
    WrappedListener,
    WrappedPollAdapter,
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


@variant("late-reply-to-next-call", "send.wait-for-reply.correlated",
         "a reply that arrives after its caller timed out is handed to the driver's next call")
class LateReplyToNextCall(WrappedDriver):
    """Replies nobody waits for any more are kept, and the next caller takes one.

    Calls answered in time get their own replies (correlation works); but a
    driver that keeps "unclaimed" replies, meaning to hand them to whoever
    asked, and then gives them to any waiting caller, returns the late reply
    of a timed-out call to the next call made through it.  Each call here
    waits for its own reply on a thread, :data:`LATE_PATIENCE` beyond its
    timeout; a reply that arrives after its caller gave up joins the unclaimed
    ones, and a waiting caller returns the first of its own reply or an
    unclaimed one.
    """

    #: Seconds a timed-out call keeps waiting behind its caller's back.
    LATE_PATIENCE = 30.0

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._arrived = threading.Condition()
        self._unclaimed: list[Any] = []

    def send(self, target: Any, ctxt: Any, message: Any, wait_for_reply: bool | None = None,
             timeout: float | None = None, call_monitor_timeout: float | None = None,
             retry: int | None = None, transport_options: Any = None) -> Any:
        if not wait_for_reply or timeout is None:
            return super().send(target, ctxt, message, wait_for_reply, timeout,
                                call_monitor_timeout, retry, transport_options)
        mine: list[tuple[Any, BaseException | None]] = []
        abandoned = threading.Event()

        def wait_for_own_reply() -> None:
            try:
                outcome = (super(LateReplyToNextCall, self).send(
                    target, ctxt, message, True, timeout + self.LATE_PATIENCE,
                    call_monitor_timeout, retry, transport_options), None)
            except Exception as exc:
                outcome = (None, exc)
            with self._arrived:
                if not abandoned.is_set():
                    mine.append(outcome)
                elif outcome[1] is None:
                    self._unclaimed.append(outcome[0])
                self._arrived.notify_all()

        threading.Thread(target=wait_for_own_reply, daemon=True,
                         name="broken-late-reply").start()
        with self._arrived:
            if not self._arrived.wait_for(lambda: mine or self._unclaimed, timeout):
                abandoned.set()
                raise oslo_messaging.MessagingTimeout(
                    f"broken: no reply within {timeout}s")
            if self._unclaimed:
                abandoned.set()  # its own reply, when it comes, is unclaimed in turn
                return self._unclaimed.pop(0)
        reply, error = mine[0]
        if error is not None:
            raise error
        return reply


@variant("reply-sent-after-callback", "rpc-incoming.reply.blocks-until-handoff",
         "reply() inside the listener's callback is queued and sent once the callback returns")
class ReplySentAfterCallback(WrappedDriver):
    """A reply made on the listener's thread waits until the callback returns.

    A driver that publishes a listener's replies only between its deliveries
    (one channel per listener, not shared with its callback) queues what
    reply() is given meanwhile and flushes it once the callback is done:
    reply() returns before the handoff, and a server that keeps working after
    answering keeps its caller waiting.
    """

    def on_deliver(self, listener: WrappedListener | WrappedPollAdapter,
                   batch: list[Any]) -> None:
        # The messages' own listener: the poller, for a poll-style one.
        owner = listener.poller if isinstance(listener, WrappedPollAdapter) else listener
        outbox: list[tuple[WrappedRpcIncoming, Any, Any]] = []
        with self._lock:
            owner.state["outbox"] = outbox
        try:
            super().on_deliver(listener, batch)
        finally:
            with self._lock:
                owner.state["outbox"] = None
            for message, reply, failure in outbox:
                super().on_reply(message, reply, failure)

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        with self._lock:
            outbox = message.listener.state.get("outbox")
            if outbox is not None:
                outbox.append((message, reply, failure))
                message.replied = True
                return
        super().on_reply(message, reply, failure)


@variant("failure-traceback-dropped", "rpc-incoming.reply.failure-keeps-traceback",
         "a failure is sent back without the server's traceback (type and message only)")
class FailureTracebackDropped(WrappedDriver):
    """``reply(failure=...)`` serialises the exception without its traceback.

    A driver that formats the failure with ``format_exception_only`` (or
    passes ``(type, value, None)`` to the serialiser) sends the class and the
    message: the caller's exception has the right class but no longer says
    where on the server it was raised.
    """

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        if failure is not None:
            exc = failure[1] if isinstance(failure, tuple) else failure
            failure = (type(exc), exc.with_traceback(None), None)
        super().on_reply(message, reply, failure)
