"""Replies: how the answer to an RPC call (or its failure) gets back to the caller.

Hypothesis behind every scenario here: a driver that answers calls correctly
routes each reply to the one caller that waits for it (even with many callers
in flight on one driver, or callers on other driver instances), hands over
exactly what the server passed to ``reply()``, rebuilds a remote failure as the
caller's own exception type only when the caller allowed its module, and never
lets ``reply()`` raise into the server.  The caller and the server always use
separate driver instances, as two processes would, so that nothing can be
short-circuited inside one driver object.

The helpers (:class:`Pending`, :func:`serve`, :func:`expect_raises`) live in
``_support.py`` with the other scenario helpers.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import oslo_messaging
import pytest
from oslo_messaging._drivers import base as driver_base

from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import (
    ConformanceError,
    Pending,
    call_in_background,
    expect_raises,
    raise_and_capture,
    serve,
)

# ---------------------------------------------------------------------------------------
# helpers (also used by timeouts.py and retry.py)
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# a reply comes back to its caller
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("rpc-incoming.class.used-for-rpc")
def test_call_delivers_rpc_incoming_message(kit: Kit) -> None:
    """The RPC server answers through ``reply()``/``heartbeat()`` of what listen() delivers.

    So a request sent with ``wait_for_reply=True`` has to arrive as an
    ``RpcIncomingMessage`` with both methods; answering it also proves they work.
    """
    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "class"})
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    assert isinstance(message, driver_base.RpcIncomingMessage), (
        f"expected the delivered call to be an RpcIncomingMessage, got {type(message)!r}")
    for name in ("reply", "heartbeat"):
        assert callable(getattr(message, name, None)), (
            f"expected the delivered call to have a callable {name}(), it has not")
    kit.call(message.reply, {"a": "class"}, what="reply()")
    got = pending.result(kit.timing.eventually)
    assert got == {"a": "class"}, f"expected the reply {{'a': 'class'}}, got {got!r}"


@pytest.mark.clause("send.wait-for-reply.returns-reply")
@pytest.mark.parametrize("value", [{"a": 1, "nested": {"b": [1, 2]}}, [1, "two", None],
                                   "plain text", None],
                         ids=["dict", "list", "str", "none"])
def test_send_returns_exactly_the_reply(kit: Kit, value: Any) -> None:
    """send() blocks while the server holds the call, then returns what reply() was given.

    The server is the scenario itself: it holds the request, checks that the
    caller is still blocked (a driver that returns early returns None or a
    heartbeat), then replies.  None is included because a driver that returns
    before the reply would return exactly that.
    """
    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "value"})
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    assert not pending.done.is_set(), (
        f"expected send() to block until the reply, it ended with "
        f"{pending.error or pending.value!r} while the server still held the call")
    kit.call(message.reply, value, what="reply()")
    got = pending.result(kit.timing.eventually)
    assert got == value, f"expected send() to return {value!r}, got {got!r}"


@pytest.mark.clause("rpc-incoming.reply.routed-to-caller")
def test_reply_reaches_the_calling_driver(kit: Kit) -> None:
    """Two caller drivers call the same topic; each gets the reply meant for it.

    Answering the second caller first catches a driver that routes replies to
    whichever caller (or driver) waits longest instead of to the one that asked.
    """
    _, sub, target = serve(kit)
    first = call_in_background(kit, kit.driver(), target, {"who": "first"}, what="caller 1")
    sub.inbox.wait_for(1, kit.timing.eventually)
    second = call_in_background(kit, kit.driver(), target, {"who": "second"},
                                what="caller 2")
    messages = sub.inbox.wait_for(2, kit.timing.eventually)
    for message in reversed(messages):
        kit.call(message.reply, {"to": message.message["who"]}, what="reply()")
    got = {"first": first.result(kit.timing.eventually),
           "second": second.result(kit.timing.eventually)}
    assert got == {"first": {"to": "first"}, "second": {"to": "second"}}, (
        f"expected each caller driver to get the reply addressed to it, got {got}")


@pytest.mark.clause("send.wait-for-reply.returns-reply", "rpc-incoming.reply.routed-to-caller")
def test_public_call_returns_reply(kit: Kit) -> None:
    """RPCClient.call returns what the endpoint returned, over two transports.

    The client and the server use separate transports (separate drivers), and
    several value types go through the public serializer and back.
    """
    values: list[Any] = [{"k": [1, 2]}, ["x", 2], "text", None, 7]

    class Echo:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    target = kit.names.target(server=True)
    kit.rpc_server(kit.rpc_transport(), target, [Echo()])
    client = kit.rpc_client(kit.rpc_transport(),
                            oslo_messaging.Target(exchange=target.exchange, topic=target.topic),
                            timeout=kit.timing.eventually)
    answers = []
    for value in values:
        try:
            answers.append(kit.call(client.call, {}, "echo", value=value,
                                    what="RPCClient.call()"))
        except oslo_messaging.MessagingTimeout as exc:
            answers.append(exc)
    with kit.clause("rpc-incoming.reply.routed-to-caller", soft=True):
        lost = [v for v, a in zip(values, answers, strict=True)
                if isinstance(a, oslo_messaging.MessagingTimeout)]
        assert not lost, (f"no reply reached the caller's transport for the calls echoing "
                          f"{lost!r} (MessagingTimeout)")
    with kit.clause("send.wait-for-reply.returns-reply", soft=True):
        for value, got in zip(values, answers, strict=True):
            assert got == value, f"expected RPCClient.call to return {value!r}, got {got!r}"


@pytest.mark.clause("send.wait-for-reply.correlated")
def test_concurrent_calls_get_their_own_replies(kit: Kit) -> None:
    """20 threads call through one driver; the server answers in reverse order.

    The server waits until every request has arrived before answering any, so
    all 20 callers are in flight together, and answers the last first: a
    driver that hands replies out in arrival order, or to any waiter of the
    driver, gives some caller someone else's payload.
    """
    count = 20
    _, sub, target = serve(kit)
    caller = kit.driver()
    pendings = [call_in_background(kit, caller, target, {"n": n}, what=f"call {n}")
                for n in range(count)]
    messages = sub.inbox.wait_for(count, kit.timing.eventually)
    for message in reversed(messages):
        kit.call(message.reply, {"echo": message.message["n"]}, what="reply()")
    wrong = {}
    for n, pending in enumerate(pendings):
        got = pending.result(kit.timing.eventually)
        if got != {"echo": n}:
            wrong[n] = got
    assert not wrong, f"expected each call to get the reply echoing its own n, got {wrong}"


@pytest.mark.clause("send.wait-for-reply.correlated")
def test_public_concurrent_calls_get_their_own_replies(kit: Kit) -> None:
    """8 threads share one RPCClient; the endpoint holds all 8 until each has arrived.

    The barrier makes the 8 invocations run at once on the server, so their
    replies race each other back through the one client transport.
    """
    count = 8
    barrier = threading.Barrier(count, timeout=kit.timing.eventually)

    class Echo:
        def echo(self, ctxt: Any, n: int, tag: str) -> dict[str, Any]:
            barrier.wait()
            return {"n": n, "tag": tag}

    target = kit.names.target(server=True)
    kit.rpc_server(kit.rpc_transport(), target, [Echo()])
    client = kit.rpc_client(kit.rpc_transport(),
                            oslo_messaging.Target(exchange=target.exchange, topic=target.topic),
                            timeout=kit.timing.eventually)

    def call(n: int) -> Pending:
        return Pending(lambda: kit.call(client.call, {}, "echo", n=n, tag=f"tag-{n}",
                                        what="RPCClient.call()"), f"RPCClient.call #{n}")

    pendings = [call(n) for n in range(count)]
    results = {n: p.result(kit.timing.eventually) for n, p in enumerate(pendings)}
    wrong = {n: r for n, r in results.items() if r != {"n": n, "tag": f"tag-{n}"}}
    assert not wrong, f"expected each RPCClient.call to get its own echo, got {wrong}"


# ---------------------------------------------------------------------------------------
# at most once, never raising
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("rpc-incoming.reply.at-most-once", "rpc-incoming.reply.no-raise")
def test_second_reply_is_ignored(kit: Kit) -> None:
    """A second reply() to the same call is swallowed, and never reaches a later call.

    The stale second reply is sent before the next call exists, so a driver
    that queues it and hands the next caller the oldest reply fails here.
    """
    _, sub, target = serve(kit)
    caller = kit.driver()
    first = call_in_background(kit, caller, target, {"n": 1}, what="call 1")
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    with kit.clause("rpc-incoming.reply.no-raise"):
        kit.call(message.reply, {"r": 1}, what="first reply()")
        kit.call(message.reply, {"r": "stale"}, what="second reply() to the same call")
    with kit.clause("rpc-incoming.reply.at-most-once"):
        got = first.result(kit.timing.eventually)
        assert got == {"r": 1}, (
            f"expected the first call to get the first reply {{'r': 1}}, got {got!r}")
        second = call_in_background(kit, caller, target, {"n": 2}, what="call 2")
        message = sub.inbox.wait_for(2, kit.timing.eventually)[1]
        with kit.clause("rpc-incoming.reply.no-raise"):
            kit.call(message.reply, {"r": 2}, what="reply() to call 2")
        got = second.result(kit.timing.eventually)
        assert got == {"r": 2}, (
            f"expected the second call to get its own reply {{'r': 2}}, got {got!r}")


@pytest.mark.clause("rpc-incoming.reply.at-most-once")
def test_reply_once_across_lost_confirmation(kit: Kit) -> None:
    """A reply whose publish confirmation is lost (so the driver may resend it) arrives once.

    The resent copy, if the backend keeps it, must not be handed to the next
    call from the same caller.
    """
    from driver_conformance import faults

    _, sub, target = serve(kit)
    caller = kit.driver()
    injector = kit.faults(faults.LOST_CONFIRM)
    first = call_in_background(kit, caller, target, {"n": 1}, what="call 1")
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    injector.lose_confirmations(1)
    kit.call(message.reply, {"r": 1}, what="reply() with its confirmation lost")
    got = first.result(kit.timing.eventually)
    assert got == {"r": 1}, (
        f"expected the first call to get the first reply {{'r': 1}}, got {got!r}")
    injector.heal()
    second = call_in_background(kit, caller, target, {"n": 2}, what="call 2")
    message = sub.inbox.wait_for(2, kit.timing.eventually)[1]
    kit.call(message.reply, {"r": 2}, what="reply() to call 2")
    got = second.result(kit.timing.eventually)
    assert got == {"r": 2}, (
        f"expected the second call to get its own reply {{'r': 2}}, got {got!r}")


@pytest.mark.clause("rpc-incoming.reply.no-raise", "rpc-incoming.heartbeat.no-raise")
def test_reply_to_a_caller_that_gave_up(kit: Kit) -> None:
    """heartbeat() and reply() after the caller timed out and cleaned up do not raise.

    This is the normal fate of a slow RPC method: the server answers into the
    void, and must not crash its worker doing so.
    """
    _, sub, target = serve(kit)
    caller = kit.driver()
    pending = call_in_background(kit, caller, target, {"q": "late"},
                                 timeout=kit.timing.s(0.1))
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    expect_raises(pending, oslo_messaging.MessagingTimeout, kit.timing.eventually)
    kit.call(caller.cleanup, what="caller driver.cleanup()")
    with kit.clause("rpc-incoming.heartbeat.no-raise"):
        kit.call(message.heartbeat, what="heartbeat() to a caller that is gone")
    with kit.clause("rpc-incoming.reply.no-raise"):
        kit.call(message.reply, {"too": "late"}, what="reply() to a caller that is gone")


@pytest.mark.clause("rpc-incoming.reply.log-on-failure", "rpc-incoming.reply.no-raise",
                    "rpc-incoming.heartbeat.no-raise")
def test_reply_with_backend_broken(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """With the backend unreachable, heartbeat() and reply() return and the failure is logged.

    The server has nobody to raise to, so the contract asks for a log record
    instead; a WARNING (or worse) record emitted while reply() runs is taken as
    that record.  The caller's timeout is short because a driver may retry the
    reply until the caller stops waiting.
    """
    from driver_conformance import faults

    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "doomed"},
                                 timeout=kit.timing.s(0.2))
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    injector = kit.faults(faults.OUTAGE)
    caplog.set_level(logging.WARNING)
    injector.start_outage()
    try:
        with kit.clause("rpc-incoming.heartbeat.no-raise"):
            kit.call(message.heartbeat, what="heartbeat() during an outage")
        before = time.time()
        with kit.clause("rpc-incoming.reply.no-raise"):
            kit.call(message.reply, {"lost": True}, what="reply() during an outage")
        after = time.time()
    finally:
        injector.heal()
    pending.outcome(kit.timing.eventually)
    with kit.clause("rpc-incoming.reply.log-on-failure"):
        logged = [r for r in caplog.records
                  if r.levelno >= logging.WARNING and before <= r.created <= after]
        assert logged, ("expected a WARNING-or-higher log record while reply() failed to "
                        "reach the backend, got none (all records: "
                        f"{[(r.levelname, r.getMessage()) for r in caplog.records]})")


@pytest.mark.clause("rpc-incoming.reply.blocks-until-handoff")
def test_reply_survives_immediate_server_shutdown(kit: Kit) -> None:
    """The server replies, then at once stops and cleans up its listener and driver.

    A driver that only queues the reply in memory and returns loses it when
    cleanup() tears the queue down; the caller must still get it.
    """
    server, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "last"})
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    kit.call(message.reply, {"last": "words"}, what="reply()")
    sub.cleanup()
    kit.call(server.cleanup, what="server driver.cleanup()")
    got = pending.result(kit.timing.eventually)
    assert got == {"last": "words"}, f"expected the reply {{'last': 'words'}}, got {got!r}"


@pytest.mark.clause("rpc-incoming.reply.cast-no-op")
def test_reply_to_a_cast_is_a_no_op(kit: Kit) -> None:
    """reply() and reply(failure=...) on a cast neither raise nor surface anywhere.

    A call made afterwards by the same driver on the same topic is the
    barrier: it must get its own reply, not the stray one, and the listener
    must have received exactly the cast and the call.
    """
    _, sub, target = serve(kit)
    caller = kit.driver()
    kit.send(caller, target, {"kind": "cast"})
    cast = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    kit.call(cast.reply, {"x": 1}, what="reply() to a cast")
    kit.call(cast.reply, failure=raise_and_capture(ValueError("stray")),
             what="reply(failure=...) to a cast")
    pending = call_in_background(kit, caller, target, {"kind": "call"})
    call = sub.inbox.wait_for(2, kit.timing.eventually)[1]
    kit.call(call.reply, {"v": 2}, what="reply() to the call")
    got = pending.result(kit.timing.eventually)
    assert got == {"v": 2}, f"expected the later call to get its own reply {{'v': 2}}, got {got!r}"
    bodies = sub.inbox.bodies()
    assert bodies == [{"kind": "cast"}, {"kind": "call"}], (
        f"expected the listener to receive the cast and the call only, got {bodies}")


@pytest.mark.clause("rpc-incoming.reply.after-acknowledge")
def test_reply_after_acknowledge(kit: Kit) -> None:
    """The RPC server acknowledges a call before running it, then heartbeats and replies.

    So acknowledging must not end the message's ability to answer.  The call
    carries a (long) call_monitor_timeout because the RPC server only
    heartbeats such calls; this is the exact sequence it produces.
    """
    _, sub, target = serve(kit, inbox=Inbox("no-auto-ack", ack=False))
    pending = call_in_background(kit, kit.driver(), target, {"q": "ack first"},
                                 call_monitor_timeout=kit.timing.eventually)
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    kit.call(message.acknowledge, what="acknowledge()")
    kit.call(message.heartbeat, what="heartbeat() after acknowledge()")
    kit.call(message.reply, {"v": 1}, what="reply() after acknowledge()")
    got = pending.result(kit.timing.eventually)
    assert got == {"v": 1}, f"expected {{'v': 1}} after acknowledge(), got {got!r}"


# ---------------------------------------------------------------------------------------
# failures
# ---------------------------------------------------------------------------------------


def _call_failing(kit: Kit, failure: Any, **caller_kwargs: Any) -> Pending:
    """A call whose server answers ``reply(failure=failure)``; returns the caller's Pending."""
    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(**caller_kwargs), target, {"q": "fail"})
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    kit.call(message.reply, failure=failure, what="reply(failure=...)")
    return pending


