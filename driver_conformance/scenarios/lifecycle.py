"""Lifecycle: when listen(), send() and cleanup() may return, and what they leave behind.

Hypotheses checked here:

* ``listen()`` returns only once its subscriptions exist (a cast sent right
  after it returns, before ``start()``, is delivered), and they stay active
  while the listener idles, until it is stopped;
* a cast and a notification return once the backend owns the message: the
  sending driver can be cleaned up at once without losing it, and no consumer
  needs to run for the send to return;
* ``Listener.cleanup()`` and ``BaseDriver.cleanup()`` block until their
  threads have ended, and leave nothing consuming, so that the process can
  exit and a new listener gets every later message;
* a ``listen()`` that cannot subscribe raises a ``MessagingException``.

Threads are compared with a baseline taken just before the thing under test
was made, leaving out the kit's own ``conformance-*`` threads and the one
oslo.messaging keeps for the whole process (:mod:`driver_conformance.compat`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import oslo_messaging
import pytest

from driver_conformance import compat, faults
from driver_conformance.adapter import CALLBACK, POLL
from driver_conformance.bounded import DriverHung
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import POLL_STOP, key_of, record, send_keyed


def new_threads(before: Iterable[threading.Thread]) -> list[threading.Thread]:
    """Live threads that were not in ``before``, other than the kit's own."""
    known = set(before)
    return [t for t in threading.enumerate()
            if t not in known and t.is_alive() and not t.name.startswith("conformance-")
            and not compat.owned_by_oslo_messaging(t)]


def describe(threads: Iterable[threading.Thread]) -> list[str]:
    return [f"{t.name}{' (daemon)' if t.daemon else ''}" for t in threads]


