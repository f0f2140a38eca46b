"""Replies, continued: when a reply lands, where a late one goes, what a failure carries.

The same area as :mod:`driver_conformance.scenarios.replies` (its negative
controls are in ``broken/replies.py`` too), split off to keep each module
small.  Hypothesis behind every scenario here: a reply is on its way to the
caller as soon as ``reply()`` returns, whatever the server does next; a
reply whose caller stopped waiting is dropped, never handed to the next call
of that caller; and a failure reaches the caller as its class with the
server's traceback text, whichever form (rebuilt or ``RemoteError``) the
caller's ``allowed_remote_exmods`` gives it.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import oslo_messaging
import pytest

from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import (
    ConformanceError,
    busy,
    call_in_background,
    expect_raises,
    serve,
)

# ---------------------------------------------------------------------------------------
# a reply is on its way when reply() returns
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("rpc-incoming.reply.blocks-until-handoff")
def test_reply_reaches_caller_while_server_still_busy(kit: Kit) -> None:
    """reply() made inside the listener's callback reaches the caller before it returns.

    The server's callback replies and then stays busy (as an RPC method does
    that has more to do after answering), so nothing else happens on the
    server side until the caller has its reply.  A driver whose reply() only
    queues the reply, to be sent when the callback returns (or at the next
    delivery, or the next acknowledge), returned before the handoff: the
    caller stays blocked for as long as the server is busy.
    """
    with busy() as hold:
        def answer_then_keep_working(message: Any) -> None:
            kit.call(message.reply, {"answer": "early"}, what="reply() inside the callback")
            hold.wait(kit.timing.call_bound)

        _, sub, target = serve(kit, inbox=Inbox("busy-after-reply",
                                                on_message=answer_then_keep_working))
        pending = call_in_background(kit, kit.driver(), target, {"q": "busy"})
        sub.inbox.wait_for(1, kit.timing.eventually)
        returned = pending.done.wait(kit.timing.eventually)
        assert returned, (
            f"expected send() to return the reply while the server, having called reply(), "
            f"was still busy in its callback; it was still blocked after "
            f"{kit.timing.eventually:.2f}s")
        assert not hold.is_set()
        got = pending.result(kit.timing.eventually)
        assert got == {"answer": "early"}, (
            f"expected the reply {{'answer': 'early'}}, got {got!r}")


# ---------------------------------------------------------------------------------------
# a late reply is dropped, not handed on
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("send.wait-for-reply.correlated", "rpc-incoming.reply.no-raise")
def test_late_reply_never_reaches_the_next_call(kit: Kit) -> None:
    """A reply sent after its caller timed out does not raise, and is not the next call's.

    The caller times out, then (the same driver, still running) calls the
    same topic again; while that second call waits, the server answers the
    first call late, and only then the second.  A driver that hands a waiting
    caller the first reply to arrive on its reply queue, instead of the one
    correlated with its own request, returns the late reply to the second
    call.  The late reply() itself must return without raising.
    """
    _, sub, target = serve(kit)
    caller = kit.driver()
    first = call_in_background(kit, caller, target, {"n": 1}, timeout=kit.timing.s(0.2),
                               what="call 1 (times out)")
    late = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    expect_raises(first, oslo_messaging.MessagingTimeout, kit.timing.eventually)
    second = call_in_background(kit, caller, target, {"n": 2}, what="call 2")
    own = sub.inbox.wait_for(2, kit.timing.eventually)[1]
    with kit.clause("rpc-incoming.reply.no-raise"):
        kit.call(late.reply, {"r": "late"}, what="reply() to call 1 after it timed out")
    with kit.clause("send.wait-for-reply.correlated"):
        kit.call(own.reply, {"r": 2}, what="reply() to call 2")
        got = second.result(kit.timing.eventually)
        assert got == {"r": 2}, (
            f"expected call 2 to get its own reply {{'r': 2}}, got {got!r} (the late reply "
            f"to call 1 is {{'r': 'late'}})")


# ---------------------------------------------------------------------------------------
# a failure keeps its class and the server's traceback
# ---------------------------------------------------------------------------------------


def _conformance_failing_server_frame(exc: Exception) -> None:
    """The server-side frame a failure is raised in: its name must reach the caller."""
    raise exc


def _failure_from_the_server_frame(exc: Exception) -> Any:
    try:
        _conformance_failing_server_frame(exc)
    except Exception:
        return sys.exc_info()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("raised", "allowed", "expected", "class_clause"), [
    pytest.param(ValueError, False, ValueError, "rpc-incoming.reply.failure-rebuilt",
                 id="builtin",
                 marks=pytest.mark.clause("rpc-incoming.reply.failure-rebuilt",
                                          "rpc-incoming.reply.failure-keeps-traceback")),
    pytest.param(ConformanceError, True, ConformanceError,
                 "driver.init.allowed-remote-exmods", id="allowed-module",
                 marks=pytest.mark.clause("driver.init.allowed-remote-exmods",
                                          "rpc-incoming.reply.failure-keeps-traceback")),
    pytest.param(ConformanceError, False, oslo_messaging.RemoteError,
                 "send.reply.remote-error-otherwise", id="remote-error",
                 marks=pytest.mark.clause("send.reply.remote-error-otherwise",
                                          "rpc-incoming.reply.failure-keeps-traceback")),
])
def test_failure_keeps_class_and_server_traceback(kit: Kit, raised: type[Exception],
                                                  allowed: bool,
                                                  expected: type[Exception],
                                                  class_clause: str) -> None:
    """The caller's exception is of the failure's class and names the server's frame.

    The server raises from a function of a distinctive name and replies with
    that ``sys.exc_info()``.  What the caller catches must be of the expected
    class (judged by the clause of that form), and printing it
    (``traceback.format_exception``) must show that function's name: oslo
    puts the server's traceback into a rebuilt exception's message and into
    ``RemoteError.traceback``; an in-process driver that raises the very
    object keeps it in ``__traceback__``.  A driver that serialises only the
    exception (its type and message, as ``format_exception_only`` does) loses
    where the server failed.
    """
    _, sub, target = serve(kit)
    exmods = [ConformanceError.__module__] if allowed else []
    pending = call_in_background(kit, kit.driver(allowed_remote_exmods=exmods), target,
                                 {"q": "fail"})
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    kit.call(message.reply, failure=_failure_from_the_server_frame(raised("boom", 3)),
             what="reply(failure=...)")
    with kit.clause(class_clause):
        error = expect_raises(pending, expected, kit.timing.eventually)
    with kit.clause("rpc-incoming.reply.failure-keeps-traceback"):
        printed = "".join(traceback.format_exception(error))
        frame = _conformance_failing_server_frame.__name__
        assert frame in printed, (
            f"expected the caller's {type(error).__name__} to carry the server's traceback "
            f"naming {frame}(); printing it shows:\n{printed}")