@pytest.mark.clause("rpc-incoming.reply.failure-rebuilt")
@pytest.mark.parametrize("exc_type", [ValueError, LookupError])
def test_builtin_failure_rebuilt(kit: Kit, exc_type: type[Exception]) -> None:
    """A builtin exception from the server is raised in the caller as the same type.

    Builtins are always allowed, whatever allowed_remote_exmods says, so the
    caller here allows nothing.
    """
    pending = _call_failing(kit, raise_and_capture(exc_type("boom")))
    error = expect_raises(pending, exc_type, kit.timing.eventually)
    assert "boom" in str(error), f"expected the rebuilt error to say 'boom', got {str(error)!r}"


@pytest.mark.clause("rpc-incoming.reply.failure-is-exc-info")
def test_failure_given_as_exc_info(kit: Kit) -> None:
    """The RPC server passes ``sys.exc_info()`` from inside its except block.

    So the triple, taken inside a real except block with a real traceback, is
    what reply(failure=...) must accept without raising and turn into the
    caller's exception.
    """
    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "exc_info"})
    message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    try:
        raise TypeError("from inside except")
    except TypeError:
        kit.call(message.reply, failure=sys.exc_info(), what="reply(failure=sys.exc_info())")
    error = expect_raises(pending, TypeError, kit.timing.eventually)
    assert "from inside except" in str(error), (
        f"expected the rebuilt TypeError to carry its message, got {str(error)!r}")


