"""Broken addressing: messages reach the wrong listeners.

Mirrors :mod:`driver_conformance.scenarios.addressing`.  Each variant here
drops or bends one part of the address a message is sent to or a listener
subscribes to (exchange, topic, server, the fanout flag), or how copies are
spread over a topic's listeners, which is what the addressing scenarios
observe: the exact set of listeners each message reached.  ``dotted-names-misrouted``
only shows on names shaped as services name theirs, in
:mod:`driver_conformance.scenarios.content`.
"""

from __future__ import annotations

from typing import Any

from driver_conformance.broken._registry import _Gate, _target, variant
from driver_conformance.broken.wrappers import (
    ListenerLike,
    WrappedDriver,
    WrappedIncoming,
    WrappedListener,
    WrappedPollAdapter,
)


@variant("fanout-to-one", "send.fanout.all-subscribers",
         "a fanout send reaches one subscriber of the topic, not all")
class FanoutToOne(WrappedDriver):
    """The fanout flag is dropped, so the message goes to the shared topic queue.

    A driver that builds the address from exchange and topic and forgets the
    fanout exchange does exactly this: every fanout becomes a plain cast,
    delivered once, to whichever listener is next.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if target.fanout:
            target = _target(target, fanout=None, server=None)
        return super().send(target, ctxt, message, **kwargs)


@variant("topic-to-all", "send.one-of-many.single-copy",
         "a cast to a shared topic is copied to every subscriber")
class TopicToAll(WrappedDriver):
    """A server-less, non-fanout cast is published as a fanout.

    This is the driver that binds every listener's own queue to the topic
    (a broadcast exchange) instead of sharing one queue between them: each
    listener receives its own copy where exactly one copy is allowed.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if not kwargs.get("wait_for_reply") and not target.server and not target.fanout:
            target = _target(target, fanout=True)
        return super().send(target, ctxt, message, **kwargs)


@variant("server-ignored", "send.address.topic-exchange-server",
         "send() builds the address from exchange and topic only, dropping the server")
class ServerIgnored(WrappedDriver):
    """``target.server`` is left out of the address a message is sent to.

    A message for one server then goes to the topic's shared queue, where
    any server of the topic may take it: with two servers and balanced
    delivery, about every other message meant for one server is handled by
    the other.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if target.server:
            target = _target(target, server=None)
        return super().send(target, ctxt, message, **kwargs)


@variant("dotted-names-misrouted", "send.address.topic-exchange-server",
         "send() writes the address as '<topic>.<server>' and reads it back at its last dot")
class DottedNamesMisrouted(WrappedDriver):
    """A cast goes to the address its flat ``<topic>.<server>`` form splits into at the
    last dot.

    This is the driver that keeps topic and server addresses in one flat namespace
    and recovers the parts by splitting at the last dot: right for the kit's dot-free
    names, wrong for a server named by its host name (``compute-01.example.org`` reads
    as server ``org`` of topic ``<topic>.compute-01.example``), and for neutron's
    per-host topic ``q-agent-notifier-port-update.compute-01``, which reads as a server
    address.  Listeners subscribe correctly, so only names with dots go astray.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if not target.fanout:
            flat = f"{target.topic}.{target.server}" if target.server else target.topic
            topic, dot, server = (flat or "").rpartition(".")
            if dot:
                target = _target(target, topic=topic, server=server)
        return super().send(target, ctxt, message, **kwargs)


@variant("listen-server-ignored", "listen.address.exchange-topic-server",
         "listen() subscribes to the topic but not to the target's server address")
class ListenServerIgnored(WrappedDriver):
    """``listen(target)`` ignores ``target.server``: no subscription to the server address.

    The listener still gets topic casts and fanouts, so it looks alive, but
    messages sent to its server go nowhere (no queue is bound to that
    address, and a broker drops what no queue takes).
    """

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        listener = super().listen(_target(target, server=None), batch_size, batch_timeout)
        listener.info.targets = [(target, None)]
        return listener


@variant("default-exchange-ignored", "driver.init.default-exchange",
         "a target without exchange means a hard-coded 'openstack' exchange, "
         "not default_exchange")
class DefaultExchangeIgnored(WrappedDriver):
    """The driver ignores the ``default_exchange`` it was built with.

    Targets without an exchange use a fixed ``openstack`` exchange, the
    oslo.messaging default for ``control_exchange``, in all four directions;
    a target naming the configured exchange explicitly no longer meets one
    that leaves it out.
    """

    FIXED = "openstack"

    def _fix(self, target: Any) -> Any:
        return target if target.exchange else _target(target, exchange=self.FIXED)

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        return super().send(self._fix(target), ctxt, message, **kwargs)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(self._fix(target), ctxt, message, version, retry)

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        return super().listen(self._fix(target), batch_size, batch_timeout)

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        pairs = [(self._fix(t), p) for t, p in targets_and_priorities]
        return super().listen_for_notifications(pairs, pool, batch_size, batch_timeout)


_SHARED_KEY = "_broken_shared_cast"


_TOPIC_OWNERS = _Gate()


@variant("unbalanced-delivery", "send.one-of-many.balanced",
         "every cast to a shared topic goes to the topic's first listener, busy or not")
class UnbalancedDelivery(WrappedDriver):
    """Messages on a shared topic all go to the first listener that subscribed to it.

    A consumer with unlimited prefetch hoards the queue: while it is busy,
    messages pile up in its buffer instead of going to the idle listeners.
    The wrapper marks shared casts on the way out (the mark is removed
    before delivery) and hands them to the topic's first running listener.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if (not kwargs.get("wait_for_reply") and not target.server and not target.fanout
                and isinstance(ctxt, dict)):
            ctxt = dict(ctxt, **{_SHARED_KEY: True})
        return super().send(target, ctxt, message, **kwargs)

    def _key(self, listener: ListenerLike) -> tuple[str, str, str]:
        target = listener.info.target
        return (self.vhost, self.exchange_of(target), target.topic)

    def on_listener_start(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        super().on_listener_start(listener)
        if listener.info.kind == "rpc":
            _TOPIC_OWNERS.add(self._key(listener), listener)

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        if listener.info.kind == "rpc":
            _TOPIC_OWNERS.remove(self._key(listener), listener)
        super().on_listener_stop(listener)

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        if message.take_marker(_SHARED_KEY) is not None:
            message.overrides["shared"] = True
        return message

    def on_deliver(self, listener: WrappedListener | WrappedPollAdapter,
                   batch: list[Any]) -> None:
        owner = _TOPIC_OWNERS.first(self._key(listener)) if listener.info.kind == "rpc" else None
        shared = [m for m in batch if m.overrides.get("shared")]
        if owner is None or owner is listener or not shared:
            super().on_deliver(listener, batch)
            return
        own = [m for m in batch if not m.overrides.get("shared")]
        if own:
            super().on_deliver(listener, own)
        super().on_deliver(owner, shared)
