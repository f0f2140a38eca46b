"""The oslo.messaging driver for ``memqueue://`` (entry point ``oslo.messaging.drivers``).

How the driver API maps onto the broker (:mod:`memqueue.broker`):

=======================  ================================================================
RPC ``listen(target)``   the shared queue ``<ex>/rpc/<topic>`` (one copy among servers),
                         ``<ex>/rpc/<topic>/<server>`` when the target names a server,
                         and a fanout queue of the listener's own, bound to
                         ``fanout/<topic>``
``send(target)``         published to ``rpc/<topic>[/<server>]`` or ``fanout/<topic>``
                         on the target's exchange (the default exchange when None)
notifications            ``notify/<topic>.<priority>``, stored in ``<ex>/notify/<t.p>``
                         or, for a pool, ``<ex>/notify/<t.p>/pool:<pool>``; the sender
                         declares the pool-less queue, so a notification published
                         before any listener waits for the first one
replies and heartbeats   each driver's own reply queue, which callers wait on by
                         correlation id (no thread: the broker hands replies over)
=======================  ================================================================

Sends retry as ``retry`` allows, ``[memqueue] retry_interval`` apart, within
``timeout``; every attempt of one send carries the same message id, and the
broker drops a re-sent duplicate, so a retry after a lost confirmation never
delivers twice.  Listeners are callback listeners: each has one thread,
which hands the callback batches of up to ``batch_size`` and reconnects and
re-attaches its subscriptions after a failure.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_messaging._drivers import base, common
from oslo_serialization import jsonutils

from memqueue import broker as mq
from memqueue import options

LOG = logging.getLogger(__name__)

#: Longest a listener thread sleeps without looking at its state again.
IDLE_CHECK = 5.0
_listener_numbers = itertools.count(1)


class _Deadline:
    """The end of a ``timeout`` (None: no end)."""

    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()


def rpc_key(topic: str, server: str | None = None) -> str:
    return f"rpc/{topic}/{server}" if server else f"rpc/{topic}"


def fanout_key(topic: str) -> str:
    return f"fanout/{topic}"


def notify_key(topic: str) -> str:
    return f"notify/{topic}"


class MemqueueDriver(base.BaseDriver):
    """oslo.messaging's driver API on an in-process broker per virtual host."""

    def __init__(self, conf: Any, url: Any, default_exchange: str | None = None,
                 allowed_remote_exmods: list[str] | None = None) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        # The group is registered here, on the transport's own configuration, and
        # read at once: what the driver reads now is what it runs with.
        self.settings = options.register(conf)
        self.broker = mq.broker_for(url.virtual_host)
        self.default_exchange = default_exchange or "openstack"
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._publisher: mq.Connection | None = None
        self._replies: _ReplyRoute | None = None
        self._listeners: set[_Listener] = set()

    # -- features --------------------------------------------------------------------------
    def require_features(self, requeue: bool = False) -> None:
        """Nothing to refuse: requeue is supported."""

    # -- sending ---------------------------------------------------------------------------
    def send(self, target: Any, ctxt: dict[str, Any], message: Any,
             wait_for_reply: bool | None = None, timeout: float | None = None,
             call_monitor_timeout: float | None = None, retry: int | None = None,
             transport_options: Any = None) -> Any:
        exchange = target.exchange or self.default_exchange
        if target.fanout:
            if wait_for_reply:
                raise oslo_messaging.InvalidTarget("a call cannot be fanned out", target)
            key = fanout_key(target.topic)
        else:
            key = rpc_key(target.topic, target.server)
        body: dict[str, Any] = {"ctxt": ctxt, "message": common.serialize_msg(message)}
        deadline = _Deadline(timeout)
        if not wait_for_reply:
            self._publish(exchange, key, body, retry, deadline)
            return None
        route = self._reply_route()
        waiter = route.expect()
        try:
            body.update(reply_to=route.queue, correlation_id=waiter.correlation_id,
                        client_timeout=call_monitor_timeout)
            self._publish(exchange, key, body, retry, deadline)
            return waiter.wait(deadline, call_monitor_timeout)
        finally:
            route.forget(waiter)

    def send_notification(self, target: Any, ctxt: dict[str, Any], message: Any,
                          version: float, retry: int | None = None) -> None:
        exchange = target.exchange or self.default_exchange
        key = notify_key(target.topic)
        stored = common.serialize_msg(message) if version >= 2.0 else message
        self._publish(exchange, key, {"ctxt": ctxt, "message": stored}, retry, _Deadline(None),
                      declare=self.notification_queue(exchange, target.topic, None))

    def _publish(self, exchange: str, key: str, body: dict[str, Any], retry: int | None,
                 deadline: _Deadline, declare: str | None = None) -> None:
        """Hand ``body`` to the broker, retrying per ``retry`` within ``deadline``.

        ``retry`` None or negative: until it works (or the deadline); N: at
        most N retries.  Every attempt sends the same message id, which is
        what makes a retry safe when a confirmation was lost.
        """
        message_id = uuid.uuid4().hex
        encoded = jsonutils.dumps(body)
        allowed = None if retry is None or retry < 0 else retry + 1
        for attempt in itertools.count(1):
            try:
                connection = self._publisher_connection()
                if declare is not None:
                    self.broker.bind(connection, exchange, key, declare)
                self.broker.publish(connection, exchange, key, message_id, encoded)
                return
            except mq.BrokerError as exc:
                failure = exc
            if allowed is not None and attempt >= allowed:
                raise oslo_messaging.MessageDeliveryFailure(
                    f"memqueue: could not send to {exchange}/{key} in {attempt} attempt(s) "
                    f"(retry={retry}): {failure}")
            pause = self.settings.retry_interval
            left = deadline.left()
            if left is not None:
                if left <= 0:
                    raise oslo_messaging.MessagingTimeout(
                        f"memqueue: timed out sending to {exchange}/{key} after {attempt} "
                        f"attempt(s): {failure}")
                pause = min(pause, left)
            LOG.debug("memqueue: send to %s/%s failed (attempt %d, %s); retrying in %.2fs",
                      exchange, key, attempt, failure, pause)
            if self._closing.wait(pause):
                raise oslo_messaging.MessageDeliveryFailure(
                    "memqueue: the driver was cleaned up while a send was retrying")

    def _publisher_connection(self) -> mq.Connection:
        with self._lock:
            if self._publisher is None or not self._publisher.alive:
                self._publisher = self.broker.connect(mq.PUBLISHER)
            return self._publisher

    def _answer(self, reply_to: str, body: dict[str, Any], what: str, msg_id: str) -> None:
        """One attempt to send a reply or heartbeat; a failure is logged, never raised.

        One attempt keeps replies at most once; a caller whose reply is lost
        times out, which is what it would do if the server had died.
        """
        try:
            reached = self.broker.publish(self._publisher_connection(), "", reply_to,
                                          uuid.uuid4().hex, jsonutils.dumps(body))
            if not reached:
                LOG.debug("memqueue: nobody waits for the %s to message %s any more", what,
                          msg_id)
        except mq.ConfirmationLost as exc:
            LOG.warning("memqueue: the %s to message %s may not have arrived: %s", what,
                        msg_id, exc)
        except mq.BrokerError as exc:
            LOG.warning("memqueue: could not send the %s to message %s: %s", what, msg_id, exc)

    def _reply_route(self) -> _ReplyRoute:
        with self._lock:
            if self._replies is None:
                self._replies = _ReplyRoute(self)
            return self._replies

    # -- listening -------------------------------------------------------------------------
    def fanout_queue(self, exchange: str, topic: str) -> str:
        """A fanout queue of the listener's own: each listener gets its own copy."""
        return f"{exchange}/fanout/{topic}/{uuid.uuid4().hex}"

    def notification_queue(self, exchange: str, topic: str, pool: str | None) -> str:
        queue = f"{exchange}/notify/{topic}"
        return f"{queue}/pool:{pool}" if pool else queue

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> _Listener:
        exchange = target.exchange or self.default_exchange
        subscriptions = [(f"{exchange}/rpc/{target.topic}", exchange, rpc_key(target.topic))]
        if target.server:
            subscriptions.append((f"{exchange}/rpc/{target.topic}/{target.server}", exchange,
                                  rpc_key(target.topic, target.server)))
        fanout = self.fanout_queue(exchange, target.topic)
        subscriptions.append((fanout, exchange, fanout_key(target.topic)))
        return self._listener(_RpcIncoming, subscriptions, [fanout], batch_size, batch_timeout)

    def listen_for_notifications(self, targets_and_priorities: Any, pool: str | None,
                                 batch_size: int, batch_timeout: float | None) -> _Listener:
        subscriptions = []
        for target, priority in sorted(targets_and_priorities,
                                       key=lambda pair: (str(pair[0]), pair[1])):
            exchange = target.exchange or self.default_exchange
            topic = f"{target.topic}.{priority}"
            subscriptions.append((self.notification_queue(exchange, topic, pool), exchange,
                                  notify_key(topic)))
        return self._listener(_NotificationIncoming, subscriptions, [], batch_size,
                              batch_timeout)

    def _listener(self, incoming: type[_Incoming], subscriptions: list[tuple[str, str, str]],
                  owned: list[str], batch_size: int, batch_timeout: float | None) -> _Listener:
        listener = _Listener(self, incoming, subscriptions, owned, batch_size, batch_timeout)
        listener.subscribe()
        with self._lock:
            self._listeners.add(listener)
        return listener

    def _forget(self, listener: _Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    # -- cleanup ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop every listener (joining its thread), drop the reply queue, disconnect."""
        self._closing.set()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.cleanup()
        with self._lock:
            replies, self._replies = self._replies, None
            publisher, self._publisher = self._publisher, None
        if replies is not None:
            replies.close()
        self.broker.close(publisher)


# ---------------------------------------------------------------------------------------
# replies: the caller's side
# ---------------------------------------------------------------------------------------


class _Waiter:
    """One call waiting for its reply (or heartbeats) under a correlation id."""

    def __init__(self) -> None:
        self.correlation_id = uuid.uuid4().hex
        self.events: collections.deque[dict[str, Any]] = collections.deque()
        self.route: _ReplyRoute | None = None

    def wait(self, deadline: _Deadline, monitor: float | None) -> Any:
        """The reply's result, or the remote failure raised; MessagingTimeout when the
        deadline passes, or ``monitor`` seconds pass without a heartbeat."""
        route = self.route
        assert route is not None
        alive_until = None if not monitor else time.monotonic() + monitor
        with route.cond:
            while True:
                if self.events:
                    event = self.events.popleft()
                    if event["kind"] != "heartbeat":
                        break
                    if monitor:
                        alive_until = time.monotonic() + monitor
                    continue
                now = time.monotonic()
                if deadline.at is not None and now >= deadline.at:
                    raise oslo_messaging.MessagingTimeout(
                        f"memqueue: no reply to call {self.correlation_id} within its timeout")
                if alive_until is not None and now >= alive_until:
                    raise oslo_messaging.MessagingTimeout(
                        f"memqueue: no reply or heartbeat for call {self.correlation_id} "
                        f"within call_monitor_timeout ({monitor}s)")
                if route.closed:
                    raise oslo_messaging.MessagingException(
                        "memqueue: the driver was cleaned up while a call waited")
                limits = [t - now for t in (deadline.at, alive_until) if t is not None]
                pause = min(limits, default=IDLE_CHECK)
                if not route.attached:
                    # The reply queue keeps what arrives while the route reconnects.
                    try:
                        route.attach()
                    except mq.BrokerError:
                        pause = min(pause, route.driver.settings.retry_interval)
                route.cond.wait(pause)
        if event.get("failure") is None:
            return event.get("result")
        raise common.deserialize_remote_exception(event["failure"],
                                                  route.driver._allowed_remote_exmods)


class _ReplyRoute(mq.Consumer):
    """A driver's reply queue and the calls waiting on it; replies are routed as they come."""

    auto_ack = True

    def __init__(self, driver: MemqueueDriver) -> None:
        super().__init__()
        self.driver = driver
        self.broker = driver.broker
        self.queue = f"reply/{uuid.uuid4().hex}"
        self.cond = threading.Condition(self.broker.lock)
        self.waiters: dict[str, _Waiter] = {}
        self.closed = False

    def expect(self) -> _Waiter:
        waiter = _Waiter()
        waiter.route = self
        with self.cond:
            self.waiters[waiter.correlation_id] = waiter
            if not self.attached:
                try:
                    self.attach()
                except mq.BrokerError as exc:
                    LOG.debug("memqueue: reply queue not attached yet: %s", exc)
        return waiter

    def forget(self, waiter: _Waiter) -> None:
        with self.cond:
            self.waiters.pop(waiter.correlation_id, None)

    def attach(self) -> None:
        """(Re)connect and consume the reply queue, declared on first use."""
        with self.cond:
            self.broker.close(self.connection)
            self.connection = self.broker.connect(mq.CONSUMER)
            self.broker.bind(self.connection, "", self.queue, self.queue)
            self.broker.consume(self, [self.queue])

    def wants(self) -> int:
        return sys.maxsize

    def accept(self, delivery: mq.Delivery) -> None:
        event = jsonutils.loads(delivery.message.body)
        waiter = self.waiters.get(event.get("correlation_id"))
        if waiter is None:
            LOG.debug("memqueue: dropped a %s for call %s, which is no longer waiting",
                      event.get("kind"), event.get("correlation_id"))
            return
        waiter.events.append(event)
        self.cond.notify_all()

    def detached(self) -> None:
        self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.broker.close(self.connection)
            self.broker.delete(self.queue)
            self.cond.notify_all()


# ---------------------------------------------------------------------------------------
# listeners and what they deliver
# ---------------------------------------------------------------------------------------


class _Incoming(base.IncomingMessage):
    """A delivered message; acknowledge and requeue settle it with the broker."""

    def __init__(self, listener: _Listener, delivery: mq.Delivery, body: dict[str, Any]) -> None:
        super().__init__(body["ctxt"], common.deserialize_msg(body["message"]),
                         delivery.message.message_id)
        self._driver = listener.driver
        self._delivery = delivery

    def acknowledge(self) -> None:
        self._settle(requeue=False)

    def requeue(self) -> None:
        self._settle(requeue=True)

    def _settle(self, requeue: bool) -> None:
        what = "requeue" if requeue else "acknowledge"
        try:
            self._driver.broker.settle(self._delivery, requeue=requeue)
        except mq.BrokerError as exc:
            LOG.warning("memqueue: could not %s message %s: %s", what, self.msg_id, exc)


class _NotificationIncoming(_Incoming):
    pass


class _RpcIncoming(_Incoming, base.RpcIncomingMessage):
    """An RPC request; replies and heartbeats go to the caller's reply queue."""

    def __init__(self, listener: _Listener, delivery: mq.Delivery, body: dict[str, Any]) -> None:
        super().__init__(listener, delivery, body)
        self.client_timeout = body.get("client_timeout")
        self._reply_to: str | None = body.get("reply_to")
        self._correlation_id = body.get("correlation_id")
        self._replied = threading.Event()

    def reply(self, reply: Any = None, failure: Any = None) -> None:
        if self._reply_to is None:
            return  # a cast: the RPC server replies to every message, nobody waits here
        with self._driver.broker.lock:
            if self._replied.is_set():
                LOG.debug("memqueue: second reply to message %s ignored", self.msg_id)
                return
            self._replied.set()
        if isinstance(failure, BaseException):
            failure = (type(failure), failure, failure.__traceback__)
        self._driver._answer(self._reply_to, {
            "kind": "reply", "correlation_id": self._correlation_id, "result": reply,
            "failure": common.serialize_remote_exception(failure) if failure else None,
        }, "reply", self.msg_id)

    def heartbeat(self) -> None:
        if self._reply_to is None or self._replied.is_set():
            return
        self._driver._answer(self._reply_to, {
            "kind": "heartbeat", "correlation_id": self._correlation_id}, "heartbeat",
            self.msg_id)


class _Subscription(mq.Consumer):
    """A listener's side of the broker: what it was handed and not yet called back with.

    Its credit is ``batch_size`` minus what it holds, and nothing while the
    callback runs, so messages wait in the queue for whichever listener is free.
    """

    def __init__(self, cond: threading.Condition, batch_size: int) -> None:
        super().__init__()
        self.cond = cond
        self.batch_size = batch_size
        self.held: list[tuple[mq.Delivery, float]] = []
        self.busy = False

    def wants(self) -> int:
        return 0 if self.busy else self.batch_size - len(self.held)

    def accept(self, delivery: mq.Delivery) -> None:
        self.held.append((delivery, time.monotonic()))
        self.cond.notify_all()

    def detached(self) -> None:
        # Whatever it held was requeued with its connection, or is released by stop().
        self.held.clear()
        self.cond.notify_all()


class _Listener(base.Listener):
    """A callback listener: one thread, batches, reconnection (see the module docstring)."""

    def __init__(self, driver: MemqueueDriver, incoming: type[_Incoming],
                 subscriptions: list[tuple[str, str, str]], owned: list[str],
                 batch_size: int, batch_timeout: float | None) -> None:
        super().__init__(batch_size, batch_timeout)
        self.driver = driver
        self.broker = driver.broker
        self._incoming = incoming
        self._subscriptions = subscriptions
        self._owned = owned
        self._cond = threading.Condition(self.broker.lock)
        self._sub = _Subscription(self._cond, self.batch_size)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._cleaned = False

    def subscribe(self) -> None:
        """Make the subscriptions exist before ``listen()`` returns, or raise."""
        settings = self.driver.settings
        for attempt in range(1, settings.connect_attempts + 1):
            try:
                with self._cond:
                    self._restore()
                return
            except mq.BrokerError as exc:
                failure = exc
            if attempt < settings.connect_attempts:
                self.driver._closing.wait(settings.retry_interval)
        raise base.TransportDriverError(
            f"memqueue: could not subscribe after {settings.connect_attempts} attempt(s): "
            f"{failure}")

    def _restore(self) -> None:
        """Declare and bind every subscription, on a new connection if the old one died.

        Declaring is idempotent, so doing it on every (re)attach restores
        whatever the broker may have lost, and costs nothing otherwise.
        """
        if self._sub.connection is None or not self._sub.connection.alive:
            self._sub.connection = self.broker.connect(mq.CONSUMER)
        for queue, exchange, key in self._subscriptions:
            self.broker.bind(self._sub.connection, exchange, key, queue)

    def _attach(self) -> None:
        self._restore()
        self.broker.consume(self._sub, [queue for queue, _, _ in self._subscriptions])

    def start(self, on_incoming_callback: Callable[[list[Any]], Any]) -> None:
        super().start(on_incoming_callback)
        self._thread = threading.Thread(
            target=self._run, args=(on_incoming_callback,), daemon=True,
            name=f"memqueue-listener-{next(_listener_numbers)}")
        self._thread.start()

    def _run(self, callback: Callable[[list[Any]], Any]) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                callback([self._incoming(self, d, jsonutils.loads(d.message.body))
                          for d in batch])
            except Exception:
                LOG.exception("memqueue: the listener's callback raised")
            finally:
                with self._cond:
                    self._sub.busy = False
                    self.broker.pump(self._sub)

    def _next_batch(self) -> list[mq.Delivery] | None:
        """Wait for a batch: one message, then more until ``batch_size`` or ``batch_timeout``."""
        sub = self._sub
        with self._cond:
            while not self._stopping:
                if not sub.attached:
                    try:
                        self._attach()
                    except mq.BrokerError as exc:
                        LOG.debug("memqueue: listener reconnecting: %s", exc)
                        self._cond.wait(self.driver.settings.retry_interval)
                    continue
                if not sub.held:
                    self._cond.wait(IDLE_CHECK)
                    continue
                if len(sub.held) < self.batch_size and self.batch_timeout:
                    left = sub.held[0][1] + self.batch_timeout - time.monotonic()
                    if left > 0:
                        self._cond.wait(left)
                        continue
                batch = [d for d, _ in sub.held[:self.batch_size]]
                del sub.held[:self.batch_size]
                sub.busy = True
                return batch
            return None

    def stop(self) -> None:
        """No callback starts once this returns; held messages go back to their queues."""
        with self._cond:
            self._stopping = True
            held = [d for d, _ in self._sub.held]
            self.broker.cancel(self._sub)
            self.broker.release(held)
            self._cond.notify_all()
        super().stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def cleanup(self) -> None:
        """Stop, close the connection (unsettled messages are requeued), drop owned queues."""
        self.stop()
        with self._cond:
            if self._cleaned:
                return
            self._cleaned = True
            self.broker.close(self._sub.connection)
            for queue in self._owned:
                self.broker.delete(queue)
        self.driver._forget(self)
