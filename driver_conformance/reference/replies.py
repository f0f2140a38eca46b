"""Reply routing: how a caller blocked in ``send(wait_for_reply=True)`` gets its reply.

Each driver owns one reply queue on the broker, declared the first time it
makes a call.  A request carries the queue's key (``reply_to``) and its own
message id; the server's reply and heartbeats carry that id back as
``correlation_id``.  The router's consumer on the reply queue is a *sink*: the
broker calls it synchronously while delivering, and it only looks up the
waiting caller and wakes it.  There is no reply thread on the hot path.

When the reply consumer is lost (connection cut, outage) the broker keeps
replies in the queue; a short-lived ``reference-replies-restore`` thread
re-subscribes as soon as the broker allows, and the stored replies flow.

Timeouts are measured by the waiting caller: the overall ``timeout`` from the
start of ``send``, and the call-monitor timeout from the later of the start
and the last heartbeat received.  A caller with no timeout at all is still
not left waiting forever by its own driver: ``cleanup()`` wakes it with
``MessageDeliveryFailure``.
"""

from __future__ import annotations

import logging
import threading
import time

import oslo_messaging

from driver_conformance.reference.broker import (
    BrokerError,
    Connection,
    Consumer,
    Message,
    MessageKind,
    QueueKey,
)
from driver_conformance.reference.link import Link

LOG = logging.getLogger(__name__)

#: Seconds ``close()`` waits for the restore thread, which ends as soon as the
#: link is closed (its retries stop then); a bound for safety, logged if hit.
CLOSE_PATIENCE = 10.0


class Waiter:
    """One caller waiting for the reply to its request.

    ``wake`` is a lock that is held while there is nothing new for the caller;
    the sink releases it to wake the caller, who takes it again and looks.
    This is cheaper than a Condition per call, and safe because the broker
    calls every sink under its own lock, one at a time: ``woken`` says whether
    a release is pending, so the lock is never released twice.
    """

    __slots__ = ("last_beat", "reply", "wake", "woken")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.woken = False
        self.reply: Message | None = None
        self.last_beat = 0.0

    def signal(self) -> None:
        """Wake the caller (called by the sink, under the broker lock)."""
        if not self.woken:
            self.woken = True
            self.wake.release()


class ReplyRouter:
    """The reply queue of one driver and the callers waiting on it."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self.queue_key = QueueKey.reply(f"reply_{link.new_id()}")
        self._waiters: dict[int, Waiter] = {}
        self._consumer: Consumer | None = None
        self._subscribe_lock = threading.Lock()
        self._restorer: threading.Thread | None = None
        self._closed = False

    # -- caller side -------------------------------------------------------------

    def subscribe(self, connection: Connection) -> None:
        """Make sure the reply consumer exists (called inside a retried send)."""
        consumer = self._consumer
        if consumer is not None and consumer.attached:
            return
        with self._subscribe_lock:
            consumer = self._consumer
            if consumer is not None and consumer.attached:
                return
            if self._closed:
                raise BrokerError("the reply router is closed")
            self._consumer = self._link.broker.subscribe(
                connection, [self.queue_key], sink=self._on_message, on_detached=self._restore
            )

    def register(self, msg_id: int) -> Waiter:
        waiter = Waiter()
        self._waiters[msg_id] = waiter
        return waiter

    def forget(self, msg_id: int) -> None:
        self._waiters.pop(msg_id, None)

    def wait(
        self,
        msg_id: int,
        waiter: Waiter,
        started: float,
        deadline: float | None,
        call_monitor_timeout: float | None,
    ) -> Message:
        """Block until the reply arrives; MessagingTimeout on either timeout."""
        # clause: send.timeout.raises-messaging-timeout
        # clause: send.call-monitor.timeout-without-heartbeat
        # clause: send.call-monitor.overall-timeout-bounds
        while waiter.reply is None:
            now = time.monotonic()
            limit = deadline
            if call_monitor_timeout:
                monitor = max(started, waiter.last_beat) + call_monitor_timeout
                limit = monitor if limit is None else min(limit, monitor)
            if limit is not None and now >= limit:
                reason = "call monitor" if limit != deadline else "timeout"
                raise oslo_messaging.MessagingTimeout(
                    f"Timed out waiting for a reply to message ID {msg_id} ({reason})"
                )
            if waiter.wake.acquire(timeout=-1 if limit is None else limit - now):
                waiter.woken = False  # then look again: reply, heartbeat or closed
            if self._closed and waiter.reply is None:
                raise oslo_messaging.MessageDeliveryFailure(
                    f"the driver was cleaned up while message ID {msg_id} waited for a reply"
                )
        return waiter.reply

    # -- broker side -------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        """The reply queue's sink; runs under the broker lock (see :class:`Waiter`)."""
        # clause: send.wait-for-reply.correlated
        waiter = self._waiters.get(message.correlation_id)  # type: ignore[arg-type]
        if waiter is None:  # a late reply is dropped, never handed to another caller
            LOG.debug("reference: no caller waits for reply %s (timed out?)",
                      message.correlation_id)
            return
        if message.kind is MessageKind.HEARTBEAT:
            # clause: rpc-incoming.heartbeat.resets-caller-timer
            waiter.last_beat = time.monotonic()
        else:
            waiter.reply = message
        waiter.signal()

    def _restore(self) -> None:
        """The reply consumer was detached: re-subscribe in the background."""
        with self._subscribe_lock:
            if self._closed or (self._restorer is not None and self._restorer.is_alive()):
                return
            self._restorer = threading.Thread(
                target=self._restore_run, name="reference-replies-restore", daemon=True
            )
            self._restorer.start()

    def _restore_run(self) -> None:
        try:
            self._link.run(self.subscribe, retry=None, what="reply subscription")
        except Exception as exc:  # closed while restoring
            LOG.debug("reference: reply subscription not restored: %s", exc)

    def close(self) -> None:
        """Unsubscribe, wake waiting callers, wait for the restore thread (link closed)."""
        broker = self._link.broker
        with self._subscribe_lock:
            self._closed = True
            consumer, self._consumer = self._consumer, None
            restorer = self._restorer
        with broker.lock:  # signals are serialised by the broker lock (see Waiter)
            for waiter in list(self._waiters.values()):
                waiter.signal()
        if consumer is not None:
            broker.unsubscribe(consumer, delete=[self.queue_key])
        else:
            broker.delete_queue(self.queue_key)
        if restorer is not None and restorer is not threading.current_thread():
            restorer.join(CLOSE_PATIENCE)
            if restorer.is_alive():
                LOG.error("reference: reply restore thread still running after %.0f s",
                          CLOSE_PATIENCE)
