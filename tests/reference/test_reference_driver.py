"""Driver-level behaviour of ``ReferenceDriver`` (listeners, polling, copying, cleanup)."""

from __future__ import annotations

import threading
import time
import uuid

import oslo_messaging
import pytest
from refsupport import EVENTUALLY, QUIET, SCALE, Inbox, joined

from driver_conformance.reference import PollAdapter, ReferencePollListener


def target(**kwargs) -> oslo_messaging.Target:
    kwargs.setdefault("topic", f"t-{uuid.uuid4().hex[:8]}")
    return oslo_messaging.Target(**kwargs)


def payloads(incoming) -> list:
    return [m.message["n"] for m in incoming]


def poller(driver, tgt, batch_size=1, batch_timeout=None) -> ReferencePollListener:
    adapter = driver.listen(tgt, batch_size, batch_timeout)
    assert isinstance(adapter, PollAdapter)
    return adapter.poll_listener


def test_transport_url_loads_the_driver(conf, url) -> None:
    transport = oslo_messaging.get_rpc_transport(conf, url=url)
    try:
        assert type(transport._driver).__name__ == "ReferenceDriver"
    finally:
        transport.cleanup()


def test_virtual_hosts_are_isolated(make_driver, conf) -> None:
    driver = make_driver()
    other = oslo_messaging.TransportURL.parse(conf, f"reference:///{uuid.uuid4().hex}")
    from driver_conformance.reference import ReferenceDriver, drop_broker

    stranger = ReferenceDriver(conf, other, default_exchange="reference-tests")
    try:
        tgt = target(server="s")
        inbox = Inbox()
        listener = driver.listen(tgt, 1, None)
        listener.start(inbox.put)
        stranger.send(tgt, {}, {"n": "elsewhere"})
        driver.send(tgt, {}, {"n": "here"})
        assert payloads(inbox.get()) == ["here"]
        inbox.assert_quiet()
    finally:
        stranger.cleanup()
        drop_broker(other)


def test_send_right_after_listen_is_delivered_after_start(make_driver) -> None:
    server, client = make_driver(), make_driver()
    tgt = target(server="s")
    listener = server.listen(tgt, 1, None)
    client.send(target(topic=tgt.topic), {}, {"n": 1})
    client.send(tgt, {}, {"n": 2})
    client.send(target(topic=tgt.topic, fanout=True), {}, {"n": 3})
    inbox = Inbox()
    listener.start(inbox.put)
    got = sorted(n for batch in inbox.take(3) for n in payloads(batch))
    assert got == [1, 2, 3]


def test_messages_are_copied(make_driver) -> None:
    driver = make_driver()
    tgt = target(server="s")
    inbox = Inbox()
    listener = driver.listen(tgt, 1, None)
    listener.start(inbox.put)
    message = {"n": [1, 2]}
    driver.send(tgt, {}, message)
    message["n"].append(3)
    (incoming,) = inbox.get()
    assert incoming.message == {"n": [1, 2]}
    with pytest.raises(ValueError):  # what jsonutils (and so rabbit) raises
        driver.send(tgt, {}, {"n": object()})


