"""Retry and failover: sends while the backend is down, flaky or cut.

Hypothesis: ``retry`` is the number of extra attempts a send may make.
Unlimited (None, -1) means a send made during an outage waits for the backend
and then delivers its message exactly once; a bound means the send gives up
with ``MessageDeliveryFailure`` in bounded time; a publish retried because its
confirmation was lost is still delivered once; and a listener whose
connection is cut resubscribes to everything it listened to.  All of this is
only visible while the backend misbehaves, so every scenario here needs the
adapter's fault injection and is NOT RUN without it.

Delivery is recorded in the kit's history (sends with their outcome,
receipts by key) and judged by ``kit.history.check()``.  "Nothing else
arrives" is established with a barrier instead of a quiet window: a last
send, made after every faulty send has returned, is waited for; a duplicate
made by a retry was published before its send returned, so on one queue it
arrives before the barrier.
"""

from __future__ import annotations

from typing import Any

import oslo_messaging
import pytest

from driver_conformance import faults
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import (
    Pending,
    expect_failure,
    serve,
    subscription_addresses,
)
from driver_conformance.timing import Deadline

#: How long (nominal seconds) a send with unlimited retry must stay blocked in an
#: outage before the backend is healed: long enough for a driver that gives up
#: after a few quick attempts to show it, short enough to keep the suite fast.
OUTAGE_HOLD = 0.25


class Recorder:
    """Records the key of everything received in the history; waits for one key.

    It serves as an RPC endpoint (:meth:`record`) and as a listener's inbox
    (:meth:`inbox`); a listener's calls marked ``answer`` are replied to.
    """

    def __init__(self, kit: Kit) -> None:
        self.kit = kit

    def received(self, key: str, where: str) -> None:
        self.kit.history.received(key, where)

    def record(self, ctxt: Any, key: str) -> str:
        self.received(key, "endpoint")
        return key

    def inbox(self, where: str) -> Inbox:
        def on_message(message: Any) -> None:
            self.received(str(message.message.get("key")), where)
            if message.message.get("answer"):
                message.reply({"key": message.message["key"]})

        return Inbox(where, on_message=on_message)

    def wait_for(self, key: str, timeout: float) -> None:
        self.kit.history.wait_received(key, timeout)


def sending_in_background(kit: Kit, key: str, send: Any, what: str) -> Pending:
    """Run ``send()`` on a thread, recording it in the history under ``key``."""

    def run() -> Any:
        with kit.sending(key):
            return send()

    return Pending(run, what)


