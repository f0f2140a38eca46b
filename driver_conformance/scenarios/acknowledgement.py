"""Acknowledge and requeue: they take effect, they never raise, failures are logged.

Hypotheses checked here:

* an acknowledged message is settled with the backend: a new listener on the
  same targets (and pool) never sees it again, also when stop and cleanup
  follow at once, and also when the acknowledge comes between the listener's
  ``stop()`` and ``cleanup()`` (as the public servers do it);
* a requeued message comes back, equal, to the same listener or the next;
* neither method raises: twice, after stop and cleanup, with the backend
  broken; and a failure is logged at WARNING or above where the kit can
  break the backend.

Notifications are the vehicle, because only notification listeners ever
requeue and the public API acknowledges them after processing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import oslo_messaging
import pytest

from driver_conformance import faults, outcomes
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import Collected, notification_targets

METHODS = [
    pytest.param("acknowledge", marks=pytest.mark.clause("incoming.acknowledge.no-raise"),
                 id="acknowledge"),
    pytest.param("requeue", marks=pytest.mark.clause("incoming.requeue.no-raise"),
                 id="requeue"),
]
LOGGED = [
    pytest.param("acknowledge", marks=[pytest.mark.clause("incoming.acknowledge.log-on-failure"),
                                       pytest.mark.clause("incoming.acknowledge.no-raise")],
                 id="acknowledge"),
    pytest.param("requeue", marks=[pytest.mark.clause("incoming.requeue.log-on-failure"),
                                   pytest.mark.clause("incoming.requeue.no-raise")],
                 id="requeue"),
]
FAULTS = [faults.OUTAGE, faults.CUT]


def settle(kit: Kit, message: Any, method: str, when: str, *, clause: str | None = None
           ) -> None:
    """``message.<method>()`` bounded; an exception fails the scenario naming when it came
    (charged to ``clause`` when the scenario judges several)."""
    what = f"IncomingMessage.{method}() {when}"
    with kit.clause(clause) if clause else contextlib.nullcontext():
        try:
            kit.call(getattr(message, method), what=what)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"expected {what} not to raise, it raised {exc!r}") from exc


# -- acknowledge takes effect ----------------------------------------------------------

@pytest.mark.clause("incoming.acknowledge.notifies-backend")
def test_acknowledged_not_redelivered(kit: Kit) -> None:
    """Acknowledge, stop and clean up at once, listen again: the message does not return.

    A shared listener and (where pools are supported) a pool listener each
    get their copy; both are acknowledged and torn down with no wait, then
    replaced.  An acknowledgement that never reached the backend (or was
    dropped by cleanup) shows as a redelivery to the replacements within one
    quiet window.
    """
    kit.require("notifications")
    driver = kit.driver()
    send_target, pairs = notification_targets(kit)
    pools: list[str | None] = [None] + ([kit.names.pool()] if kit.caps.pools else [])
    first = {pool: kit.listen_notifications(driver, pairs, pool=pool,
                                            inbox=Inbox(f"first {pool}", ack=False))
             for pool in pools}
    kit.notify(driver, send_target, {"payload": "acked"})
    for pool, sub in first.items():
        message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
        settle(kit, message, "acknowledge", f"on the {pool or 'shared'} listener")
        sub.cleanup()
    again = {pool: kit.listen_notifications(driver, pairs, pool=pool,
                                            inbox=Inbox(f"again {pool}"))
             for pool in pools}
    list(again.values())[-1].inbox.quiet(kit.timing.quiet)
    redelivered = {str(pool): sub.inbox.bodies() for pool, sub in again.items()
                   if sub.inbox.count()}
    assert not redelivered, (
        f"expected no redelivery of the acknowledged notification, got {redelivered} "
        "(pool None is the shared listener)")


@pytest.mark.clause("incoming.methods.after-listener-stop")
def test_acknowledge_and_reply_between_stop_and_cleanup(kit: Kit) -> None:
    """The public servers stop the listener, finish in-flight work, then clean up.

    So a reply and an acknowledge made after ``stop()`` and before
    ``cleanup()`` must still take effect: the caller gets its reply, and a new
    listener on the notification targets does not get the notification again.
    """
    kit.require("rpc")
    kit.require("notifications")
    driver = kit.driver()
    rpc_target = kit.names.target(server=True)
    send_target, pairs = notification_targets(kit)
    rpc_sub = kit.listen(driver, rpc_target)
    note_sub = kit.listen_notifications(driver, pairs, inbox=Inbox("note", ack=False))
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            outcome["reply"] = kit.send(driver, rpc_target, {"method": "m", "args": {}},
                                        wait_for_reply=True, timeout=kit.timing.eventually)
        except Exception as exc:  # reported below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=call, name="conformance-caller", daemon=True).start()
    kit.notify(driver, send_target, {"payload": "in flight"})
    request = rpc_sub.inbox.wait_for(1, kit.timing.eventually)[0]
    note = note_sub.inbox.wait_for(1, kit.timing.eventually)[0]
    rpc_sub.stop()
    note_sub.stop()
    settle(kit, note, "acknowledge", "after listener.stop()")
    kit.call(request.reply, reply="answer", what="reply() after listener.stop()")
    rpc_sub.cleanup()
    note_sub.cleanup()
    assert done.wait(kit.timing.eventually), "expected the caller to get its reply; still waiting"
    assert outcome.get("reply") == "answer", (
        f"expected the reply 'answer' made after stop(), the caller got {outcome!r}")
    again = kit.listen_notifications(driver, pairs)
    got = again.inbox.quiet(kit.timing.quiet)
    assert not got, (
        "expected the notification acknowledged after stop() not to be redelivered, got "
        f"{[m.message for m in got]}")


# -- requeue takes effect --------------------------------------------------------------

@pytest.mark.clause("incoming.requeue.redelivers")
@pytest.mark.parametrize("then", ["keep-listening", "cleanup-at-once"])
def test_requeue_redelivers(kit: Kit, then: str) -> None:
    """A requeued notification comes back equal: to the same listener, or to the next one.

    ``cleanup-at-once`` tears the listener down right after ``requeue()``
    returns: the requeue must have been processed by then, not lost with the
    listener.  oslo's listeners run a queued requeue on their polling thread, so
    the redelivery may reach the same listener before its ``stop()`` returns; that
    is the requeue taking effect, and what the driver then does with a delivery
    nobody settled before ``cleanup()`` is not this clause's business.
    """
    kit.require("requeue")
    kit.require("notifications")
    driver = kit.driver()
    send_target, pairs = notification_targets(kit)
    sub = kit.listen_notifications(driver, pairs, inbox=Inbox("requeue", ack=False))
    ctxt, body = {"who": "requeue"}, {"payload": {"n": 1, "s": "ü"}}
    kit.notify(driver, send_target, body, ctxt=ctxt)
    first = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    settle(kit, first, "requeue", "on a delivered notification")
    if then == "cleanup-at-once":
        sub.cleanup()
        if early := sub.inbox.messages[1:]:
            again = early[0]
        else:
            sub = kit.listen_notifications(driver, pairs,
                                           inbox=Inbox("after requeue", ack=False))
            again = sub.inbox.wait_for(1, kit.timing.eventually)[0]
            settle(kit, again, "acknowledge", "on the redelivered notification")
    else:
        again = sub.inbox.wait_for(2, kit.timing.eventually)[1]
        settle(kit, again, "acknowledge", "on the redelivered notification")
    assert (again.ctxt, again.message) == (first.ctxt, first.message), (
        f"expected the requeued notification again (ctxt={first.ctxt!r}, "
        f"message={first.message!r}), got ctxt={again.ctxt!r} message={again.message!r}")


@pytest.mark.clause("incoming.requeue.redelivers")
def test_public_listener_requeue(kit: Kit) -> None:
    """Public API: an endpoint returning REQUEUE once sees the notification a second time.

    With ``allow_requeue=True`` the listener requeues the first delivery and
    acknowledges the second.  That the acknowledged one does not come back is
    left to the driver-level scenario, which needs the quiet window anyway.
    """
    kit.require("requeue")
    kit.require("notifications")
    topic = kit.names.topic()
    calls = Collected()

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> Any:
            if calls.add(payload) == 1:
                return oslo_messaging.NotificationResult.REQUEUE
            return oslo_messaging.NotificationResult.HANDLED

    transport = kit.notification_transport()
    kit.notification_listener(transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
                              allow_requeue=True)
    kit.notifier(transport, topics=[topic]).info({}, "conformance.requeue", {"n": 1})
    seen = calls.wait_for(2, kit.timing.eventually)
    assert seen[:2] == [{"n": 1}, {"n": 1}], f"expected the payload twice, got {seen!r}"


# -- never raise -----------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_settle_never_raises(kit: Kit, method: str) -> None:
    """Twice on one message, then after ``stop()`` and after ``cleanup()``: nothing raises.

    Every driver is called this way (the NotificationServer class defaults to
    ``allow_requeue=True`` and never checks ``require_features``), and both an
    RPC cast and a notification are settled.
    """
    driver = kit.driver()
    rpc_target = kit.names.target(server=True)
    subs = [kit.listen(driver, rpc_target, inbox=Inbox("casts", ack=False))]
    if kit.caps.notifications:
        send_target, pairs = notification_targets(kit)
        subs.append(kit.listen_notifications(driver, pairs, inbox=Inbox("notes", ack=False)))
        for i in range(2):
            kit.notify(driver, send_target, {"payload": i})
    for i in range(2):
        kit.send(driver, rpc_target, {"method": "m", "args": {"i": i}})
    # The second message is awaited only after the first is settled: under a
    # prefetch limit of one (rabbit_qos_prefetch_count = 1) the backend rightly
    # holds it back until then.
    held = []
    for sub in subs:
        first = sub.inbox.wait_for(1, kit.timing.eventually)[0]
        settle(kit, first, method, "once")
        settle(kit, first, method, "a second time")
        held.append((first, sub.inbox.wait_for(2, kit.timing.eventually)[1]))
    for sub in subs:
        sub.stop()
    for _, second in held:
        settle(kit, second, method, "after listener.stop()")
    for sub in subs:
        sub.cleanup()
    for first, second in held:
        settle(kit, second, method, "again after listener.cleanup()")
        settle(kit, first, method, "on an already-settled message after listener.cleanup()")


def _broken_settle(kit: Kit, method: str, fault: str,
                   caplog: pytest.LogCaptureFixture | None = None,
                   stale: bool = False, clause: str | None = None) -> str:
    """Deliver a notification, break the backend, settle it; returns the call's thread name.

    With ``stale`` the settle waits until the message has been delivered
    again after the fault: the first delivery is then certainly unsettleable
    (its consumer is gone and the message belongs to a new one), whereas a
    backend may legitimately honour a settle that merely comes late.
    """
    kit.require("notifications")
    injector = kit.faults(fault)
    driver = kit.driver()
    send_target, pairs = notification_targets(kit)
    sub = kit.listen_notifications(driver, pairs, inbox=Inbox("broken", ack=False))
    kit.notify(driver, send_target, {"payload": "broken"})
    with kit.relying_on("notify-listen.address.topic-priority"):
        message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    if fault == faults.OUTAGE:
        injector.start_outage()
    else:
        injector.cut_connections()
    when = f"with the backend broken ({fault})"
    if stale:
        when = f"on a delivery made stale by a {fault}"
        try:
            sub.inbox.wait_for(2, kit.timing.eventually)
        except AssertionError:
            outcomes.not_run(f"no redelivery followed the {fault}, so no settle is certain "
                             "to fail")
    if caplog is not None:
        caplog.clear()
    try:
        settle(kit, message, method, when, clause=clause)
    finally:
        injector.heal()
    return f"conformance-call:IncomingMessage.{method}() {when}"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("method", METHODS)
def test_settle_with_backend_broken_never_raises(kit: Kit, method: str, fault: str) -> None:
    """The backend fails under a delivered message; settling it still raises nothing."""
    _broken_settle(kit, method, fault)


@pytest.mark.parametrize("method", LOGGED)
def test_settle_failure_is_logged(kit: Kit, method: str,
                                  caplog: pytest.LogCaptureFixture) -> None:
    """A settle that cannot take effect leaves a WARNING-or-higher log record.

    The connections are cut and the message redelivered before the first
    delivery is settled, so the settle must fail on any backend.  Records
    count when logged by the thread that made the call, or when they name the
    operation: a driver logs reconnection trouble from its own threads after
    a fault, and that alone must not pass the scenario.
    """
    if method == "requeue":
        kit.require("requeue")
    caplog.set_level(logging.WARNING)
    thread_name = _broken_settle(kit, method, faults.CUT, caplog, stale=True,
                                 clause=f"incoming.{method}.no-raise")
    word = "ack" if method == "acknowledge" else "requeue"
    records = [r for r in caplog.records if r.levelno >= logging.WARNING
               and (r.threadName == thread_name or word in r.getMessage().lower())]
    others = [f"{r.levelname} {r.getMessage()[:80]}" for r in caplog.records][:5]
    with kit.clause(f"incoming.{method}.log-on-failure"):
        assert records, (
            f"expected a WARNING-or-higher log record describing the failed {method}() of a "
            f"stale delivery, got none (other records: {others})")
