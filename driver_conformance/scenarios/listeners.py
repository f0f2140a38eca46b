"""Listeners and what they deliver: IncomingMessage content, callbacks, batches, polling.

Hypotheses checked here:

* what a listener hands on is a list of ``IncomingMessage`` objects carrying
  independent copies of exactly what was sent, with the base attributes set;
* a callback listener honours ``batch_size`` (never more, and full batches
  when messages are waiting) and ``batch_timeout`` (a partial batch is
  flushed about ``batch_timeout`` after it started), and never calls back
  once ``stop()`` has returned;
* a poll-style listener's ``poll()`` honours ``timeout``, ``batch_size`` and
  ``batch_timeout`` (timer started by the first message), unblocks on a
  message and on ``stop()`` from other threads, and never raises.

The listener and poll scenarios talk through a :class:`~._support.Channel`: casts to
a server's own address when the driver claims rpc, else notifications to a topic of
their own, because both profiles hold these clauses.

Poll scenarios reach the ``PollStyleListener`` itself: the one ``listen()``
returns, or the one inside the ``PollStyleListenerAdapter`` it returns.  The
adapter is never started, so the scenario is the only poller; it stops and
cleans up the poller itself, relying on the stop and cleanup clauses
(``_support.polling``): a ``stop()`` that hangs fails ``poll.stop.*`` in its
own scenarios and leaves the other poll clauses not judged, never failed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import oslo_messaging
import pytest
from oslo_messaging._drivers import base as driver_base

from driver_conformance import faults
from driver_conformance.adapter import CALLBACK, POLL
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._listening import POLL_CLEANUP, POLL_STOP, Channel, polling
from driver_conformance.scenarios._support import (
    STYLES,
    Collected,
    TypeRecordingInbox,
    background,
    key_of,
    notification_targets,
    record,
)

# -- callback listeners ----------------------------------------------------------------

@pytest.mark.clause("listener.start.callback-with-list")
@pytest.mark.parametrize("style", STYLES)
def test_callback_gets_list_of_incoming(kit: Kit, style: str) -> None:
    """The callback's argument is a non-empty list of IncomingMessage carrying the cast."""
    channel = Channel(kit, kit.driver(listener_style=style))
    inbox = TypeRecordingInbox("callback")
    channel.listen(inbox=inbox)
    channel.send("k1")
    got = inbox.wait_for(1, kit.timing.eventually)
    assert inbox.arg_types and all(issubclass(t, list) for t in inbox.arg_types), (
        f"expected the callback to get lists, got {[t.__name__ for t in inbox.arg_types]}")
    assert all(inbox.batches), f"expected non-empty lists, got batches {inbox.batches!r}"
    assert all(isinstance(m, driver_base.IncomingMessage) for m in got), (
        f"expected IncomingMessage items, got {[type(m).__name__ for m in got]}")
    assert key_of(got[0].message) == "k1", (
        f"expected the sent message (key k1), got {got[0].message!r}")


@pytest.mark.clause("listener.batch.at-most-batch-size")
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_batches_at_most_batch_size(kit: Kit, style: str, batch_size: int) -> None:
    """``3 * batch_size`` casts sent back to back arrive in lists of at most ``batch_size``.

    ``batch_timeout`` is long compared with the burst, so with ``batch_size``
    3 a listener that batches at all delivers a full list of 3: a driver that
    ignores ``batch_size`` (one message per call, or everything at once) fails.
    """
    channel = Channel(kit, kit.driver(listener_style=style))
    inbox = Inbox("batches", on_message=record(kit, "listener"))
    channel.listen(batch_size=batch_size, batch_timeout=kit.timing.s(1.0), inbox=inbox)
    total = 3 * batch_size
    for i in range(total):
        channel.send(f"k{i}")
    inbox.wait_for(total, kit.timing.eventually)
    sizes = [len(b) for b in inbox.batches]
    assert max(sizes) <= batch_size, f"expected lists of at most {batch_size}, got {sizes}"
    assert batch_size in sizes, (
        f"expected at least one full list of {batch_size} from a burst of {total}, got {sizes}")
    counts = kit.history.check()
    assert counts.clean, f"expected every message exactly once, got {counts}"