def test_reply_at_most_once_and_bare_exception(make_driver) -> None:
    driver = make_driver(exmods=[])
    tgt = target(server="s")
    inbox = Inbox()
    listener = driver.listen(tgt, 1, None)
    listener.start(inbox.put)
    results = Inbox()

    def call() -> None:
        try:
            results.put(driver.send(tgt, {}, {"n": 1}, wait_for_reply=True, timeout=EVENTUALLY))
        except Exception as exc:
            results.put(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    (incoming,) = inbox.get()
    incoming.reply(failure=KeyError("missing"))
    incoming.reply("second reply, ignored")
    joined(caller)
    error = results.get()
    assert isinstance(error, KeyError)
    assert "missing" in str(error)


def test_callback_listener_batches_from_first_message(make_driver) -> None:
    driver = make_driver()
    tgt = target(server="s")
    batches = Inbox()
    listener = driver.listen(tgt, 3, 0.3 * SCALE)
    listener.start(lambda incoming: batches.put((time.monotonic(), payloads(incoming))))
    started = time.monotonic()
    for n in range(4):
        driver.send(tgt, {}, {"n": n})
    assert batches.get()[1] == [0, 1, 2]
    when, batch = batches.get()
    assert batch == [3]
    assert when - started >= 0.25 * SCALE


def test_stop_waits_for_the_callback_and_returns_unhandled(make_driver, broker) -> None:
    driver = make_driver()
    tgt = target(server="s")
    entered, release = threading.Event(), threading.Event()
    calls = Inbox()

    def callback(incoming) -> None:
        calls.put(payloads(incoming))
        entered.set()
        release.wait(EVENTUALLY)

    listener = driver.listen(tgt, 1, None)
    listener.start(callback)
    driver.send(tgt, {}, {"n": 1})
    assert entered.wait(EVENTUALLY)
    driver.send(tgt, {}, {"n": 2})
    stopper = threading.Thread(target=listener.stop, daemon=True)
    stopper.start()
    stopper.join(QUIET)
    assert stopper.is_alive(), "stop() must wait for the callback in progress"
    release.set()
    stopper.join(EVENTUALLY)
    assert not stopper.is_alive()
    assert calls.drain() == [[1]]
    assert broker.depth(("server", "reference-tests", tgt.topic, "s")) == 1
    listener.cleanup()


def test_stop_from_inside_the_callback(make_driver) -> None:
    driver = make_driver()
    tgt = target(server="s")
    calls = Inbox()
    listener = driver.listen(tgt, 1, None)

    def callback(incoming) -> None:
        calls.put(payloads(incoming))
        listener.stop()

    listener.start(callback)
    driver.send(tgt, {}, {"n": 1})
    driver.send(tgt, {}, {"n": 2})
    assert calls.get() == [1]
    calls.assert_quiet()
    listener.cleanup()


@pytest.mark.parametrize("query", ["", "?listener=poll"])
def test_balance_blocked_listeners_get_one_each(make_driver, query) -> None:
    driver = make_driver(query)
    tgt = target()
    release = threading.Event()
    inbox = Inbox()
    listeners = []
    for i in range(3):
        listener = driver.listen(target(topic=tgt.topic, server=f"s{i}"), 1, None)

        def callback(incoming, name=f"s{i}") -> None:
            inbox.put(name)
            release.wait(EVENTUALLY)

        listener.start(callback)
        listeners.append(listener)
    try:
        for n in range(3):
            driver.send(tgt, {}, {"n": n})
        assert sorted(inbox.take(3)) == ["s0", "s1", "s2"]
    finally:
        release.set()


def test_poll_batches_time_from_first_message(make_driver) -> None:
    driver = make_driver("?listener=poll")
    tgt = target(server="s")
    listener = poller(driver, tgt)
    window = 0.4 * SCALE
    assert listener.poll(timeout=0.05) == []

    def late_send() -> None:
        # Sent while poll waits: the batch timer starts here, not at poll entry.
        gate.wait(EVENTUALLY)
        driver.send(tgt, {}, {"n": 1})

    gate = threading.Event()
    sender = threading.Thread(target=late_send, daemon=True)
    sender.start()
    entered = time.monotonic()
    threading.Timer(window, gate.set).start()
    batch = listener.poll(timeout=EVENTUALLY, batch_size=5, batch_timeout=window)
    elapsed = time.monotonic() - entered
    joined(sender)
    assert payloads(batch) == [1]
    assert elapsed >= 2 * window * 0.9, "the batch timer must start at the first message"
    for n in range(7):
        driver.send(tgt, {}, {"n": n})
    batch = listener.poll(timeout=1, batch_size=5, batch_timeout=window)
    assert payloads(batch) == [0, 1, 2, 3, 4]
    assert payloads(listener.poll(timeout=1, batch_size=5, batch_timeout=0.05)) == [5, 6]
    assert payloads(listener.poll(timeout=0.05, batch_size=5)) == []


def test_stop_unblocks_poll(make_driver) -> None:
    driver = make_driver("?listener=poll")
    listener = poller(driver, target(server="s"))
    result = Inbox()
    thread = threading.Thread(target=lambda: result.put(listener.poll()), daemon=True)
    thread.start()
    result.assert_quiet(0.1 * SCALE)
    listener.stop()
    assert result.get() == []
    joined(thread)
    assert listener.poll(timeout=None) == []


def test_requeue_redelivers_to_any_consumer(make_driver) -> None:
    driver = make_driver("?listener=poll")
    tgt = target()
    first, second = (poller(driver, target(topic=tgt.topic, server=f"s{i}")) for i in range(2))
    driver.send(tgt, {}, {"n": 1})
    (incoming,) = first.poll(timeout=EVENTUALLY)
    incoming.requeue()
    (again,) = second.poll(timeout=EVENTUALLY)
    assert again.message == {"n": 1}
    again.acknowledge()
    again.acknowledge()  # never raises
    assert first.poll(timeout=0.05) == []


def test_notification_envelope_is_inspectable(make_driver, broker) -> None:
    driver = make_driver()
    tgt = target()
    driver.send_notification(tgt, {"user": "u"}, {"n": 2}, 2.0, retry=0)
    driver.send_notification(tgt, {"user": "u"}, {"n": 1}, 1.0, retry=0)
    enveloped, bare = broker.peek(("topic", "reference-tests", tgt.topic, None))
    assert enveloped["oslo.version"] == "2.0"
    assert bare == {"ctxt": {"user": "u"}, "message": {"n": 1}}


def test_listen_for_notifications_topic_priority(make_driver) -> None:
    driver = make_driver("?listener=poll")
    tgt = target()
    driver.send_notification(target(topic=f"{tgt.topic}.info"), {}, {"n": 2}, 2.0, retry=0)
    adapter = driver.listen_for_notifications([(tgt, "info"), (tgt, "error")], None, 1, None)
    (incoming,) = adapter.poll_listener.poll(timeout=EVENTUALLY)
    assert incoming.message == {"n": 2}
    assert incoming.ctxt == {}


def test_cleanup_leaves_no_threads(make_driver) -> None:
    driver = make_driver()
    poll_driver = make_driver("?listener=poll")
    for each in (driver, poll_driver):
        listener = each.listen(target(server="s"), 1, None)
        listener.start(lambda incoming: None)
        each.listen(target(server="s"), 1, None)  # never started
        each.listen_for_notifications([(target(), "info")], "pool", 1, None).start(
            lambda incoming: None)
    assert any(t.name.startswith("reference-") for t in threading.enumerate())
    driver.cleanup()
    poll_driver.cleanup()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("reference-")]


