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
and the last heartbeat received.
"""

from __future__ import annotations

import logging
import threading
import time

import oslo_messaging

from driver_conformance.reference.broker import BrokerError, Connection, Consumer, Message
from driver_conformance.reference.link import Link

LOG = logging.getLogger(__name__)


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
        self.queue_key = ("reply", f"reply_{link.new_id()}")
        self._waiters: dict[str, Waiter] = {}
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

    def register(self, msg_id: str) -> Waiter:
        waiter = Waiter()
        self._waiters[msg_id] = waiter
        return waiter

    def forget(self, msg_id: str) -> None:
        self._waiters.pop(msg_id, None)

    def wait(
        self,
        msg_id: str,
        waiter: Waiter,
        *,
        started: float,
        deadline: float | None,
        call_monitor_timeout: float | None,
    ) -> Message:
        """Block until the reply arrives; MessagingTimeout on either timeout."""
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
                waiter.woken = False  # then look again: reply, or a heartbeat
        return waiter.reply

    # -- broker side -------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        """The reply queue's sink; runs under the broker lock (see :class:`Waiter`)."""
        waiter = self._waiters.get(message.correlation_id or "")
        if waiter is None:
            LOG.debug("reference: no caller waits for reply %s (timed out?)",
                      message.correlation_id)
            return
        if message.kind == "heartbeat":
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
        """Unsubscribe and wait for the restore thread (the link must be closed)."""
        with self._subscribe_lock:
            self._closed = True
            consumer, self._consumer = self._consumer, None
            restorer = self._restorer
        if consumer is not None:
            self._link.broker.unsubscribe(consumer, delete=[self.queue_key])
        else:
            self._link.broker.delete_queue(self.queue_key)
        if restorer is not None and restorer is not threading.current_thread():
            restorer.join()