def assert_clean(kit: Kit, what: str) -> None:
    """Judge the history once every send that returned has arrived, or ``eventually`` passed."""
    kit.history.wait_owed(kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, f"{what}: expected no lost or duplicated message, got {counts}"


def barrier(kit: Kit, recorder: Recorder, send: Any) -> None:
    """One last send after every faulty one; once it is received, the history is judged."""
    with kit.sending("barrier"):
        send()
    recorder.wait_for("barrier", kit.timing.eventually)


def outlast_outage(kit: Kit, recorder: Recorder, send: Any, what: str) -> None:
    """``send(key)`` started during an outage must still be waiting when it heals, then
    deliver exactly once: an unlimited retry neither gives up early nor duplicates."""
    injector = kit.faults(faults.OUTAGE)
    injector.start_outage()
    try:
        pending = sending_in_background(kit, "during-outage", lambda: send("during-outage"),
                                        f"{what} during an outage")
        gave_up = pending.done.wait(kit.timing.s(OUTAGE_HOLD))
    finally:
        injector.heal()
    assert not gave_up, (
        f"expected {what} to wait out the outage, it ended with "
        f"{pending.error or pending.value!r}")
    pending.result(kit.timing.eventually)
    barrier(kit, recorder, lambda: send("barrier"))
    assert_clean(kit, f"{what} across an outage")


# ---------------------------------------------------------------------------------------
# send(): unlimited and bounded retry
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("send.retry.unlimited")
@pytest.mark.parametrize("retry", [None, -1], ids=["None", "-1"])
def test_unlimited_retry_outlasts_outage(kit: Kit, retry: int | None) -> None:
    """A cast with unlimited retry made during an outage waits, then delivers once.

    The send must still be blocked when the backend comes back (a driver that
    gives up early fails there), then return without error; the listener must
    receive the message exactly once.
    """
    recorder = Recorder(kit)
    target = serve(kit, inbox=recorder.inbox("listener"))[2]
    sender = kit.driver()
    outlast_outage(kit, recorder,
                   lambda key: kit.send(sender, target, {"key": key}, retry=retry),
                   f"cast(retry={retry})")


@pytest.mark.clause("send.retry.bounded-delivery-failure", "send.errors.messaging-exception")
@pytest.mark.parametrize("kind", ["cast", "call"])
@pytest.mark.parametrize("retry", [0, 2])
def test_bounded_retry_gives_up(kit: Kit, retry: int, kind: str) -> None:
    """With the backend down, a bounded retry ends in MessageDeliveryFailure, in bounded time.

    The call's ``timeout`` is longer than the bound, so a driver that waits
    for the timeout instead of giving up raises MessagingTimeout and fails.
    Where the injector can count publishes, the attempts are counted too:
    ``retry=N`` allows one attempt and at most N retries, so a driver that
    retries more often than asked (and gives up only later) fails as well.
    """
    _, _, target = serve(kit)
    sender = kit.driver()
    injector = kit.faults(faults.OUTAGE)
    injector.start_outage()
    try:
        before = injector.publish_attempts()
        extra = {"wait_for_reply": True, "timeout": kit.timing.call_bound} if kind == "call" \
            else {}
        pending = Pending(lambda: kit.send(sender, target, {"q": kind}, retry=retry, **extra),
                          f"{kind}(retry={retry}) during an outage")
        expect_failure(kit, pending, oslo_messaging.MessageDeliveryFailure,
                       kit.timing.eventually, clause="send.retry.bounded-delivery-failure",
                       family="send.errors.messaging-exception")
        after = injector.publish_attempts()
    finally:
        injector.heal()
    if before is not None and after is not None:
        attempts = after - before
        with kit.clause("send.retry.bounded-delivery-failure"):
            assert 1 <= attempts <= retry + 1, (
                f"{kind}(retry={retry}): expected 1 to {retry + 1} publish attempts during "
                f"the outage, the backend saw {attempts}")


@pytest.mark.clause("send.retry.unlimited", "send.retry.bounded-delivery-failure")
def test_public_casts_during_outage(kit: Kit) -> None:
    """RPCClient casts during an outage: retry=0 fails, retry=None delivers once on heal.

    Through the public API the driver's exceptions reach the application
    unchanged, and a retried cast must still run the endpoint exactly once;
    a call after the heal is the barrier.
    """

    target = kit.names.target(server=True)
    kit.rpc_server(kit.rpc_transport(), target, [Recorder(kit)])
    client = kit.rpc_client(kit.rpc_transport(), target, timeout=kit.timing.eventually)
    injector = kit.faults(faults.OUTAGE)
    injector.start_outage()
    try:
        bounded = sending_in_background(
            kit, "bounded",
            lambda: kit.call(client.prepare(retry=0).cast, {}, "record", key="bounded",
                             what="RPCClient.cast(retry=0)"),
            "RPCClient.cast(retry=0) during an outage")
        expect_failure(kit, bounded, oslo_messaging.MessageDeliveryFailure,
                       kit.timing.eventually, clause="send.retry.bounded-delivery-failure")
        unlimited = sending_in_background(
            kit, "unlimited",
            lambda: kit.call(client.prepare(retry=None).cast, {}, "record", key="unlimited",
                             what="RPCClient.cast(retry=None)"),
            "RPCClient.cast(retry=None) during an outage")
        gave_up = unlimited.done.wait(kit.timing.s(OUTAGE_HOLD))
    finally:
        injector.heal()
    with kit.clause("send.retry.unlimited"):
        assert not gave_up, (f"expected RPCClient.cast(retry=None) to wait out the outage, "
                             f"it ended with {unlimited.error or unlimited.value!r}")
        unlimited.result(kit.timing.eventually)
        with kit.sending("barrier"):
            kit.call(client.call, {}, "record", key="barrier", what="RPCClient.call() barrier")
        assert_clean(kit, "RPCClient casts across an outage")


# ---------------------------------------------------------------------------------------
# no duplicates
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("send.retry.no-duplicates")
def test_lost_confirmations_do_not_duplicate(kit: Kit) -> None:
    """Publishes that reached the backend but were never confirmed are not delivered twice.

    The driver cannot know the backend has the message, so it retries; the
    retry must not become a second delivery.  Casts and a call are both sent
    (a duplicated call request would run the server method twice).
    """
    recorder = Recorder(kit)
    target = serve(kit, inbox=recorder.inbox("listener"))[2]
    sender = kit.driver()
    injector = kit.faults(faults.LOST_CONFIRM)
    injector.lose_confirmations(3)
    for n in range(4):
        with kit.sending(f"cast-{n}"):
            kit.send(sender, target, {"key": f"cast-{n}"}, retry=None)
    injector.lose_confirmations(1)
    with kit.sending("call"):
        got = kit.send(sender, target, {"key": "call", "answer": True}, retry=None,
                       wait_for_reply=True, timeout=kit.timing.eventually)
    assert got == {"key": "call"}, f"expected the call's reply {{'key': 'call'}}, got {got!r}"
    injector.heal()
    barrier(kit, recorder, lambda: kit.send(sender, target, {"key": "barrier"}))
    assert_clean(kit, "sends with lost confirmations")


@pytest.mark.clause("send.retry.no-duplicates")
def test_public_casts_with_lost_confirmations(kit: Kit) -> None:
    """RPCClient casts whose confirmations are lost run the endpoint once each."""

    target = kit.names.target(server=True)
    kit.rpc_server(kit.rpc_transport(), target, [Recorder(kit)])
    client = kit.rpc_client(kit.rpc_transport(), target, timeout=kit.timing.eventually)
    injector = kit.faults(faults.LOST_CONFIRM)
    injector.lose_confirmations(2)
    for n in range(3):
        with kit.sending(f"cast-{n}"):
            kit.call(client.cast, {}, "record", key=f"cast-{n}", what="RPCClient.cast()")
    injector.heal()
    with kit.sending("barrier"):
        kit.call(client.call, {}, "record", key="barrier", what="RPCClient.call() barrier")
    assert_clean(kit, "RPCClient casts with lost confirmations")


# ---------------------------------------------------------------------------------------
# send_notification()
# ---------------------------------------------------------------------------------------


def _notification_setup(kit: Kit) -> tuple[Any, Recorder, Any]:
    """A sender driver, the recorder of a listener on (topic, info), and the send target."""
    listen_target = kit.names.target()
    recorder = Recorder(kit)
    kit.listen_notifications(kit.driver(), [(listen_target, "info")],
                             inbox=recorder.inbox("notification listener"))
    send_target = oslo_messaging.Target(exchange=listen_target.exchange,
                                        topic=f"{listen_target.topic}.info")
    return kit.driver(), recorder, send_target


@pytest.mark.clause("notify.retry.honoured", "send.errors.messaging-exception")
@pytest.mark.parametrize("retry", [0, 2])
def test_notify_bounded_retry_gives_up(kit: Kit, retry: int) -> None:
    """send_notification with a bounded retry fails in bounded time while the backend is down.

    retry=0 may raise any MessagingException; retry=2 must say
    MessageDeliveryFailure ("failed after the asked retry").  Driver level
    only: the Notifier swallows these errors.
    """
    sender, _, target = _notification_setup(kit)
    injector = kit.faults(faults.OUTAGE)
    injector.start_outage()
    expected = oslo_messaging.MessagingException if retry == 0 \
        else oslo_messaging.MessageDeliveryFailure
    try:
        pending = Pending(lambda: kit.notify(sender, target, {"key": "n"}, retry=retry),
                          f"send_notification(retry={retry}) during an outage")
        expect_failure(kit, pending, expected, kit.timing.eventually,
                       clause="notify.retry.honoured", family="send.errors.messaging-exception")
    finally:
        injector.heal()


@pytest.mark.clause("notify.retry.honoured")
def test_notify_unlimited_retry_outlasts_outage(kit: Kit) -> None:
    """A notification sent with retry=-1 (the Notifier's default) in an outage arrives once.

    As for casts: still blocked when the backend heals, then delivered once.
    """
    sender, recorder, target = _notification_setup(kit)
    outlast_outage(kit, recorder,
                   lambda key: kit.notify(sender, target, {"key": key}, retry=-1),
                   "send_notification(retry=-1)")


@pytest.mark.clause("notify.retry.honoured")
def test_notify_lost_confirmations_do_not_duplicate(kit: Kit) -> None:
    """Notifications whose publish confirmation is lost are delivered once each."""
    sender, recorder, target = _notification_setup(kit)
    injector = kit.faults(faults.LOST_CONFIRM)
    injector.lose_confirmations(2)
    for n in range(3):
        with kit.sending(f"n-{n}"):
            kit.notify(sender, target, {"key": f"n-{n}"}, retry=-1)
    injector.heal()
    barrier(kit, recorder, lambda: kit.notify(sender, target, {"key": "barrier"}))
    assert_clean(kit, "notifications with lost confirmations")


# ---------------------------------------------------------------------------------------
# failover
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("listen.failover.restores-subscriptions")
def test_listener_resubscribes_after_cut(kit: Kit) -> None:
    """After every connection is cut, the listener gets topic, server and fanout sends again.

    A listener subscribes to three addresses; a driver that restores only the
    first (or only its shared topic queue) loses the others silently.  One cast
    before the cut proves the subscriptions were live.
    """
    server = kit.driver()
    listen_target = kit.names.target(server=True)
    recorder = Recorder(kit)
    kit.listen(server, listen_target, inbox=recorder.inbox("listener"))
    addresses = subscription_addresses(listen_target)
    sender = kit.driver()
    with kit.sending("before-cut"):
        kit.send(sender, addresses["topic"], {"key": "before-cut"})
    recorder.wait_for("before-cut", kit.timing.eventually)
    injector = kit.faults(faults.CUT)
    injector.cut_connections()
    for name, address in addresses.items():
        with kit.sending(name):
            kit.send(sender, address, {"key": name}, retry=None)
    deadline = Deadline(kit.timing.eventually)
    missing = []
    for name in addresses:
        try:
            recorder.wait_for(name, deadline.remaining())
        except AssertionError:
            missing.append(name)
    assert not missing, ("expected the listener to receive sends to every address it listened "
                         f"on after the cut, nothing arrived for {missing}")
    assert_clean(kit, "listener across a connection cut")


@pytest.mark.clause("listen.failover.restores-subscriptions")
def test_public_server_answers_after_cut(kit: Kit) -> None:
    """An RPCServer keeps answering calls, and fanout casts, after its connections are cut.

    The server's listener is the public API's (a started RPCServer), so this
    also covers the listener wrapping and executor the application really uses.
    """
    target = kit.names.target(server=True)
    recorder = Recorder(kit)
    kit.rpc_server(kit.rpc_transport(), target, [recorder])
    client = kit.rpc_client(kit.rpc_transport(), target, timeout=kit.timing.eventually)
    with kit.sending("before"):
        kit.call(client.call, {}, "record", key="before", what="RPCClient.call() before")
    kit.faults(faults.CUT).cut_connections()
    with kit.sending("fanout"):
        kit.call(client.prepare(fanout=True, retry=None).cast, {}, "record", key="fanout",
                 what="RPCClient.cast(fanout=True)")
    with kit.sending("after"):
        got = kit.call(client.prepare(retry=None).call, {}, "record", key="after",
                       what="RPCClient.call() after the cut")
    assert got == "after", f"expected the call after the cut to return 'after', got {got!r}"
    recorder.wait_for("fanout", kit.timing.eventually)
    assert_clean(kit, "RPCServer across a connection cut")