@pytest.mark.clause("rpc-incoming.reply.failure-rebuilt")
def test_public_builtin_failure_rebuilt(kit: Kit) -> None:
    """An endpoint raising ValueError makes RPCClient.call raise ValueError."""

    class Failing:
        def fail(self, ctxt: Any) -> None:
            raise ValueError("boom from the endpoint")

    target = kit.names.target(server=True)
    kit.rpc_server(kit.rpc_transport(), target, [Failing()])
    client = kit.rpc_client(kit.rpc_transport(), target, timeout=kit.timing.eventually)
    pending = Pending(lambda: kit.call(client.call, {}, "fail", what="RPCClient.call()"),
                      "RPCClient.call()")
    error = expect_raises(pending, ValueError, kit.timing.eventually)
    assert "boom from the endpoint" in str(error), (
        f"expected the ValueError to carry the endpoint's message, got {str(error)!r}")


@pytest.mark.clause("driver.init.allowed-remote-exmods")
def test_allowed_module_failure_rebuilt(kit: Kit) -> None:
    """A failure from a class in an allowed module comes back as that class, same args."""
    original = ConformanceError("boom", 42)
    pending = _call_failing(kit, raise_and_capture(original),
                            allowed_remote_exmods=[ConformanceError.__module__])
    error = expect_raises(pending, ConformanceError, kit.timing.eventually)
    assert error.args == original.args, (
        f"expected the rebuilt ConformanceError to have args {original.args!r}, "
        f"got {error.args!r}")


