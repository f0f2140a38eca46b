"""Notifications through the public oslo.messaging API on ``reference://`` transports."""

from __future__ import annotations

import threading
import uuid

import oslo_messaging
import pytest
from refsupport import SCALE, Inbox, running


class Recorder:
    """A notification endpoint that records (pool, event_type, payload)."""

    def __init__(self, pool: str | None, inbox: Inbox, requeue_first: bool = False) -> None:
        self.pool = pool
        self.inbox = inbox
        self.requeue_first = requeue_first
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            first = metadata["message_id"] not in self._seen
            self._seen.add(metadata["message_id"])
        self.inbox.put((self.pool, event_type, payload, first))
        if self.requeue_first and first:
            return oslo_messaging.NotificationResult.REQUEUE
        return oslo_messaging.NotificationResult.HANDLED


def listener(transport, topic, endpoint, pool=None, **kwargs):
    return oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor="threading", pool=pool, **kwargs)


def notifier(transport, topic, driver="messagingv2"):
    return oslo_messaging.Notifier(transport, publisher_id="tests", driver=driver,
                                   topics=[topic])


@pytest.mark.parametrize("driver", ["messagingv2", "messaging"])
def test_store_and_forward_then_pools(make_transport, broker, driver) -> None:
    transport = make_transport("notify")
    topic = f"notif-{uuid.uuid4().hex[:8]}"
    # Published before any listener exists: kept by the default queue.
    notifier(transport, topic, driver).info({}, "early", {"n": 0})
    inbox = Inbox()
    default = listener(transport, topic, Recorder(None, inbox))
    pool_a = listener(transport, topic, Recorder("a", inbox), pool="a")
    pool_b = listener(transport, topic, Recorder("b", inbox), pool="b")
    with running(default, pool_a, pool_b):
        assert inbox.get()[:3] == (None, "early", {"n": 0})
        inbox.assert_quiet()  # pools created later do not see older notifications
        notifier(transport, topic, driver).info({}, "late", {"n": 1})
        received = sorted(inbox.take(3), key=lambda item: item[0] or "")
        assert received == [(None, "late", {"n": 1}, True), ("a", "late", {"n": 1}, True),
                            ("b", "late", {"n": 1}, True)]
        inbox.assert_quiet()
    # The stored form is enveloped for messagingv2 (version 2.0) only.
    stored = broker.wire_records(topic=f"{topic}.info")
    assert [r.queues for r in stored] == [1, 3]  # the shared queue; then the pools too
    assert ('"oslo.message"' in stored[0].body) is (driver == "messagingv2")


def test_requeue_redelivers(make_transport) -> None:
    transport = make_transport("notify")
    topic = f"notif-{uuid.uuid4().hex[:8]}"
    inbox = Inbox()
    server = listener(transport, topic, Recorder(None, inbox, requeue_first=True),
                      allow_requeue=True)
    with running(server):
        notifier(transport, topic).info({}, "retry-me", {"n": 1})
        first, second = inbox.take(2)
        assert first[1:] == ("retry-me", {"n": 1}, True)
        assert second[1:] == ("retry-me", {"n": 1}, False)
        inbox.assert_quiet()


def test_balanced_inside_a_pool(make_transport) -> None:
    transport = make_transport("notify")
    topic = f"notif-{uuid.uuid4().hex[:8]}"
    inbox = Inbox()
    release = threading.Event()

    class Blocking(Recorder):
        def info(self, *args):
            super().info(*args)
            release.wait(5 * SCALE)

    servers = [listener(transport, topic, Blocking(f"member{i}", inbox), pool="p")
               for i in range(3)]
    with running(*servers):
        try:
            for n in range(3):
                notifier(transport, topic).info({}, "work", {"n": n})
            members = sorted(item[0] for item in inbox.take(3))
            assert members == ["member0", "member1", "member2"]
        finally:
            release.set()


def test_batch_listener(make_transport) -> None:
    transport = make_transport("notify")
    topic = f"notif-{uuid.uuid4().hex[:8]}"
    batches = Inbox()

    class BatchEndpoint:
        def info(self, messages):
            batches.put([m["payload"]["n"] for m in messages])

    for n in range(12):
        notifier(transport, topic).info({}, "batch", {"n": n})
    server = oslo_messaging.get_batch_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [BatchEndpoint()],
        executor="threading", batch_size=5, batch_timeout=0.3 * SCALE)
    with running(server):
        assert batches.take(3) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
