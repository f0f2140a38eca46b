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
  exit and a new listener gets every later message, and ``cleanup()`` of one
  driver leaves every other driver on the same URL working;
* a ``listen()`` that cannot subscribe raises a ``MessagingException``;
* what the public servers and transports can call again, or out of order,
  returns at once: a second ``cleanup()`` of a driver or a listener, ``stop()``
  of a listener never started or of a poller with no ``poll()`` running, and a
  ``poll()`` entered after ``stop()``.

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
from oslo_messaging._drivers import base as driver_base

from driver_conformance import compat, faults
from driver_conformance.adapter import CALLBACK, POLL
from driver_conformance.bounded import DriverHung
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._listening import POLL_CLEANUP, POLL_STOP, Channel, polling
from driver_conformance.scenarios._support import key_of, record, send_keyed


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


@pytest.mark.clause("listen.blocks.until-subscribed")
@pytest.mark.parametrize("style", [CALLBACK, POLL])
def test_fanout_sent_before_start_is_delivered(kit: Kit, style: str) -> None:
    """A fanout sent by another driver right after ``listen()`` returns, before ``start()``.

    The fanout subscription is one of those ``listen()`` makes ("This includes
    messages sent using a fanout pattern"), so it too exists when ``listen()``
    returns.  A driver that binds its fanout queue only in ``start()`` (or
    consumes the fanout exchange without a queue of its own) never delivers a
    fanout sent in between: it arrives nowhere, or only to listeners already
    consuming.
    """
    driver = kit.driver(listener_style=style)
    sender = kit.driver()
    target = kit.names.target(server=True)
    sub = kit.listen(driver, target, start=False,
                     inbox=Inbox("listener", on_message=record(kit, "listener")))
    send_keyed(kit, sender, oslo_messaging.Target(exchange=target.exchange, topic=target.topic,
                                                  fanout=True), "fanout")
    sub.start()
    sub.inbox.gather(1, kit.timing.eventually)
    sub.inbox.quiet(kit.timing.quiet)
    counts = kit.history.check()
    assert counts.clean, (
        f"expected the fanout sent before start() to be delivered once, got {counts}")


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


@pytest.mark.clause("driver.cleanup.repeatable")
def test_driver_cleanup_twice(kit: Kit) -> None:
    """A second ``cleanup()`` of a used, cleaned-up driver returns at once, raising nothing.

    ``Transport.cleanup()`` forwards every call; a service's stop and exit paths
    may both make one.  A driver fails by raising on the second call (a pool or
    reply queue already gone, a connection closed again) or by blocking in it.
    """
    driver = kit.driver()
    for sub in _exercise(kit, driver):
        sub.cleanup()
    # A first cleanup() that hangs or raises is judged by driver.cleanup.blocks.
    with kit.relying_on("driver.cleanup.blocks"):
        kit.call(driver.cleanup, what="driver.cleanup()")
    _promptly(kit, driver.cleanup, "a second driver.cleanup()")


@pytest.mark.clause("driver.cleanup.repeatable")
def test_transport_cleanup_twice(kit: Kit) -> None:
    """Public API: ``transport.cleanup()`` twice after an RPC server and client used it."""
    kit.require("rpc")

    class Echo:
        def echo(self, ctxt: Any, x: Any) -> Any:
            return x

    transport = kit.rpc_transport()
    target = kit.names.target(server=True)
    server = kit.rpc_server(transport, target, [Echo()])
    client = kit.rpc_client(transport, target, timeout=kit.timing.eventually)
    assert client.call({}, "echo", x=2) == 2, "expected the call to return 2"
    kit.stop_servers([server])
    with kit.relying_on("driver.cleanup.blocks"):
        kit.call(transport.cleanup, what="transport.cleanup()")
    _promptly(kit, transport.cleanup, "a second transport.cleanup()")


