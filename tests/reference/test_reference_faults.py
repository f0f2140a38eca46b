"""Retry, de-duplication and failover under the reference broker's injected faults."""

from __future__ import annotations

import threading
import time
import uuid

import oslo_messaging
import pytest
from refsupport import EVENTUALLY, QUIET, SCALE, Inbox, rpc_server, running

from driver_conformance import faults as fault_kinds
from driver_conformance.reference import ReferenceFaults


def target(**kwargs) -> oslo_messaging.Target:
    kwargs.setdefault("topic", f"t-{uuid.uuid4().hex[:8]}")
    return oslo_messaging.Target(**kwargs)


def started_listener(driver, tgt, inbox):
    listener = driver.listen(tgt, 1, None)

    def callback(incoming) -> None:
        for message in incoming:
            message.acknowledge()
            inbox.put(message.message["n"])
            message.reply(message.message["n"])

    listener.start(callback)
    return listener


def test_kinds(faults: ReferenceFaults) -> None:
    from driver_conformance.proxy.injector import HOST_OUTAGE

    assert faults.kinds == {fault_kinds.OUTAGE, fault_kinds.CUT, fault_kinds.LOST_CONFIRM,
                            fault_kinds.FREEZE, fault_kinds.DELAY, HOST_OUTAGE}


@pytest.mark.parametrize("retry", [0, 2])
def test_outage_exhausts_retries(make_driver, faults, retry) -> None:
    driver = make_driver()
    tgt = target(server="s")
    driver.listen(tgt, 1, None)
    before = faults.stats.publish_attempts
    faults.start_outage()
    with pytest.raises(oslo_messaging.MessageDeliveryFailure):
        driver.send(tgt, {}, {"n": 1}, retry=retry)
    with pytest.raises(oslo_messaging.MessageDeliveryFailure):
        driver.send_notification(target(), {}, {"n": 1}, 2.0, retry=retry)
    assert faults.stats.publish_attempts - before == 2 * (retry + 1)


def test_outage_bounded_by_timeout(make_driver, faults) -> None:
    driver = make_driver()
    faults.start_outage()
    started = time.monotonic()
    with pytest.raises(oslo_messaging.MessagingTimeout):
        driver.send(target(), {}, {"n": 1}, wait_for_reply=True, timeout=0.3 * SCALE)
    assert time.monotonic() - started < 0.3 * SCALE + QUIET


def test_unlimited_retry_succeeds_after_heal_and_listener_recovers(make_driver, faults) -> None:
    server, client = make_driver(), make_driver()
    tgt = target(server="s")
    inbox = Inbox()
    started_listener(server, tgt, inbox)
    faults.start_outage()
    threading.Timer(0.2 * SCALE, faults.heal).start()
    started = time.monotonic()
    assert client.send(tgt, {}, {"n": 7}, wait_for_reply=True, timeout=EVENTUALLY,
                       retry=None) == 7
    assert time.monotonic() - started >= 0.15 * SCALE
    assert inbox.get() == 7
    inbox.assert_quiet()


def test_lost_confirmations_are_retried_without_duplicates(make_driver, faults) -> None:
    server, client = make_driver(), make_driver()
    tgt = target(server="s")
    inbox = Inbox()
    started_listener(server, tgt, inbox)
    faults.lose_confirmations(2)
    client.send(tgt, {}, {"n": 1}, retry=5)
    assert inbox.get() == 1
    assert faults.stats.confirmations_lost == 2
    assert faults.stats.duplicates_dropped == 2
    faults.lose_confirmations(1)
    with pytest.raises(oslo_messaging.MessageDeliveryFailure):
        client.send(tgt, {}, {"n": 2}, retry=0)  # stored, but the sender cannot know
    assert client.send(tgt, {}, {"n": 3}, wait_for_reply=True, timeout=EVENTUALLY) == 3
    assert inbox.take(2) == [2, 3]
    inbox.assert_quiet()


def test_cut_connections_fail_over(make_driver, faults, broker) -> None:
    server, client = make_driver(), make_driver("?listener=poll")
    tgt, polled = target(server="s"), target(server="p")
    inbox = Inbox()
    started_listener(server, tgt, inbox)
    poll_listener = client.listen(polled, 1, None).poll_listener
    assert client.send(tgt, {}, {"n": 1}, wait_for_reply=True, timeout=EVENTUALLY) == 1
    generation = max(c.generation for c in broker._connections)
    faults.cut_connections()
    assert faults.stats.connections_cut == 2
    # Sent after the cut: the client reconnects, the listeners re-subscribe.
    assert client.send(tgt, {}, {"n": 2}, wait_for_reply=True, timeout=EVENTUALLY) == 2
    assert inbox.take(2) == [1, 2]
    assert max(c.generation for c in broker._connections) > generation
    server.send(polled, {}, {"n": 3})
    (incoming,) = poll_listener.poll(timeout=EVENTUALLY)
    assert incoming.message == {"n": 3}


def test_cut_returns_unacknowledged_messages(make_driver, faults) -> None:
    driver = make_driver("?listener=poll")
    tgt = target(server="s")
    listener = driver.listen(tgt, 1, None).poll_listener
    driver.send(tgt, {}, {"n": 1})
    (incoming,) = listener.poll(timeout=EVENTUALLY)
    faults.cut_connections()
    (again,) = listener.poll(timeout=EVENTUALLY)
    assert again.message == {"n": 1}
    assert again.redelivered
    incoming.acknowledge()  # stale: logged, never raised
    again.acknowledge()
    assert listener.poll(timeout=0.05) == []


def test_rpc_through_public_api_survives_a_cut(make_transport, faults) -> None:
    transport = make_transport()
    tgt = target(server="s")

    class Endpoint:
        def echo(self, ctxt, value):
            return value

    server = rpc_server(transport, tgt, [Endpoint()])
    client = oslo_messaging.get_rpc_client(transport, target(topic=tgt.topic),
                                           timeout=EVENTUALLY)
    with running(server):
        assert client.call({}, "echo", value=1) == 1
        faults.cut_connections()
        assert client.call({}, "echo", value=2) == 2
        with faults.outage():
            with pytest.raises(oslo_messaging.MessageDeliveryFailure):
                client.prepare(retry=1).cast({}, "echo", value=3)
        assert client.call({}, "echo", value=4) == 4
