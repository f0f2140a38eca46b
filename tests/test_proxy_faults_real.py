"""The proxy's AMQP faults on the real broker: oslo.messaging's rabbit driver through it.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest); skipped otherwise.  Each
test runs inside the rabbit adapter's own backend (the proxies in a child
process, cleanup by the run's prefix), so nothing of it stays on the shared
broker.

The assertions are about the *fault*: a lost confirmation's publish reaches
the broker, the sender never gets its ``basic.ack`` (so it either fails or
publishes again), the connection is cut only after the broker answered.
What the driver does about it is printed as ``observed:`` lines (run with
``-rP`` to see them) and is the evidence behind the findings on
``send.retry.no-duplicates``; it is not asserted, so that a driver release
that behaves better does not fail the kit's own tests.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proxysupport import TIMING

from driver_conformance.bounded import call_bounded
from driver_conformance.brokers.rabbit import amqp_unreachable_reason

BROKER = ("127.0.0.1", 5672)

pytestmark = pytest.mark.skipif(
    amqp_unreachable_reason(*BROKER, timeout=2) is not None,
    reason="no RabbitMQ on 127.0.0.1:5672")


class Deliveries:
    """What the listeners got, by listener; waits on a condition, never sleeps."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.by_listener: dict[int, list[Any]] = {}

    def callback(self, index: int, reply: bool = False) -> Callable[[list[Any]], None]:
        def on_incoming(messages: list[Any]) -> None:
            for message in messages:
                message.acknowledge()
                if reply:
                    message.reply({"by": index})
                with self._changed:
                    self.by_listener.setdefault(index, []).append(message.message["n"])
                    self._changed.notify_all()
        return on_incoming

    def copies(self, n: Any) -> int:
        with self._changed:
            return sum(got.count(n) for got in self.by_listener.values())

    def wait_copies(self, n: Any, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.copies(n) >= count, timeout)


class Lane:
    """A server and a client rabbit driver, built by the adapter, behind its proxies."""

    def __init__(self, adapter: Any, backend: Any, prefix: str, janitor: Any) -> None:
        import oslo_messaging

        self.adapter, self.backend, self.prefix = adapter, backend, prefix
        self.janitor = janitor
        self.faults = backend.faults
        self.drivers: list[Any] = []
        self.listeners: list[Any] = []
        self.topic = f"{prefix}-t"
        self.target = oslo_messaging.Target(topic=self.topic)
        self.client = self.driver()

    def driver(self) -> Any:
        from driver_conformance.configuration import base_conf
        from driver_conformance.plugins.rabbit import RABBIT_OVERRIDES

        conf = base_conf()
        for name, value in RABBIT_OVERRIDES.items():
            conf.set_override(name, value, group="oslo_messaging_rabbit")
        driver = self.janitor.watch(self.adapter.make_driver(
            conf, self.backend.url, default_exchange=f"{self.prefix}-default",
            allowed_remote_exmods=[]))
        self.drivers.append(driver)
        return driver

    def serve(self, deliveries: Deliveries, count: int, reply: bool = False) -> None:
        """``count`` servers on the lane's topic: competing consumers of one queue."""
        import oslo_messaging

        for i in range(count):
            target = oslo_messaging.Target(topic=self.topic, server=f"s{i}")
            listener = call_bounded(self.driver().listen, target, 1, None,
                                    bound=TIMING.call_bound, what="listen()")
            listener.start(deliveries.callback(i, reply))
            self.listeners.append(listener)

    def send(self, n: Any, **kwargs: Any) -> Any:
        return call_bounded(self.client.send, self.target, {}, {"n": n},
                            bound=TIMING.call_bound, what=f"send({n!r})", **kwargs)

    def close(self) -> None:
        self.faults.heal()
        for listener in self.listeners:
            for action in (listener.stop, listener.cleanup):
                with contextlib.suppress(Exception):
                    call_bounded(action, bound=TIMING.call_bound, what="listener teardown")
        for driver in self.drivers:
            with contextlib.suppress(Exception):
                call_bounded(driver.cleanup, bound=TIMING.call_bound, what="driver cleanup")


@pytest.fixture
def lane() -> Iterator[Lane]:
    from driver_conformance.plugins.rabbit import RabbitAdapter

    prefix = f"dc-p{uuid.uuid4().hex[:8]}-main"
    adapter = RabbitAdapter()
    janitor = adapter.janitor(adapter.default_url, prefix)
    with adapter.backend(adapter.default_url, prefix) as backend:
        lane = Lane(adapter, backend, prefix, janitor)
        try:
            yield lane
        finally:
            lane.close()
    janitor.clean()
    assert not janitor.result.problems, janitor.result.summary()


def warm(lane: Lane, deliveries: Deliveries, servers: int) -> None:
    """One message per server first: every consumer is subscribed before the fault."""
    for i in range(servers):
        lane.send(f"warm-{i}")
        assert deliveries.wait_copies(f"warm-{i}", 1, TIMING.eventually)