@pytest.mark.clause("listener.batch.at-most-batch-size")
def test_batch_notification_listener_batches(kit: Kit) -> None:
    """The public batch notification listener sees the driver's batches as they are."""
    kit.require("notifications")
    topic = kit.names.topic()
    collector = Collected("item(s) at the endpoint")

    class Endpoint:
        def info(self, messages: list[Any]) -> None:
            collector.add_batch(messages)

    transport = kit.notification_transport()
    kit.notification_listener(transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
                              batch_size=3, batch_timeout=kit.timing.s(1.0))
    notifier = kit.notifier(transport, topics=[topic])
    for i in range(6):
        notifier.info({}, "conformance.batch", {"i": i})
    collector.wait_for(6, kit.timing.eventually)
    sizes = [len(b) for b in collector.batches]
    assert max(sizes) <= 3 and 3 in sizes, (
        f"expected endpoint batches of at most 3 including a full one, got {sizes}")
    payloads = sorted(m["payload"]["i"] for m in collector.items)
    assert payloads == list(range(6)), f"expected payloads 0..5 once each, got {payloads}"


@pytest.mark.clause("listener.batch.timeout-flushes-partial")
@pytest.mark.parametrize(("style", "count"), [(CALLBACK, 1), (POLL, 2)])
def test_batch_timeout_flushes_partial_batch(kit: Kit, style: str, count: int) -> None:
    """With ``batch_size`` 5 and fewer messages, the partial batch comes at ``batch_timeout``.

    Measured from the first send's return: not much earlier (the listener
    waited for more) and not much later (the timer fired).
    """
    nominal = kit.timing.short
    channel = Channel(kit, kit.driver(listener_style=style))
    sub = channel.listen(batch_size=5, batch_timeout=nominal)
    channel.send("k0")
    sent_at = time.monotonic()
    for i in range(1, count):
        channel.send(f"k{i}")
    sub.inbox.wait_for(count, kit.timing.eventually)
    elapsed = sub.inbox.arrivals[0] - sent_at
    sizes = [len(b) for b in sub.inbox.batches]
    assert sizes == [count], f"expected one partial list of {count}, got lists {sizes}"
    assert kit.timing.lower(nominal) <= elapsed <= kit.timing.upper(nominal), (
        f"expected the partial batch about {nominal:.2f}s after the first send "
        f"(between {kit.timing.lower(nominal):.2f}s and {kit.timing.upper(nominal):.2f}s), "
        f"it came after {elapsed:.3f}s")


@pytest.mark.clause("listener.stop.no-callback-after")
@pytest.mark.parametrize("style", STYLES)
def test_no_callback_after_stop(kit: Kit, style: str) -> None:
    """Once ``stop()`` returns, messages still sent to the listener's own address never
    reach it.

    Nobody else listens on the address (a :class:`Channel`), so nobody else may
    take them: a listener that keeps consuming shows them in the inbox.
    """
    channel = Channel(kit, kit.driver(listener_style=style))
    sub = channel.listen()
    channel.send("before")
    sub.inbox.wait_for(1, kit.timing.eventually)
    sub.stop()
    after = [f"after-{i}" for i in range(3)]
    for key in after:
        channel.send(key, record=False)
    sub.inbox.quiet(kit.timing.quiet)
    late = [key_of(m.message) for m in sub.inbox.after_close]
    late += [key_of(m.message) for m in sub.inbox.messages if key_of(m.message) in after]
    assert not late, f"expected no callback after stop() returned, got messages {late}"


# -- poll-style listeners --------------------------------------------------------------

@pytest.mark.clause("poll.returns.up-to-batch-size")
def test_poll_returns_up_to_batch_size(kit: Kit) -> None:
    """Five casts polled two at a time: lists of at most 2, every cast exactly once.

    Polling stops at five messages, so a duplicate shows only if it comes
    before the last original; no quiet window is spent on later ones.
    """
    with polling(kit, clause="poll.returns.up-to-batch-size") as (channel, poller):
        for i in range(5):
            channel.send(f"k{i}")
        got: list[Any] = []
        sizes = []
        deadline = time.monotonic() + kit.timing.eventually
        while len(got) < 5 and time.monotonic() < deadline:
            batch = poller.poll(timeout=kit.timing.s(1.0), batch_size=2)
            assert isinstance(batch, list), f"expected poll() to return a list, got {batch!r}"
            sizes.append(len(batch))
            got.extend(batch)
        assert all(isinstance(m, driver_base.IncomingMessage) for m in got), (
            f"expected IncomingMessage items, got {[type(m).__name__ for m in got]}")
        for message in got:
            message.acknowledge()
            kit.history.received(key_of(message.message), "poller")
        assert max(sizes, default=0) <= 2, f"expected lists of at most 2, got sizes {sizes}"
        counts = kit.history.check()
        assert counts.clean, f"expected 5 casts exactly once, got {counts} (sizes {sizes})"