def test_cleanup_wakes_a_caller_that_gave_no_timeout(make_driver) -> None:
    """send(wait_for_reply=True, timeout=None) must not outlive its driver's cleanup()."""
    server, client = make_driver(), make_driver()
    tgt = target(server="s")
    inbox = Inbox()
    server.listen(tgt, 1, None).start(inbox.put)  # receives, never replies
    outcome = Inbox()

    def call() -> None:
        try:
            outcome.put(client.send(tgt, {}, {"n": 1}, wait_for_reply=True))
        except Exception as exc:
            outcome.put(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    inbox.get()
    client.cleanup()
    assert isinstance(outcome.get(), oslo_messaging.MessageDeliveryFailure)
    joined(caller)


def test_stop_gives_up_on_a_stuck_callback(make_driver, monkeypatch, caplog) -> None:
    """stop() waits for a callback in progress, but not forever; it is never called again."""
    from driver_conformance.reference import listeners

    monkeypatch.setattr(listeners, "STOP_PATIENCE", 0.2 * SCALE)
    driver = make_driver()
    tgt = target(server="s")
    release = threading.Event()
    calls = Inbox()

    def callback(incoming) -> None:
        calls.put(payloads(incoming))
        release.wait(EVENTUALLY)

    listener = driver.listen(tgt, 1, None)
    listener.start(callback)
    driver.send(tgt, {}, {"n": 1})
    assert calls.get() == [1]
    driver.send(tgt, {}, {"n": 2})
    started = time.monotonic()
    listener.stop()
    assert time.monotonic() - started < EVENTUALLY
    assert "still running" in caplog.text
    release.set()
    calls.assert_quiet()
    listener.cleanup()


def test_wire_records_are_the_stored_bodies_bounded_in_bytes(make_driver, broker) -> None:
    """The raw view: notifications as stored, no copies, within a byte budget."""
    from driver_conformance.reference import MessageKind

    broker.wire_log_bytes = 4096
    driver = make_driver()
    tgt = target(server="s")
    inbox = Inbox()
    listener = driver.listen(tgt, 1, None)
    listener.start(lambda batch: [inbox.put(m) or m.reply("ok") for m in batch])
    driver.send(tgt, {}, {"n": 1})
    assert driver.send(tgt, {}, {"n": 2}, wait_for_reply=True, timeout=EVENTUALLY) == "ok"
    topic = f"{tgt.topic}-n"

    def notify(payload, version=2.0) -> None:
        driver.send_notification(target(topic=f"{topic}.info"), {}, payload, version, retry=0)

    notify({"n": 3})
    notify({"n": 4}, version=1.0)
    records = broker.wire_records()  # no request, no reply: their form is the reference's own
    assert [r.kind for r in records] == [MessageKind.NOTIFICATION] * 2
    assert [r.queues for r in records] == [1, 1]
    enveloped, bare = records
    assert '"oslo.version": "2.0"' in enveloped.body and "oslo.version" not in bare.body
    assert enveloped.body is broker._queues[queued_key(enveloped)].ready[0].body  # not a copy
    assert broker.wire_records(topic=f"{topic}.info", exchange="elsewhere") == []
    assert broker.wire_records(topic=f"{topic}.info") == records
    big = "x" * 3000
    notify({"n": big})
    notify({"n": big})  # the first big one no longer fits
    assert sum(r.size for r in broker.wire_records() if r.body is not None) <= 4096
    assert [r.size > 3000 for r in broker.wire_records()] == [True]
    notify({"n": "y" * 5000})  # larger than the budget: recorded, body dropped
    (huge,) = [r for r in broker.wire_records() if r.size > 5000]
    assert huge.body is None and huge.queues == 1
    broker.clear_wire_records()
    assert broker.wire_records() == []
    inbox.take(2)


def queued_key(record):
    from driver_conformance.reference import QueueKey, QueueKind

    return QueueKey(QueueKind.TOPIC, record.to.exchange, record.to.topic)