@pytest.mark.clause("driver.cleanup.own-resources-only")
def test_cleanup_leaves_another_driver_on_the_url_alone(kit: Kit) -> None:
    """Cleaning up one driver leaves another driver on the same URL working.

    A process holds several drivers on one URL (a service's RPC and
    notification transports; two services in one test process).  A driver
    that keeps its connections or queues per URL or per process, and tears
    that shared state down in ``cleanup()``, takes the other drivers'
    subscriptions, queued messages or sending path with it.  The survivor has
    a started listener and one made but not yet started, with a message
    queued for it; the other driver is used (listener, sends, a call where
    RPC is claimed) and cleaned up; then the survivor sends to both of its
    addresses and starts the waiting listener.
    """
    survivor = kit.driver()
    # A message queued for a listener not yet started is kept only if listen()
    # subscribes: judged by listen.blocks.until-subscribed, checked here first.
    control = Channel(kit, survivor)
    control_sub = control.listen(start=False,
                                 inbox=Inbox("control", on_message=record(kit, "control")))
    control.send("control")
    control_sub.start()
    with kit.relying_on("listen.blocks.until-subscribed"):
        control_sub.inbox.wait_for(1, kit.timing.eventually)
    live, held = Channel(kit, survivor), Channel(kit, survivor)
    live_sub = live.listen(inbox=Inbox("live", on_message=record(kit, "live")))
    held_sub = held.listen(start=False, inbox=Inbox("held", on_message=record(kit, "held")))
    live.send("live-before")
    held.send("held-queued")
    live_sub.inbox.wait_for(1, kit.timing.eventually)

    other = kit.driver()
    mine = Channel(kit, other)
    other_sub = mine.listen(inbox=Inbox("other", on_message=record(kit, "other")))
    mine.send("other-own")
    other_sub.inbox.wait_for(1, kit.timing.eventually)
    if kit.caps.rpc:
        answering = Inbox("rpc", on_message=lambda m: m.reply(reply="pong"))
        target = kit.names.target(server=True)
        kit.listen(other, target, inbox=answering)
        reply = kit.send(other, target, {"method": "call", "args": {}}, wait_for_reply=True,
                         timeout=kit.timing.eventually)
        assert reply == "pong", f"expected the other driver's call to get 'pong', got {reply!r}"
    # A cleanup() that hangs or raises is judged by driver.cleanup.blocks.
    with kit.relying_on("driver.cleanup.blocks"):
        kit.call(other.cleanup, what="the other driver's cleanup()")

    try:
        live.send("live-after")
        held.send("held-after")
    except Exception as exc:
        raise AssertionError(
            f"expected the surviving driver to send after another driver on its URL was "
            f"cleaned up, send raised {exc!r}") from exc
    held_sub.start()
    live_sub.inbox.gather(2, kit.timing.eventually)
    held_sub.inbox.gather(2, kit.timing.eventually)
    got = {"live": sorted(key_of(b) for b in live_sub.inbox.bodies()),
           "held": sorted(key_of(b) for b in held_sub.inbox.bodies())}
    want = {"live": ["live-after", "live-before"], "held": ["held-after", "held-queued"]}
    assert got == want, (
        f"after another driver on the same URL was cleaned up ({live.path}), expected the "
        f"surviving driver's listeners to get {want}, got {got}")


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


# -- stop() and cleanup() where the public servers can reach them again -------------------

def _promptly(kit: Kit, fn: Any, what: str) -> float:
    """``fn()`` bounded by the eventually ceiling; how long it took, failing if it raised or
    took longer than the slack (a call that returns at once has nothing to wait for)."""
    started = time.monotonic()
    try:
        kit.call(fn, what=what, bound=kit.timing.eventually)
    except DriverHung:
        raise
    except Exception as exc:
        raise AssertionError(f"expected {what} to return, it raised {exc!r}") from exc
    elapsed = time.monotonic() - started
    assert elapsed <= kit.timing.slack, (
        f"expected {what} to return at once (<= {kit.timing.slack:.2f}s), it took "
        f"{elapsed:.3f}s")
    return elapsed


@pytest.mark.clause("listener.stop.never-started")
@pytest.mark.parametrize("style", [CALLBACK, POLL])
def test_stop_of_a_never_started_listener_returns(kit: Kit, style: str) -> None:
    """``stop()`` of a listener ``listen()`` returned and nobody started returns at once.

    MessageHandlingServer keeps the listener when ``listener.start()`` raises and
    its ``stop()`` then stops it.  A driver fails by raising (oslo's
    PollStyleListenerAdapter joins a thread it never started) or by blocking (a
    stop that waits for its consumer thread to notice).
    """
    driver = kit.driver(listener_style=style)
    sub = kit.listen(driver, kit.names.target(server=True), start=False)
    sub.stopped = True  # the scenario's own stop() is the judgment; teardown cleans up
    _promptly(kit, sub.listener.stop, "stop() of a listener never started")