@pytest.mark.clause("poll.timeout.returns-empty")
def test_poll_timeout_returns_empty(kit: Kit) -> None:
    """With nothing sent, ``poll(timeout)`` returns [] after about ``timeout``."""
    nominal = kit.timing.short
    with polling(kit, clause="poll.timeout.returns-empty") as (_, poller):
        started = time.monotonic()
        got = poller.poll(timeout=nominal)
        elapsed = time.monotonic() - started
        assert got == [], f"expected [] with nothing sent, got {got!r}"
        assert kit.timing.lower(nominal) <= elapsed <= kit.timing.upper(nominal), (
            f"expected poll(timeout={nominal:.2f}) to return after "
            f"{kit.timing.lower(nominal):.2f}-{kit.timing.upper(nominal):.2f}s, it returned "
            f"after {elapsed:.3f}s")


@pytest.mark.clause("poll.delivery.unblocks-on-message")
def test_poll_unblocks_on_message(kit: Kit) -> None:
    """A poll blocked without timeout returns the cast soon after it is sent."""
    with polling(kit, clause="poll.delivery.unblocks-on-message") as (channel, poller):
        pending = poller.poll_in_background(timeout=None)
        channel.send("k0")
        sent_at = time.monotonic()
        got = pending.result(kit.timing.eventually)
        latency = pending.since(sent_at)
        assert [key_of(m.message) for m in got] == ["k0"], f"expected the cast k0, got {got!r}"
        assert latency <= kit.timing.slack, (
            f"expected poll() to return within {kit.timing.slack:.2f}s of the send, "
            f"it took {latency:.3f}s")
        got[0].acknowledge()


@pytest.mark.clause("poll.batch-size.waits-for-full-batch")
def test_poll_waits_for_full_batch(kit: Kit) -> None:
    """``batch_size`` 3: three waiting casts come at once; one alone waits for the timer."""
    nominal = kit.timing.short
    with polling(kit, clause="poll.batch-size.waits-for-full-batch") as (channel, poller):
        for i in range(3):
            channel.send(f"full-{i}")
        started = time.monotonic()
        full = poller.poll(timeout=kit.timing.eventually, batch_size=3, batch_timeout=nominal)
        quick = time.monotonic() - started
        assert len(full) == 3, f"expected a full batch of 3, got {len(full)} message(s)"
        assert quick < kit.timing.lower(nominal), (
            f"expected the full batch well before batch_timeout ({nominal:.2f}s), "
            f"it took {quick:.3f}s")
        channel.send("alone")
        started = time.monotonic()
        partial = poller.poll(timeout=kit.timing.eventually, batch_size=3, batch_timeout=nominal)
        waited = time.monotonic() - started
        for message in full + partial:
            message.acknowledge()
        assert [key_of(m.message) for m in partial] == ["alone"], (
            f"expected the single cast after batch_timeout, got {partial!r}")
        assert kit.timing.lower(nominal) <= waited <= kit.timing.upper(nominal), (
            f"expected a partial batch after batch_timeout {nominal:.2f}s "
            f"({kit.timing.lower(nominal):.2f}-{kit.timing.upper(nominal):.2f}s), got it "
            f"after {waited:.3f}s")