@pytest.mark.clause("send.reply.remote-error-otherwise")
def test_unallowed_module_failure_is_remote_error(kit: Kit) -> None:
    """The same failure, its module not allowed: RemoteError naming the class and message."""
    pending = _call_failing(kit, raise_and_capture(ConformanceError("boom", 42)))
    error = expect_raises(pending, oslo_messaging.RemoteError, kit.timing.eventually)
    assert isinstance(error, oslo_messaging.RemoteError)
    assert error.exc_type == "ConformanceError", (
        f"expected RemoteError.exc_type 'ConformanceError', got {error.exc_type!r}")
    assert "boom" in str(error.value), (
        f"expected RemoteError.value to contain 'boom', got {error.value!r}")


@pytest.mark.parametrize("allowed", [
    pytest.param(True, id="allowed",
                 marks=pytest.mark.clause("driver.init.allowed-remote-exmods")),
    pytest.param(False, id="not-allowed",
                 marks=pytest.mark.clause("send.reply.remote-error-otherwise")),
])
def test_public_application_failure(kit: Kit, allowed: bool) -> None:
    """Through RPCClient: the endpoint's ConformanceError is rebuilt only if allowed.

    The allowed module list is given to the client's transport (its driver),
    which is where the public API puts it.
    """

    class Failing:
        def fail(self, ctxt: Any) -> None:
            raise ConformanceError("boom", 7)

    target = kit.names.target(server=True)
    kit.rpc_server(kit.rpc_transport(), target, [Failing()])
    exmods = [ConformanceError.__module__] if allowed else []
    client = kit.rpc_client(kit.rpc_transport(allowed_remote_exmods=exmods), target,
                            timeout=kit.timing.eventually)
    pending = Pending(lambda: kit.call(client.call, {}, "fail", what="RPCClient.call()"),
                      "RPCClient.call()")
    if allowed:
        error = expect_raises(pending, ConformanceError, kit.timing.eventually)
        assert error.args == ("boom", 7), (
            f"expected ConformanceError args ('boom', 7), got {error.args!r}")
    else:
        error = expect_raises(pending, oslo_messaging.RemoteError, kit.timing.eventually)
        assert isinstance(error, oslo_messaging.RemoteError)
        assert error.exc_type == "ConformanceError", (
            f"expected RemoteError.exc_type 'ConformanceError', got {error.exc_type!r}")
