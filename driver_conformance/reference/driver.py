"""``ReferenceDriver``: the oslo.messaging driver behind ``reference://`` URLs.

Addressing (queue keys are those of :mod:`driver_conformance.reference.broker`):

* ``listen(target)`` subscribes to the shared topic queue of
  ``(exchange, topic)``, to the server queue of ``(exchange, topic, server)``
  when ``target.server`` is set, and to a fanout queue of its own.
* ``send`` routes by the target: fanout to every fanout queue of the topic,
  a server to its server queue, otherwise to the topic queue (one consumer
  gets it, balanced).  An exchange of None means the driver's default exchange.
* RPC queues exist from the first ``listen()`` until the broker is dropped;
  an RPC message sent to an address with no queue is dropped, as RabbitMQ
  drops a message no queue is bound to.
* ``listen_for_notifications`` subscribes to ``f"{topic}.{priority}"``: to the
  shared queue when ``pool`` is None, to the pool's queue otherwise.  Each pool
  and the shared queue get one copy of every notification.
* ``send_notification`` declares the shared queue before publishing, so a
  listener that arrives later still receives what was published before it
  (store-and-forward).  A pool queue only receives notifications published
  after the pool's first listener subscribed (and keeps them, like the shared
  queue, while none of its listeners runs).  With ``version`` 2.0 the stored
  body is the oslo envelope (:func:`oslo_messaging._drivers.common.serialize_msg`);
  :meth:`Broker.wire_records` and :meth:`Broker.peek` show the stored form.

Both ``send`` and ``send_notification`` build the stored message once (its
id is what makes retries safe) and publish it with :meth:`Broker.publish`
through :meth:`Link.run` (the retry rule), the one publish path; replies and
heartbeats take the same path from :mod:`~driver_conformance.reference.incoming`.

Failures: ``send`` and ``send_notification`` retry per ``retry`` (see
:mod:`~driver_conformance.reference.link`) and never duplicate.  ``listen``
waits up to :data:`~driver_conformance.reference.subscription.LISTEN_PATIENCE`
seconds for an unreachable broker, then raises a ``TransportDriverError``
(which ``MessageHandlingServer.start`` turns into ``ServerListenError``).
Listeners and the reply queue re-subscribe on their own after a cut or an
outage.

URL query options: ``?listener=poll`` makes ``listen`` and
``listen_for_notifications`` return poll-style listeners wrapped in a
``PollStyleListenerAdapter``; the default is callback-style listeners.

Every thread the driver starts is named ``reference-*``; :meth:`cleanup`
stops and joins all of them.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import oslo_messaging
from oslo_messaging._drivers import base
from oslo_messaging.transport import TransportURL

from driver_conformance.reference import vhosts
from driver_conformance.reference.broker import (
    Address,
    Broker,
    Connection,
    Message,
    MessageKind,
    QueueKey,
    QueueKind,
)
from driver_conformance.reference.incoming import decode_reply, encode_request
from driver_conformance.reference.link import Link
from driver_conformance.reference.listeners import (
    PollAdapter,
    ReferenceListener,
    ReferencePollListener,
)
from driver_conformance.reference.replies import ReplyRouter
from driver_conformance.reference.subscription import Subscription

LOG = logging.getLogger(__name__)

_listener_numbers = itertools.count(1)


class ReferenceDriver(base.BaseDriver):
    """An in-process, conformant driver; see the module docstring."""

    prefetch_size = 0

    def __init__(
        self,
        conf: Any,
        url: TransportURL,
        default_exchange: str | None = None,
        allowed_remote_exmods: list[str] | None = None,
    ) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self.broker: Broker = vhosts.get_broker(url)
        self.poll_style = (url.query or {}).get("listener") == "poll"
        self._link = Link(self.broker)
        self._replies = ReplyRouter(self._link)
        self._listeners: set[base.Listener] = set()
        self._listeners_lock = threading.Lock()

    # -- sending -------------------------------------------------------------------

    def require_features(self, requeue: bool = False) -> None:
        """Everything optional is supported: requeue included."""
        # clause: features.requeue.declared

    def _exchange(self, target: oslo_messaging.Target) -> str:
        # clause: driver.init.default-exchange
        return target.exchange or self._default_exchange or "openstack"

    def send(
        self,
        target: oslo_messaging.Target,
        ctxt: Any,
        message: Any,
        wait_for_reply: bool | None = None,
        timeout: float | None = None,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: Any = None,
    ) -> Any:
        # clause: send.transport-options.accepted (accepted, nothing to configure)
        # clause: features.rpc.declared (RPC implemented, and so declared by its adapter)
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        # clause: incoming.content.copied-not-shared (the body is JSON text)
        body = encode_request(ctxt, message)
        # clause: send.address.topic-exchange-server
        to = Address(self._exchange(target), target.topic, target.server, bool(target.fanout))
        if not wait_for_reply:
            # clause: send.cast.returns-after-handoff
            stored = Message(self._link.new_id(), body)
            self._link.run(self.broker.publish, stored, to, retry=retry, deadline=deadline)
            return None
        if target.fanout:
            raise oslo_messaging.InvalidTarget("a call cannot be fanned out", target)
        replies = self._replies
        # clause: send.wait-for-reply.correlated (reply_to and the request's id)
        stored = Message(self._link.new_id(), body, MessageKind.REQUEST, replies.queue_key,
                         None, deadline, call_monitor_timeout)
        waiter = replies.register(stored.id)
        try:
            self._link.run(self._publish_call, stored, to, retry=retry, deadline=deadline)
            # clause: send.wait-for-reply.returns-reply
            reply = replies.wait(stored.id, waiter, started, deadline, call_monitor_timeout)
        finally:
            replies.forget(stored.id)
        return decode_reply(reply.body, self._allowed_remote_exmods)

    def _publish_call(self, connection: Connection, stored: Message, to: Address) -> int:
        """One attempt at a call: its reply queue must exist before the request."""
        self._replies.subscribe(connection)
        return self.broker.publish(connection, stored, to)

    def send_notification(
        self,
        target: oslo_messaging.Target,
        ctxt: Any,
        message: Any,
        version: float,
        retry: int | None = None,
    ) -> None:
        # clause: notify.envelope.by-version
        envelope = float(version) >= 2.0
        stored = Message(
            id=self._link.new_id(),
            body=encode_request(ctxt, message, envelope=envelope),
            kind=MessageKind.NOTIFICATION,
        )
        # clause: notify.address.exchange-and-topic (server and fanout play no part)
        # clause: notify.address.server-fanout-ignored (the address listeners subscribe to)
        to = Address(self._exchange(target), target.topic, store_and_forward=True)
        # clause: notify.retry.honoured, notify.send.blocks-until-accepted
        self._link.run(self.broker.publish, stored, to, retry=retry)

    # -- listening -----------------------------------------------------------------

    def listen(
        self, target: oslo_messaging.Target, batch_size: int, batch_timeout: float | None
    ) -> base.Listener:
        exchange = self._exchange(target)
        number = next(_listener_numbers)
        # clause: listen.address.exchange-topic (the shared queue, and fanouts)
        fanout = QueueKey(QueueKind.FANOUT, exchange, target.topic, f"l{self._link.new_id()}")
        keys = [QueueKey(QueueKind.TOPIC, exchange, target.topic), fanout]
        if target.server:  # clause: listen.address.exchange-topic-server
            keys.append(QueueKey(QueueKind.SERVER, exchange, target.topic, target.server))
        name = f"{target.topic}.{target.server or '*'}-{number}"
        return self._listener(keys, [fanout], batch_size, batch_timeout, name)

    def listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[oslo_messaging.Target, str]],
        pool: str | None,
        batch_size: int,
        batch_timeout: float | None,
    ) -> base.Listener:
        # clause: notify-listen.pool.unsupported-raises (pools are supported: never raises)
        keys: list[QueueKey] = []
        for target, priority in targets_and_priorities:
            # clause: notify-listen.address.topic-priority
            # clause: notify-listen.address.server-fanout-ignored
            # clause: notify-listen.pool.one-copy-per-pool (a pool is a queue of its own)
            # clause: notify-listen.pool.per-target (one queue per pair and pool, not per pool)
            topic = f"{target.topic}.{priority}"
            key = QueueKey(QueueKind.TOPIC, self._exchange(target), topic, pool)
            if key not in keys:
                keys.append(key)
        name = f"notifications.{pool or '*'}-{next(_listener_numbers)}"
        return self._listener(keys, [], batch_size, batch_timeout, name)

    def _listener(
        self,
        keys: list[QueueKey],
        owned: list[QueueKey],
        batch_size: int,
        batch_timeout: float | None,
        name: str,
    ) -> base.Listener:
        # clause: listen.blocks.until-subscribed, listen.errors.transport-driver-error
        subscription = Subscription(self._link, keys, owned)
        listener: base.Listener
        # clause: listen.returns.either-listener-type
        # clause: listen.returns.listener-with-start (poll-style listeners are wrapped)
        if self.poll_style:
            poller = ReferencePollListener(self._link, subscription)
            listener = PollAdapter(poller, batch_size, batch_timeout, name, self._forget)
        else:
            listener = ReferenceListener(
                self._link, subscription, batch_size, batch_timeout, name, self._forget
            )
        with self._listeners_lock:
            self._listeners.add(listener)
        return listener

    def _forget(self, listener: object) -> None:
        with self._listeners_lock:
            self._listeners.discard(listener)  # type: ignore[arg-type]

    # -- cleanup ---------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stop every listener, close the link; returns when all threads ended."""
        # clause: driver.cleanup.blocks, driver.cleanup.releases-resources
        # clause: driver.cleanup.repeatable (a second call finds nothing left to close)
        # clause: driver.cleanup.own-resources-only (this driver's link and reply queue
        # only: the broker, shared by every driver on the URL, is left alone)
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.stop()
        for listener in listeners:
            try:
                listener.cleanup()
            except Exception:
                LOG.exception("reference: listener cleanup failed")
        self._link.close()
        self._replies.close()