@pytest.mark.clause("poll.batch-timeout.from-first-message")
def test_poll_batch_timer_starts_at_first_message(kit: Kit) -> None:
    """The batch timer runs from the first message, not from ``poll()`` entry.

    The poll starts with nothing queued; the first cast is sent ``delay``
    later (waiting on the poll's own completion event, which must not fire:
    nothing has been sent).  With ``delay < batch_timeout`` a timer started at
    entry returns ``batch_timeout - delay`` after the send, below the lower
    bound; a timer started at the first message returns ``batch_timeout``
    after it.
    """
    delay, nominal = kit.timing.s(0.2), kit.timing.s(0.5)
    with polling(kit, clause="poll.batch-timeout.from-first-message") as (channel, poller):
        pending = poller.poll_in_background(timeout=kit.timing.eventually, batch_size=5,
                                            batch_timeout=nominal)
        returned_early = pending.done.wait(delay)
        assert not returned_early, (
            f"expected poll() to stay blocked with nothing sent, it returned after "
            f"{(pending.finished or 0) - pending.started:.3f}s with {pending.value!r}")
        channel.send("first")
        sent_at = time.monotonic()
        got = pending.result(kit.timing.eventually)
        elapsed = pending.since(sent_at)
        for message in got:
            message.acknowledge()
        assert [key_of(m.message) for m in got] == ["first"], (
            f"expected the one cast, got {got!r}")
        assert elapsed >= kit.timing.lower(nominal), (
            f"poll() returned {elapsed:.3f}s after the first message, expected about "
            f"{nominal:.2f}s: the batch timer looks started at poll() entry (as "
            "batch_poll_helper does with timeout = batch_timeout or timeout), not at the "
            "first message")
        assert elapsed <= kit.timing.upper(nominal), (
            f"expected poll() about {nominal:.2f}s after the first message "
            f"(at most {kit.timing.upper(nominal):.2f}s), it took {elapsed:.3f}s")


@pytest.mark.clause("poll.errors.no-raise")
def test_poll_after_stop_and_cleanup_does_not_raise(kit: Kit) -> None:
    """A poll after ``stop()`` and after ``cleanup()`` returns a list and raises nothing."""
    with polling(kit) as (_, poller):
        with kit.relying_on(POLL_STOP):
            poller.stop_while_polling()
        with kit.clause("poll.errors.no-raise"):
            after_stop = poller.poll(timeout=kit.timing.s(0.1))
            assert isinstance(after_stop, list), (
                f"expected a list after stop(), got {after_stop!r}")
        with kit.relying_on(POLL_CLEANUP):
            poller.cleanup()
        with kit.clause("poll.errors.no-raise"):
            after_cleanup = poller.poll(timeout=kit.timing.s(0.1))
            assert isinstance(after_cleanup, list), (
                f"expected a list after cleanup(), got {after_cleanup!r}")


@pytest.mark.clause("poll.errors.no-raise")
@pytest.mark.parametrize("fault", [faults.OUTAGE, faults.CUT])
def test_poll_with_backend_broken_does_not_raise(kit: Kit, fault: str) -> None:
    """A poll while the backend is unreachable or just cut returns a list, raising nothing."""
    injector = kit.faults(fault)
    with polling(kit, clause="poll.errors.no-raise") as (_, poller):
        if fault == faults.OUTAGE:
            injector.start_outage()
        else:
            injector.cut_connections()
        got = poller.poll(timeout=kit.timing.s(0.1))
        injector.heal()
        assert isinstance(got, list), f"expected a list with the backend broken, got {got!r}"


@pytest.mark.clause("poll.stop.unblocks")
def test_stop_unblocks_poll_with_messages_in_hand(kit: Kit) -> None:
    """``stop()`` from another thread ends a poll waiting for 10, returning what it has.

    The poll has no timeout and a batch timer far longer than the scenario
    (a ``batch_timeout`` of None is read by some drivers as "wait for the full
    batch" and by others as "return what is there", so it is not used), so
    only ``stop()`` can end it promptly; a short wait on its completion event
    (which must not fire) lets the two casts reach it first.
    """
    with polling(kit, clause="poll.stop.unblocks") as (channel, poller):
        pending = poller.poll_in_background(timeout=None, batch_size=10,
                                            batch_timeout=kit.timing.eventually * 1.5)
        channel.send("k0")
        channel.send("k1")
        with kit.relying_on("poll.batch-size.waits-for-full-batch"):
            assert not pending.done.wait(kit.timing.s(0.15)), (
                f"expected poll(batch_size=10) to keep waiting with 2 messages, it returned "
                f"{pending.value!r}")
        poller.stop()
        stopped_at = time.monotonic()
        got = pending.result(kit.timing.eventually)
        latency = pending.since(stopped_at)
        for message in got:
            message.acknowledge()
        # "whatever messages are currently available": both, or one under a
        # prefetch limit of one (rabbit_qos_prefetch_count = 1); never none.
        keys = [key_of(m.message) for m in got]
        assert keys in (["k0"], ["k1"]) or sorted(keys) == ["k0", "k1"], (
            f"expected stop() to make poll() return the messages it had (k0 and k1, or "
            f"one of them under a prefetch limit of one), got {got!r}")
        assert latency <= kit.timing.slack, (
            f"expected poll() to return within {kit.timing.slack:.2f}s of stop(), "
            f"took {latency:.3f}s")


