"""Broken notifications: topic.priority addressing, single copy, pools, store-and-forward.

Mirrors :mod:`driver_conformance.scenarios.notifications`.  Most variants
change what ``listen_for_notifications()`` subscribes to (a pool, a
priority, a server that must be ignored), the rest what
``send_notification()`` publishes, so a notification reaches too many
listeners, too few, or arrives other than as sent.
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


_LIVE_NOTIFICATION_LISTENERS = _Gate()


@variant("no-store-and-forward", "notify.store-and-forward.subscriber-absent",
         "a notification published while no listener runs is dropped")
class NoStoreAndForward(WrappedDriver):
    """``send_notification`` drops the message unless a listener is running on its address.

    This is a driver publishing to a broadcast address with no queue
    declared for absent subscribers (a plain pub/sub topic): whoever is not
    consuming at that moment never gets the notification.
    """

    def _key(self, target: Any, topic: str) -> tuple[str, str, str]:
        return (self.vhost, self.exchange_of(target), topic)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        if _LIVE_NOTIFICATION_LISTENERS.first(self._key(target, target.topic)) is None:
            return None
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