@pytest.mark.clause("listener.cleanup.repeatable")
@pytest.mark.parametrize("style", [CALLBACK, POLL])
def test_listener_cleanup_twice(kit: Kit, style: str) -> None:
    """A second ``cleanup()`` of a stopped, cleaned-up listener returns at once, raising nothing.

    A restarted server whose ``listen()`` fails stops and cleans its old
    listener up again.  A driver fails by raising on the second call (a closed
    connection closed again, a thread joined twice) or by blocking in it.
    """
    driver = kit.driver(listener_style=style)
    target = kit.names.target()
    sub = kit.listen(driver, target, inbox=Inbox("twice", on_message=record(kit, "twice")))
    send_keyed(kit, driver, target, "before-cleanup")
    sub.inbox.wait_for(1, kit.timing.eventually)
    # A first stop() or cleanup() that hangs or raises is judged by their own clauses.
    with kit.relying_on(POLL_STOP if style == POLL else "listener.stop.no-callback-after"):
        sub.stop()
    with kit.relying_on(POLL_CLEANUP if style == POLL else "listener.cleanup.blocks"):
        sub.cleanup()
    _promptly(kit, sub.listener.cleanup, "a second listener.cleanup()")


@pytest.mark.clause("poll.stop.returns-without-poll")
@pytest.mark.parametrize("before", ["never-polled", "after-a-poll"])
def test_poll_stop_without_a_poll_returns(kit: Kit, before: str) -> None:
    """``stop()`` of a poller with no ``poll()`` in progress returns at once.

    The poller is stopped from the scenario's own thread, never polled or
    after a ``poll(timeout)`` that returned [], as a poll-style caller (poll,
    handle, stop) or the adapter of a never-started listener does.  A driver
    fails by waiting in ``stop()`` for a ``poll()`` to notice it (rabbit's
    AMQPListener waits on an event only poll() sets).
    """
    with polling(kit) as (_, poller):
        if before == "after-a-poll":
            with kit.relying_on("poll.timeout.returns-empty"):
                got = poller.poll(timeout=kit.timing.short)
                assert got == [], f"expected [] from a poll with nothing sent, got {got!r}"
        poller.stopped = True  # judged here; the poller's release() then only cleans up
        _promptly(kit, poller.poller.stop, "PollStyleListener.stop() with no poll() running")


@pytest.mark.clause("poll.stop.later-poll-returns")
def test_poll_after_stop_returns_at_once(kit: Kit) -> None:
    """A ``poll()`` entered after ``stop()`` returns at once, without waiting for its timeout.

    A poll in progress is stopped first (so the stop itself is one the
    driver must handle, ``poll.stop.unblocks``); then a poll with no timeout,
    as PollStyleListenerAdapter's drain loop makes, and one with a timeout far
    longer than the bound.  A driver fails by waiting for a message that will
    not come: the adapter's ``stop()``, and so the server's, never returns.
    """
    with polling(kit) as (_, poller):
        pending = poller.poll_in_background(timeout=None)
        # The wait lets the poll begin before stop(): a poll entered after it is the
        # case judged below, not the stop of a poll in progress.
        with kit.relying_on("poll.timeout.returns-empty"):
            assert not pending.done.wait(kit.timing.s(0.15)), (
                f"expected poll() to block with nothing sent, it returned {pending.value!r}")
        with kit.relying_on(POLL_STOP):
            poller.stop()
            pending.result(kit.timing.eventually)
        for timeout in (None, kit.timing.eventually * 2):
            got: list[Any] = []
            _promptly(kit, lambda t=timeout, into=got: into.extend(poller.poller.poll(timeout=t)),
                      f"poll(timeout={timeout}) after stop()")
            assert all(isinstance(m, driver_base.IncomingMessage) for m in got), (
                f"expected a list of IncomingMessage after stop(), got {got!r}")
