"""Broken notifications: topic.priority addressing, single copy, pools, store-and-forward.

Mirrors :mod:`driver_conformance.scenarios.notifications`.  Most variants
change what ``listen_for_notifications()`` subscribes to (a pool, a
priority, a server that must be ignored), the rest what
``send_notification()`` publishes, so a notification reaches too many
listeners, too few, or arrives other than as sent.  ``notify-dotted-topic-cut``
only shows on topics named as operators name theirs, in
:mod:`driver_conformance.scenarios.content`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import oslo_messaging

from driver_conformance.broken._registry import _Gate, _target, variant
from driver_conformance.broken.wrappers import WrappedDriver, WrappedListener, WrappedPollAdapter


@variant("pools-ignored", "notify-listen.pool.one-copy-per-pool",
         "the pool argument is ignored: all pools share one subscription")
class PoolsIgnored(WrappedDriver):
    """``listen_for_notifications(pool=p)`` subscribes as if no pool were given.

    Every listener, whatever its pool, then competes on the one shared
    subscription: each notification reaches one listener in total instead
    of one per pool.
    """

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        listener = super().listen_for_notifications(targets_and_priorities, None, batch_size,
                                                    batch_timeout)
        listener.info.pool = pool
        return listener


_POOL_OWNERS = _Gate()


@variant("pool-spans-topics", "notify-listen.pool.per-target",
         "one subscription per pool name: a pool's listeners on other topics share it")
class PoolSpansTopics(WrappedDriver):
    """A pool's subscription is named after the pool alone, whatever the topics.

    This is one queue named after the pool and bound to every topic any of
    its listeners asked for: what is sent to one topic is handed to the
    pool's first consumer (which holds the queue, as a consumer with
    unlimited prefetch does), even when that listener is on another topic.
    Members on the same targets share as before.
    """

    def _key(self, listener: WrappedListener | WrappedPollAdapter) -> tuple[str, str] | None:
        info = listener.info
        if info.kind != "notifications" or not info.pool:
            return None
        return (self.vhost, info.pool)

    def on_listener_start(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        super().on_listener_start(listener)
        if (key := self._key(listener)) is not None:
            _POOL_OWNERS.add(key, listener)

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        if (key := self._key(listener)) is not None:
            _POOL_OWNERS.remove(key, listener)
        super().on_listener_stop(listener)

    def on_deliver(self, listener: WrappedListener | WrappedPollAdapter,
                   batch: list[Any]) -> None:
        key = self._key(listener)
        owner = _POOL_OWNERS.first(key) if key is not None else None
        if owner is None or _pairs(owner) == _pairs(listener):
            super().on_deliver(listener, batch)
        else:
            super().on_deliver(owner, batch)


def _pairs(listener: WrappedListener | WrappedPollAdapter) -> set[tuple[Any, ...]]:
    return {(t.exchange, t.topic, p) for t, p in listener.info.targets}


_LIVE_NOTIFICATION_LISTENERS = _Gate()


@variant("no-store-and-forward", "notify.store-and-forward.subscriber-absent",
         "a notification published while no listener runs is dropped")
class NoStoreAndForward(WrappedDriver):
    """``send_notification`` drops the message unless a listener is running on its address.

    This is a driver publishing to a broadcast address with no queue
    declared for absent subscribers (a plain pub/sub topic): whoever is not
    consuming at that moment never gets the notification.  The publish itself
    still goes to the backend (to an address nobody subscribes to, where the
    reference then holds it unseen), so an outage or a retry limit acts on it as
    on any other: the variant breaks storing, and nothing else.
    """

    def _key(self, target: Any, topic: str) -> tuple[str, str, str]:
        return (self.vhost, self.exchange_of(target), topic)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        if _LIVE_NOTIFICATION_LISTENERS.first(self._key(target, target.topic)) is None:
            target = target(topic=f"{target.topic}.unsubscribed-{uuid.uuid4().hex}")
        return super().send_notification(target, ctxt, message, version, retry)

    def _keys(self, listener: WrappedListener | WrappedPollAdapter) -> list[Any]:
        if listener.info.kind != "notifications":
            return []
        return [self._key(t, f"{t.topic}.{p}") for t, p in listener.info.targets]

    def on_listener_start(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        super().on_listener_start(listener)
        for key in self._keys(listener):
            _LIVE_NOTIFICATION_LISTENERS.add(key, listener)

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        for key in self._keys(listener):
            _LIVE_NOTIFICATION_LISTENERS.remove(key, listener)
        super().on_listener_stop(listener)


@variant("consumes-before-start", "listener.start.nothing-taken-before-start",
         "a notification listener consumes from listen_for_notifications(), before start()")
class ConsumesBeforeStart(WrappedDriver):
    """A notification listener starts consuming when it is made, not when started.

    What reaches it before ``start()`` has no callback to go to and is
    dropped unacknowledged, so a listener that is never started holds on to
    its share of the subscription and the next listener misses it.
    """

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        listener = super().listen_for_notifications(targets_and_priorities, pool, batch_size,
                                                    batch_timeout)
        listener.state["early"] = True
        listener.really_start()
        return listener

    def on_listener_start(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        if not listener.state.get("early"):
            super().on_listener_start(listener)


PRIORITIES = ("audit", "debug", "info", "warn", "warning", "error", "critical", "sample")


@variant("priority-ignored", "notify-listen.address.topic-priority",
         "a notification listener receives every priority of its topics")
class PriorityIgnored(WrappedDriver):
    """``listen_for_notifications`` subscribes to every priority of each topic it is given.

    A driver that subscribes by topic with a wildcard for the priority
    (``topic.*``) delivers warnings to a listener that asked for errors only.
    """

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        pairs = list(targets_and_priorities)
        seen = {(t.exchange, t.topic) for t, _ in pairs}
        wide = list(pairs)
        for exchange, topic in sorted(seen, key=str):
            target = oslo_messaging.Target(exchange=exchange, topic=topic)
            wide += [(target, p) for p in PRIORITIES
                     if not any(t.topic == topic and t.exchange == exchange and q == p
                                for t, q in pairs)]
        listener = super().listen_for_notifications(wide, pool, batch_size, batch_timeout)
        listener.info.targets = pairs
        return listener


@variant("notify-to-every-listener", "notify.delivery.single-copy",
         "every pool-less notification listener gets its own copy")
class NotifyToEveryListener(WrappedDriver):
    """Each pool-less notification listener gets a private subscription.

    A driver that gives every listener its own queue bound to the topic
    (instead of one shared queue) copies each notification to all of them.
    """

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        private = pool or f"private-{uuid.uuid4().hex}"
        listener = super().listen_for_notifications(targets_and_priorities, private,
                                                    batch_size, batch_timeout)
        listener.info.pool = pool
        return listener


@variant("notify-exchange-ignored", "notify.address.exchange-and-topic",
         "send_notification() publishes to the default exchange whatever the target says")
class NotifyExchangeIgnored(WrappedDriver):
    """``send_notification`` drops ``target.exchange``.

    A notifier path that only looks at the topic (the exchange comes from
    configuration) sends every notification to the default exchange, where
    listeners of the named exchange never see it.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(_target(target, exchange=None), ctxt, message,
                                         version, retry)