def open_sockets() -> set[str] | None:
    """This process's open socket inodes (Linux), or None where they cannot be listed."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    sockets = set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            sockets.add(link)
    return sockets


# -- listen() ----------------------------------------------------------------------------

@pytest.mark.clause("listen.blocks.until-subscribed")
@pytest.mark.parametrize("style", [CALLBACK, POLL])
def test_cast_sent_before_start_is_delivered(kit: Kit, style: str) -> None:
    """A cast sent by another driver right after ``listen()`` returns, before ``start()``.

    If ``listen()`` returned before its subscriptions existed, the backend
    would have had nowhere to put the cast (RabbitMQ drops it), and starting
    the listener later would not bring it back.  Sent to the shared topic
    address and to the server address, both of which ``listen()`` subscribes.
    """
    driver = kit.driver(listener_style=style)
    sender = kit.driver()
    target = kit.names.target(server=True)
    sub = kit.listen(driver, target, start=False,
                     inbox=Inbox("listener", on_message=record(kit, "listener")))
    send_keyed(kit, sender, target, "to-server")
    send_keyed(kit, sender, oslo_messaging.Target(exchange=target.exchange, topic=target.topic),
         "to-topic")
    sub.start()
    sub.inbox.wait_for(2, kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, (
        f"expected both casts sent before start() to be delivered once, got {counts}")


@pytest.mark.clause("listen.subscription.active-until-stop")
def test_subscriptions_stay_active_while_idle(kit: Kit) -> None:
    """After an idle spell, the listener still gets messages on all three of its addresses.

    The idle spell is the scenario's one quiet window (nothing may arrive in
    it); then a cast to the topic, one to the server and a fanout must all
    arrive.  The adapter reports no broker idle interval, so the window is the
    kit's quiet window, not "several seconds".
    """
    driver = kit.driver()
    sender = kit.driver()
    target = kit.names.target(server=True)
    sub = kit.listen(driver, target, inbox=Inbox("idle", on_message=record(kit, "listener")))
    idle = sub.inbox.quiet(kit.timing.quiet)
    assert not idle, f"expected nothing while idle, got {[m.message for m in idle]}"
    topic = oslo_messaging.Target(exchange=target.exchange, topic=target.topic)
    send_keyed(kit, sender, topic, "topic")
    send_keyed(kit, sender, target, "server")
    send_keyed(kit, sender, oslo_messaging.Target(exchange=target.exchange, topic=target.topic,
                                            fanout=True), "fanout")
    sub.inbox.wait_for(3, kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, f"expected topic, server and fanout casts once each, got {counts}"


@pytest.mark.clause("listen.errors.transport-driver-error")
def test_listen_unreachable_raises_messaging_exception(kit: Kit,
                                                       request: pytest.FixtureRequest) -> None:
    """With the backend down, ``listen()`` raises a MessagingException, not a library error.

    ``MessageHandlingServer.start`` turns a TransportDriverError into
    ServerListenError; anything else escapes the public API unconverted.
    """
    kit.require("rpc")
    injector = kit.faults(faults.OUTAGE)
    driver = kit.driver()
    injector.start_outage()
    try:
        listener = kit.call(driver.listen, kit.names.target(server=True), 1, None,
                            what="driver.listen() with the backend unreachable")
    except DriverHung:
        raise
    except oslo_messaging.MessagingException as exc:
        request.node.user_properties.append(("listen_error", type(exc).__name__))
        return
    except Exception as exc:
        raise AssertionError(
            "expected listen() to raise a MessagingException (ideally TransportDriverError) "
            f"with the backend unreachable, it raised {exc!r}") from exc
    finally:
        injector.heal()
    kit.call(listener.cleanup, what="listener.cleanup()")
    raise AssertionError("expected listen() to raise a MessagingException with the backend "
                         f"unreachable, it returned {type(listener).__name__}")


# -- send() and send_notification() ---------------------------------------------------------

@pytest.mark.clause("send.cast.returns-after-handoff")
def test_cast_returns_after_handoff(kit: Kit) -> None:
    """A cast returns None while the consumer is busy; cleaning the sender up loses nothing.

    The listener's callback is held on an event, so a cast that waited for
    consumption would hang (the bounded call then fails it).  The sender is
    cleaned up the moment the cast returns: if the message were still only
    in the sender's buffers, it would be lost.
    """
    release = threading.Event()

    def hold(message: Any) -> None:
        kit.history.received(key_of(message.message), "listener")
        release.wait(kit.timing.eventually)

    listener_driver = kit.driver()
    sender = kit.driver()
    target = kit.names.target(server=True)
    sub = kit.listen(listener_driver, target, inbox=Inbox("busy", on_message=hold))
    try:
        send_keyed(kit, sender, target, "occupies-callback")
        sub.inbox.wait_for(1, kit.timing.eventually)
        started = time.monotonic()
        with kit.sending("handed-off"):
            result = kit.send(sender, target, {"method": "m", "args": {"key": "handed-off"}},
                              bound=kit.timing.eventually)
        elapsed = time.monotonic() - started
        kit.call(sender.cleanup, what="sending driver.cleanup() right after the cast")
    finally:
        release.set()
    assert result is None, f"expected a cast to return None, got {result!r}"
    assert elapsed <= kit.timing.slack, (
        f"expected the cast to return promptly (<= {kit.timing.slack:.2f}s) while the "
        f"consumer was busy, it took {elapsed:.3f}s")
    sub.inbox.wait_for(2, kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, f"expected both casts delivered once, got {counts}"


@pytest.mark.clause("notify.send.blocks-until-accepted")
def test_notification_owned_by_backend_before_return(kit: Kit) -> None:
    """A notification sent while no consumer runs survives its sender's immediate cleanup.

    The subscription exists (``listen_for_notifications`` has returned) but
    is not started; the sending driver is cleaned up the moment
    ``send_notification`` returns; only then does the listener, on another
    driver instance, start, and it must get the notification.
    """
    kit.require("notifications")
    listener_driver = kit.driver()
    sender = kit.driver()
    topic = kit.names.topic()
    sub = kit.listen_notifications(listener_driver, [(oslo_messaging.Target(topic=topic),
                                                      "info")], start=False)
    kit.notify(sender, oslo_messaging.Target(topic=f"{topic}.info"), {"payload": "owned"})
    kit.call(sender.cleanup, what="sending driver.cleanup() right after send_notification()")
    sub.start()
    got = sub.inbox.wait_for(1, kit.timing.eventually)
    assert got[0].message == {"payload": "owned"}, (
        f"expected the notification sent before cleanup, got {got[0].message!r}")


# -- cleanup() -----------------------------------------------------------------------------

@pytest.mark.parametrize("style", [
    pytest.param(CALLBACK, marks=pytest.mark.clause("listener.cleanup.blocks"), id=CALLBACK),
    pytest.param(POLL, marks=pytest.mark.clause("poll.cleanup.blocks"), id=POLL),
])
def test_listener_cleanup_blocks(kit: Kit, style: str) -> None:
    """When ``stop()`` and ``cleanup()`` return, the listener's threads are gone at once.

    And it no longer consumes: a new listener on the same shared topic must
    receive every later cast (a leftover consumer would take its share).
    """
    driver = kit.driver(listener_style=style)
    target = kit.names.target()
    # Let the driver start whatever it starts on first use (not recorded in
    # the history: nobody listens on that topic, so the cast is dropped).
    kit.send(driver, oslo_messaging.Target(exchange=target.exchange, topic=kit.names.topic()),
             {"method": "m", "args": {"key": "warm-up"}})
    before = threading.enumerate()
    old = kit.listen(driver, target, inbox=Inbox("old", on_message=record(kit, "old")))
    send_keyed(kit, driver, target, "before-cleanup")
    old.inbox.wait_for(1, kit.timing.eventually)
    # A stop() that hangs is judged by the stop clauses' own scenarios, not here.
    with kit.relying_on(POLL_STOP if style == POLL else "listener.stop.no-callback-after"):
        old.stop()
    old.cleanup()
    left = new_threads(before)
    assert not left, (
        f"expected the listener's threads gone when cleanup() returned, still alive: "
        f"{describe(left)}")
    new = kit.listen(driver, target, inbox=Inbox("new", on_message=record(kit, "new")))
    later = [f"later-{i}" for i in range(4)]
    for key in later:
        send_keyed(kit, driver, target, key)
    new.inbox.wait_for(len(later), kit.timing.eventually)
    stolen = {key: kit.history.receivers(key) for key in later
              if kit.history.receivers(key) != ["new"]}
    assert not stolen, f"expected every later cast at the new listener only, got {stolen}"
    assert not old.inbox.after_close, "the cleaned-up listener still called back"


def _exercise(kit: Kit, driver: Any) -> list[Any]:
    """Listeners, a cast, a call and a notification on ``driver``; returns the subscriptions."""
    target = kit.names.target(server=True)
    answering = Inbox("rpc", on_message=lambda m: m.reply(reply="pong"))
    subs = [kit.listen(driver, target, inbox=answering)]
    kit.send(driver, target, {"method": "cast", "args": {}})
    reply = kit.send(driver, target, {"method": "call", "args": {}}, wait_for_reply=True,
                     timeout=kit.timing.eventually)
    assert reply == "pong", f"expected the call to get 'pong', got {reply!r}"
    if kit.caps.notifications:
        topic = kit.names.topic()
        subs.append(kit.listen_notifications(driver, [(oslo_messaging.Target(topic=topic),
                                                       "info")]))
        kit.notify(driver, oslo_messaging.Target(topic=f"{topic}.info"), {"payload": 1})
        subs[-1].inbox.wait_for(1, kit.timing.eventually)
    answering.wait_for(2, kit.timing.eventually)
    return subs


@pytest.mark.clause("driver.cleanup.blocks")
def test_driver_cleanup_blocks_until_threads_end(kit: Kit) -> None:
    """Right when ``cleanup()`` returns, no thread the driver started is still alive.

    The driver is used the way the public servers use it (listeners, a cast,
    a call with its reply path, a notification), the listeners are stopped
    and cleaned up as ``server.wait()`` does, then the driver is cleaned up.
    """
    before = threading.enumerate()
    driver = kit.driver()
    for sub in _exercise(kit, driver):
        sub.cleanup()
    kit.call(driver.cleanup, what="driver.cleanup()")
    left = new_threads(before)
    assert not left, (
        f"expected every driver thread gone when cleanup() returned, still alive: "
        f"{describe(left)}")


@pytest.mark.clause("driver.cleanup.blocks")
def test_transport_cleanup_blocks_until_threads_end(kit: Kit) -> None:
    """Public API: RPC server and client on one transport, then ``transport.cleanup()``."""
    kit.require("rpc")

    class Echo:
        def echo(self, ctxt: Any, x: Any) -> Any:
            return x

    before = threading.enumerate()
    transport = kit.rpc_transport()
    target = kit.names.target(server=True)
    server = kit.rpc_server(transport, target, [Echo()])
    client = kit.rpc_client(transport, target, timeout=kit.timing.eventually)
    client.cast({}, "echo", x=1)
    assert client.call({}, "echo", x=2) == 2, "expected the call to return 2"
    kit.stop_servers([server])
    kit.call(transport.cleanup, what="transport.cleanup()")
    left = new_threads(before)
    assert not left, (
        f"expected no thread left once transport.cleanup() returned, still alive: "
        f"{describe(left)}")


@pytest.mark.clause("driver.cleanup.releases-resources")
def test_driver_cleanup_releases_resources(kit: Kit) -> None:
    """After cleanup the process could exit and holds no new sockets.

    No new non-daemon thread may be left (it would keep the process alive),
    and no socket opened since the baseline may stay open (a connection left
    to the broker).  The kit has no generic way to list a driver's broker
    connections or reply subscriptions beyond this.
    """
    threads_before = threading.enumerate()
    sockets_before = open_sockets()
    driver = kit.driver()
    for sub in _exercise(kit, driver):
        sub.cleanup()
    kit.call(driver.cleanup, what="driver.cleanup()")
    blocking = [t for t in new_threads(threads_before) if not t.daemon]
    assert not blocking, (
        f"expected no non-daemon thread after cleanup (the process could not exit), "
        f"got {describe(blocking)}")
    sockets_after = open_sockets()
    if sockets_before is not None and sockets_after is not None:
        leaked = sockets_after - sockets_before
        assert not leaked, f"expected no socket left open after cleanup, got {sorted(leaked)}"