def outcome(fn: Callable[[], Any]) -> tuple[str, BaseException | None]:
    try:
        return f"returned {fn()!r}", None
    except Exception as exc:  # the driver's reaction is observed, not asserted
        return f"raised {type(exc).__name__}: {exc}", exc


def driver_stack(thread: threading.Thread) -> str:
    """``thread``'s stack from the driver's send() down (the frames that hold it)."""
    frames = traceback.extract_stack(sys._current_frames()[thread.ident])
    first = next((i for i, f in enumerate(frames) if "oslo_messaging" in f.filename), 0)
    return "".join(traceback.format_list(frames[first:]))


def test_the_rabbit_driver_publishes_in_confirm_mode(lane: Lane) -> None:
    """Every publish of the driver is on a channel in confirm mode: there is an ack to lose."""
    deliveries = Deliveries()
    lane.serve(deliveries, 1)
    warm(lane, deliveries, 1)
    stats = lane.faults.stats
    assert stats["publishes"] >= 1
    assert stats["confirmed_publishes"] == stats["publishes"], stats
    assert lane.faults.publish_attempts() == stats["publishes"]


@pytest.mark.parametrize("retry", [None, 0])
def test_a_lost_confirmation_reaches_the_broker_and_not_the_sender(lane: Lane,
                                                                    retry: int | None) -> None:
    deliveries = Deliveries()
    lane.serve(deliveries, 1)
    warm(lane, deliveries, 1)
    before = lane.faults.publish_attempts()
    lane.faults.lose_confirmations(1)
    said, error = outcome(lambda: lane.send("lost", retry=retry))
    assert deliveries.wait_copies("lost", 1, TIMING.eventually), (
        "the publish whose confirmation was lost must have reached the broker")
    attempts = lane.faults.publish_attempts() - before
    stats = lane.faults.stats
    assert (stats["confirms_lost"], stats["answers_missed"]) == (1, 0), (
        f"the sender's connection must be cut when the broker's ack arrives: {stats}")
    assert error is not None or attempts >= 2, (
        f"the sender got no ack, so it must fail or publish again; it {said} after "
        f"{attempts} publish(es)")
    # One quiet window for a late second copy (a bounded wait that is expected to fail).
    deliveries.wait_copies("lost", 2, TIMING.quiet)
    print(f"observed: send(retry={retry}) {said}; {attempts} publish(es) through the proxy; "
          f"the listener got {deliveries.copies('lost')} copy(ies)")


@pytest.mark.parametrize("kind", ["cast", "call"])
def test_a_retried_publish_reaches_a_competing_consumer(lane: Lane, kind: str) -> None:
    """Two servers share the topic queue; the retry after a lost ack may go to the other one.

    The reproduction of the no-duplicates finding: the rabbit driver drops a
    second copy only if the *same* listener sees it (its message-id cache),
    so with competing consumers the retried publish is delivered again.
    """
    deliveries = Deliveries()
    lane.serve(deliveries, 2, reply=kind == "call")
    warm(lane, deliveries, 2)
    before = lane.faults.publish_attempts()
    lane.faults.lose_confirmations(1)
    extra = {"wait_for_reply": True, "timeout": TIMING.eventually} if kind == "call" else {}
    said, _ = outcome(lambda: lane.send("lost", retry=None, **extra))
    assert deliveries.wait_copies("lost", 1, TIMING.eventually)
    deliveries.wait_copies("lost", 2, TIMING.quiet)
    attempts = lane.faults.publish_attempts() - before
    copies = deliveries.copies("lost")
    assert 1 <= copies <= attempts, (copies, attempts)
    by_server = {i: got.count("lost") for i, got in deliveries.by_listener.items()}
    print(f"observed: {kind}(retry=None) {said}; {attempts} publish(es) through the proxy "
          f"(replies included); copies by server: {by_server}")


def test_a_frozen_link_holds_a_call_in_the_publish_retry_loop(lane: Lane) -> None:
    """Where ``send(wait_for_reply=True, timeout=1)`` waits while the link is frozen.

    Evidence for the silent-partition finding: the caller's stack, taken
    after the call's timeout has long passed.  Asserted: the heal ends it.
    """
    deliveries = Deliveries()
    lane.serve(deliveries, 1, reply=True)
    assert lane.send("warm", wait_for_reply=True, timeout=TIMING.eventually) == {"by": 0}
    lane.faults.freeze()
    done = threading.Event()
    result: dict[str, str] = {}

    def call() -> None:
        result["said"] = outcome(lambda: lane.client.send(
            lane.target, {}, {"n": "frozen"}, wait_for_reply=True, timeout=1))[0]
        done.set()

    caller = threading.Thread(target=call, name="frozen-call", daemon=True)
    caller.start()
    ended_in_time = done.wait(TIMING.s(4.0))
    stack = "" if ended_in_time else driver_stack(caller)
    lane.faults.heal()
    assert done.wait(TIMING.call_bound), "the heal must end the call"
    print(f"observed: call(timeout=1) on a frozen link "
          f"{'ended' if ended_in_time else 'still blocked'} after {TIMING.s(4.0):.1f}s; "
          f"after the heal it {result['said']}\n{stack}")