@variant("notify-rpc-addressing", "notify.address.server-fanout-ignored",
         "send_notification() to a target with a server or fanout goes by send()'s addressing")
class NotifyRpcAddressing(WrappedDriver):
    """A notification target's ``server`` or ``fanout`` routes it as an RPC cast would.

    A driver sharing one publish path between ``send`` and ``send_notification``
    builds the topic.server address, or the fanout exchange, from the target;
    notification listeners subscribe to neither, so the notification is lost.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        if target.server or target.fanout:
            return super().send(target, ctxt, message, retry=retry)
        return super().send_notification(target, ctxt, message, version, retry)


@variant("notify-dotted-topic-cut", "notify.address.exchange-and-topic",
         "send_notification() keeps only the first dotted segment of the topic")
class NotifyDottedTopicCut(WrappedDriver):
    """``send_notification`` to ``a.b.info`` publishes to ``a.info``.

    This is the driver that splits the Notifier's ``<topic>.<priority>`` address at its
    dots and keeps the first field as the topic and the last as the priority: right for
    ``notifications.info``, wrong for any topic with a dot of its own, whose listeners
    (subscribed to the whole topic) never see the notification.  The kit's own topics
    have no dots, so only names shaped like an operator's show it.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        fields = (target.topic or "").split(".")
        if len(fields) > 2:
            target = _target(target, topic=f"{fields[0]}.{fields[-1]}")
        return super().send_notification(target, ctxt, message, version, retry)


@variant("notify-server-honoured", "notify-listen.address.server-fanout-ignored",
         "listen_for_notifications() uses target.server as a private subscription")
class NotifyServerHonoured(WrappedDriver):
    """A notification target's ``server`` gives the listener its own subscription.

    Reusing the RPC addressing code for notifications makes ``server``
    meaningful where it must be ignored: two listeners that differ only in
    their server each receive a copy.
    """

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        pairs = list(targets_and_priorities)
        servers = [t.server for t, _ in pairs if t.server]
        private = pool or (f"server-{servers[0]}" if servers else None)
        listener = super().listen_for_notifications(pairs, private, batch_size, batch_timeout)
        listener.info.pool = pool
        return listener


@variant("envelope-never", "notify.envelope.by-version",
         "send_notification ignores version: 2.0 is stored bare, without the envelope")
class EnvelopeNever(WrappedDriver):
    """Every notification is stored bare, whatever ``version`` says.

    oslo's fake driver does this; its listeners cannot tell, but a consumer
    reading the backend for the 2.0 envelope (another driver, a tool that
    reads oslo.version) finds none.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(target, ctxt, message, 1.0, retry)


@variant("envelope-always", "notify.envelope.by-version",
         "send_notification envelopes every version, 1.0 included")
class EnvelopeAlways(WrappedDriver):
    """Every notification is stored in the 2.0 envelope, a 1.0 one included.

    Its own listeners unwrap both, so only the stored form shows that a
    consumer expecting the bare 1.0 message gets the envelope instead.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(target, ctxt, message, 2.0, retry)


@variant("notify-envelope-leaked", "notify.envelope.transparent",
         "version 2.0 notifications arrive as the oslo envelope, not the message sent")
class NotifyEnvelopeLeaked(WrappedDriver):
    """A 2.0 notification is enveloped on the way out and never opened on the way in.

    The listener's ``.message`` is ``{"oslo.version": ..., "oslo.message": ...}``,
    which the notification dispatcher cannot read priority or payload from.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        if float(version) >= 2.0:
            message = {"oslo.version": "2.0", "oslo.message": json.dumps(message)}
            version = 1.0
        return super().send_notification(target, ctxt, message, version, retry)