@pytest.mark.clause("poll.stop.thread-safe", "poll.stop.unblocks")
def test_stop_from_many_threads(kit: Kit) -> None:
    """Several threads call ``stop()`` at once while another polls: no raise, no deadlock."""
    with polling(kit) as (_, poller):
        pending = poller.poll_in_background(timeout=None)
        assert not pending.done.wait(kit.timing.s(0.15)), (
            f"expected poll() to block with nothing sent, it returned {pending.value!r}")
        barrier = threading.Barrier(4)

        def stop() -> None:
            barrier.wait(kit.timing.eventually)
            poller.poller.stop()

        stoppers = [background(kit, stop, what=f"stop() from thread {i}") for i in range(4)]
        with kit.clause("poll.stop.thread-safe"):
            for stopper in stoppers:
                stopper.result(kit.timing.eventually)
        poller.stopped = True
        stopped_at = time.monotonic()
        with kit.clause("poll.stop.unblocks"):
            got = pending.result(kit.timing.eventually)
            latency = pending.since(stopped_at)
            assert got == [], f"expected [] from a poll stopped with nothing sent, got {got!r}"
            assert latency <= kit.timing.slack, (
                f"expected poll() to return within {kit.timing.slack:.2f}s of the stops, "
                f"took {latency:.3f}s")


# -- what listen() returns -------------------------------------------------------------

@pytest.mark.clause("listen.returns.either-listener-type")
@pytest.mark.parametrize("style", STYLES)
def test_listen_returns_a_listener_type(kit: Kit, style: str,
                                        request: pytest.FixtureRequest) -> None:
    """Informational: which listener type ``listen()`` returns (both are allowed)."""
    kit.require("rpc")
    driver = kit.driver(listener_style=style)
    listener = kit.call(driver.listen, kit.names.target(server=True), 1, None,
                        what="driver.listen()")
    # Never started, so only cleaned up: stop() on an un-started
    # PollStyleListenerAdapter joins a thread that never ran.
    kit.call(listener.cleanup, what="listener.cleanup()")
    kind = ("PollStyleListener" if isinstance(listener, driver_base.PollStyleListener)
            else "Listener" if isinstance(listener, driver_base.Listener) else None)
    request.node.user_properties.append(("listener_type", f"{type(listener).__name__} ({kind})"))
    assert kind is not None, (
        f"expected a Listener or PollStyleListener, got {type(listener).__name__}")


@pytest.mark.clause("listen.returns.listener-with-start")
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", ["listen", "listen_for_notifications"])
def test_listen_returns_startable_listener(kit: Kit, style: str, kind: str) -> None:
    """The public servers call ``start()``, ``stop()``, ``cleanup()``: they must be there.

    ``start()`` must return promptly (it is called synchronously by
    ``MessageHandlingServer.start``) and the callback must then get messages.
    """
    driver = kit.driver(listener_style=style)
    if kind == "listen":
        target = kit.names.target(server=True)
        sub = kit.listen(driver, target, start=False)
    else:
        kit.require("notifications")
        send_target, pairs = notification_targets(kit)
        sub = kit.listen_notifications(driver, pairs, start=False)
    listener = sub.listener
    assert not isinstance(listener, driver_base.PollStyleListener), (
        f"{kind}() returned a bare {type(listener).__name__}: the public RPC and "
        "notification servers call start() on it and fail; expected a Listener "
        "(e.g. a PollStyleListenerAdapter)")
    missing = [m for m in ("start", "stop", "cleanup") if not callable(getattr(listener, m, None))]
    assert not missing, f"expected start/stop/cleanup on the listener, missing {missing}"
    kit.call(listener.start, sub.inbox, what="listener.start()", bound=kit.timing.s(1.0))
    sub.started = True  # so that the kit stops it, bounded, before cleaning it up
    if kind == "listen":
        kit.send(driver, target, {"method": "m", "args": {"key": "k0"}})
    else:
        kit.notify(driver, send_target, {"payload": "k0"})
    sub.inbox.wait_for(1, kit.timing.eventually)
