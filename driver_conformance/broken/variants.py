"""The broken variants: the reference driver with one clause of the contract broken.

Each variant is a :class:`~driver_conformance.broken.wrappers.WrappedDriver`
subclass overriding the one or two hooks its breakage needs, registered with
:func:`variant` under a name, the catalog clause it breaks and a one-line
description.  The class docstring says why the breakage is *faithful*: a
mistake a real driver makes (or the in-tree drivers made), not an arbitrary
sabotage, so that catching it says something about the scenarios.

A variant must break its clause and, as far as a wrapper allows, nothing
else a scenario of that clause needs to get to its assertion: the point is
that the suite fails *and names the clause*.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import oslo_messaging

from driver_conformance.adapter import Capabilities
from driver_conformance.broken.wrappers import (
    ListenerLike,
    ListenInfo,
    WrappedDriver,
    WrappedIncoming,
    WrappedListener,
    WrappedPollAdapter,
    WrappedPoller,
    WrappedRpcIncoming,
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One negative control: a wrapper breaking ``clause``."""

    name: str
    clause: str
    description: str
    wrapper: type[WrappedDriver]

    @property
    def adapter_name(self) -> str:
        return f"broken-{self.name}"


VARIANTS: list[Variant] = []


def variant(name: str, clause: str, description: str
            ) -> Callable[[type[WrappedDriver]], type[WrappedDriver]]:
    """Register the decorated wrapper class as the variant ``name`` breaking ``clause``."""

    def register(cls: type[WrappedDriver]) -> type[WrappedDriver]:
        if any(v.name == name for v in VARIANTS):
            raise ValueError(f"duplicate broken variant {name!r}")
        cls.variant_name = name
        VARIANTS.append(Variant(name, clause, description, cls))
        return cls

    return register


def select(patterns: list[str] | None = None) -> list[Variant]:
    """The variants whose name matches any of ``patterns`` (globs); all when none given."""
    if not patterns:
        return list(VARIANTS)
    return [v for v in VARIANTS if any(fnmatch.fnmatchcase(v.name, p) for p in patterns)]


def _target(target: Any, **changes: Any) -> oslo_messaging.Target:
    """A copy of ``target`` with ``changes`` (Target is mutable: never change the caller's)."""
    fields = {"exchange": target.exchange, "topic": target.topic, "server": target.server,
              "fanout": target.fanout, "namespace": target.namespace,
              "version": target.version}
    fields.update(changes)
    return oslo_messaging.Target(**fields)


class _Gate:
    """A small process-wide registry shared by every driver instance of one variant.

    Several variants need to know what other instances of the same (broken)
    driver do in this process: which listeners run, which objects were sent.
    A real driver would know it from its backend; a wrapper keeps it here.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[Any, list[Any]] = collections.defaultdict(list)

    def add(self, key: Any, item: Any) -> None:
        with self.lock:
            self.items[key].append(item)

    def remove(self, key: Any, item: Any) -> None:
        with self.lock:
            if item in self.items.get(key, []):
                self.items[key].remove(item)

    def first(self, key: Any) -> Any:
        with self.lock:
            found = self.items.get(key) or [None]
            return found[0]


def _pause(seconds: float) -> None:
    """A short wait inside a driver's own retry loop (a driver may wait; a scenario may not)."""
    threading.Event().wait(seconds)


# ======================================================================================
# Addressing
# ======================================================================================


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


# ======================================================================================
# Replies
# ======================================================================================


@variant("replies-misrouted", "send.wait-for-reply.correlated",
         "replies are matched to requests by arrival order, not by correlation id")
class RepliesMisrouted(WrappedDriver):
    """Each reply goes to the oldest request of the listener still waiting for one.

    A driver that correlates replies by position (one reply queue, answers
    assumed to come back in request order) is right as long as calls are
    answered one at a time, and wrong as soon as a server answers concurrent
    calls out of order: a caller then gets another caller's result.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        if isinstance(message, WrappedRpcIncoming):
            with self._lock:
                listener.state.setdefault("pending", []).append(message)
        return message

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        with self._lock:
            pending = message.listener.state.setdefault("pending", [])
            oldest = pending.pop(0) if pending else message
        oldest.inner.reply(reply=reply, failure=failure)
        message.replied = True


@variant("failures-not-rebuilt", "rpc-incoming.reply.failure-rebuilt",
         "a failure is sent back as an ordinary result string, not as an exception")
class FailuresNotRebuilt(WrappedDriver):
    """``reply(failure=...)`` sends ``"ExcType: message"`` as the result.

    A driver that serialises whatever it is given with ``str()`` instead of
    ``serialize_remote_exception`` does this: the caller's ``send()``
    returns a string where it should raise the remote exception.
    """

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        if failure is not None:
            exc = failure[1] if isinstance(failure, tuple) else failure
            reply, failure = f"{type(exc).__name__}: {exc}", None
        super().on_reply(message, reply, failure)


@variant("exmods-ignored", "driver.init.allowed-remote-exmods",
         "allowed_remote_exmods is ignored: every non-builtin failure becomes RemoteError")
class ExmodsIgnored(WrappedDriver):
    """The driver is built without the ``allowed_remote_exmods`` it was given.

    An exception from a whitelisted module then reaches the caller as a
    generic ``RemoteError`` instead of an instance of its own class, which
    is what happens when a driver drops the constructor argument.
    """

    @classmethod
    def inner_exmods(cls, allowed_remote_exmods: list[str]) -> list[str]:
        return []


@variant("not-rpc-incoming", "rpc-incoming.class.used-for-rpc",
         "messages of calls are plain IncomingMessage objects without reply()/heartbeat()")
class NotRpcIncoming(WrappedDriver):
    """Every delivered message is a plain ``IncomingMessage``, calls included.

    A driver with one message class for casts and notifications that forgot
    the RPC one: a server cannot answer a call.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        return WrappedIncoming(inner, listener)


@variant("reply-raises-twice", "rpc-incoming.reply.no-raise",
         "a second reply() to the same message raises instead of being ignored")
class ReplyRaisesTwice(WrappedDriver):
    """``reply()`` raises ``RuntimeError`` when the message was already answered.

    Guarding at-most-once replies with an exception (instead of a log line)
    is a natural mistake; the contract says reply() does not raise, because
    the server calling it has nobody to hand the exception to.
    """

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        if message.replied:
            raise RuntimeError(f"message {message.msg_id} was already answered")
        super().on_reply(message, reply, failure)


# ======================================================================================
# Timeouts and heartbeats
# ======================================================================================


@variant("timeout-ignored", "send.timeout.raises-messaging-timeout",
         "the caller's timeout is ignored; the driver's own 2.5 s timeout applies")
class TimeoutIgnored(WrappedDriver):
    """Every send waits for the driver's built-in 2.5 s instead of the caller's ``timeout``.

    Drivers that read a configured reply timeout and forget the per-call
    argument behave like this.  A real configured default is 60 s; 2.5 s is
    used so that the breakage shows within the kit's call bound (the
    scenario then sees a MessagingTimeout far later than asked for).
    """

    OWN_TIMEOUT = 2.5

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = self.OWN_TIMEOUT
        return super().send(target, ctxt, message, **kwargs)


@variant("wrong-exceptions", "send.errors.messaging-exception",
         "send() failures surface as builtin TimeoutError/ConnectionError, "
         "not MessagingException")
class WrongExceptions(WrappedDriver):
    """Timeouts become ``TimeoutError``, delivery failures ``ConnectionError``.

    This is the driver that lets its backend library's exceptions escape
    (socket timeouts, connection errors) instead of translating them into
    oslo.messaging's, so callers catching ``MessagingException`` miss them.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        try:
            return super().send(target, ctxt, message, **kwargs)
        except oslo_messaging.MessagingTimeout as exc:
            raise TimeoutError(str(exc)) from None
        except oslo_messaging.MessageDeliveryFailure as exc:
            raise ConnectionError(str(exc)) from None


@variant("heartbeats-dropped", "rpc-incoming.heartbeat.resets-caller-timer",
         "heartbeat() does nothing, so long calls hit call_monitor_timeout")
class HeartbeatsDropped(WrappedDriver):
    """``heartbeat()`` returns without sending anything.

    A driver that implements the abstract method as ``pass`` (it cannot
    raise, so nothing looks wrong) leaves a caller using
    ``call_monitor_timeout`` to time out on every call longer than it.
    """

    def on_heartbeat(self, message: WrappedRpcIncoming) -> None:
        return None


@variant("client-timeout-unset", "rpc-incoming.client-timeout.from-call-monitor",
         "delivered calls have client_timeout None whatever call_monitor_timeout was")
class ClientTimeoutUnset(WrappedDriver):
    """``client_timeout`` of every delivered message is None.

    A driver that does not carry ``call_monitor_timeout`` over to the server
    side: the RPC dispatcher then never heartbeats, and callers relying on
    the call monitor time out.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        message.overrides["client_timeout"] = None
        return message


# ======================================================================================
# Retry
# ======================================================================================


class _OwnRetryLoop(WrappedDriver):
    """Retries sends itself, one attempt of the wrapped driver at a time (``retry=0``)."""

    def _retrying(self, attempt: Callable[[], Any], retry: int | None,
                  timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            try:
                return attempt()
            except oslo_messaging.MessageDeliveryFailure:
                failures += 1
                if retry is not None and retry >= 0 and failures > retry:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise oslo_messaging.MessagingTimeout(
                        f"send timed out after {failures} attempt(s)") from None
                _pause(0.05)


@variant("duplicate-on-retry", "send.retry.no-duplicates",
         "a publish whose confirmation was lost is published again under a new id")
class DuplicateOnRetry(_OwnRetryLoop):
    """The driver's retry loop republishes a message whenever an attempt reports failure.

    Every attempt is a fresh publish (a new message id), so when the backend
    stored the message but its confirmation was lost, the retry stores a
    second copy: the classic at-least-once retry loop the contract forbids.
    Casts and notifications only; calls are sent as the reference sends them.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("wait_for_reply"):
            return super().send(target, ctxt, message, **kwargs)
        retry, timeout = kwargs.get("retry"), kwargs.get("timeout")
        once = dict(kwargs, retry=0)
        return self._retrying(lambda: WrappedDriver.send(self, target, ctxt, message, **once),
                              retry, timeout)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return self._retrying(
            lambda: WrappedDriver.send_notification(self, target, ctxt, message, version, 0),
            retry, None)


@variant("retry-ignored", "send.retry.bounded-delivery-failure",
         "retry=0 and retry=N are treated as unlimited retries")
class RetryIgnored(WrappedDriver):
    """``send()`` retries forever whatever ``retry`` says.

    A driver whose reconnect loop has no attempt counter: with the backend
    down, a caller asking for no retry (or N retries) blocks until the
    backend comes back instead of getting MessageDeliveryFailure.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        kwargs["retry"] = None
        return super().send(target, ctxt, message, **kwargs)


@variant("retry-overshoot", "send.retry.bounded-delivery-failure",
         "retry=N makes N + 3 retries before giving up")
class RetryOvershoot(WrappedDriver):
    """``send()`` gives up, as it should, but only after more attempts than allowed.

    An off-by-several attempt counter (counting reconnects and publishes
    separately, say): the caller still gets MessageDeliveryFailure, a little
    late, so only counting the attempts the backend saw can tell.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        retry = kwargs.get("retry")
        if retry is not None and retry >= 0:
            kwargs["retry"] = retry + 3
        return super().send(target, ctxt, message, **kwargs)


@variant("no-retry", "send.retry.unlimited",
         "send() never retries: retry=None fails at the first backend error")
class NoRetry(WrappedDriver):
    """``send()`` makes one attempt whatever ``retry`` says.

    A driver without a reconnect loop: any broker hiccup fails the send, even
    when the caller asked for unlimited retries.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        kwargs["retry"] = 0
        return super().send(target, ctxt, message, **kwargs)


@variant("notify-no-retry", "notify.retry.honoured",
         "send_notification() ignores retry and never retries")
class NotifyNoRetry(WrappedDriver):
    """``send_notification()`` makes one attempt whatever ``retry`` says.

    Notifications often take a separate code path in drivers, and the retry
    argument is easy to drop there: retry=-1 then fails during an outage
    instead of waiting for the backend.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(target, ctxt, message, version, 0)


# ======================================================================================
# Notifications
# ======================================================================================


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


@variant("pool-accepted-undeclared", "notify-listen.pool.unsupported-raises",
         "pools are declared unsupported, yet a pooled listen is accepted (and the pool ignored)")
class PoolAcceptedUndeclared(PoolsIgnored):
    """The adapter declares no pool support, but the driver does not refuse a pool.

    The contract requires ``NotImplementedError`` when pooling is not
    supported; a driver that silently ignores the pool instead makes every
    pool member compete with every other listener.
    """

    @classmethod
    def capabilities(cls, declared: Capabilities) -> Capabilities:
        return dataclasses.replace(declared, pools=False)


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


# ======================================================================================
# Acknowledgement and requeue
# ======================================================================================


@variant("requeue-dropped", "incoming.requeue.redelivers",
         "requeue() acknowledges the message (it is lost) although requeue is declared")
class RequeueDropped(WrappedDriver):
    """``requeue()`` settles the message as consumed; ``require_features(requeue=True)`` passes.

    A driver that declares requeue support but implements requeue as
    "reject without requeue" loses every message a server hands back.
    """

    def on_requeue(self, message: WrappedIncoming) -> None:
        message.inner.acknowledge()
        message.requeued = True


@variant("requeue-accepted-undeclared", "features.requeue.declared",
         "requeue is declared unsupported, yet require_features(requeue=True) does not raise")
class RequeueAcceptedUndeclared(WrappedDriver):
    """The adapter declares no requeue support; ``require_features`` does not refuse it.

    The declaration and the driver disagree, so a server asking for requeue
    is not told it will not get it.
    """

    @classmethod
    def capabilities(cls, declared: Capabilities) -> Capabilities:
        return dataclasses.replace(declared, requeue=False)


@variant("ack-raising", "incoming.acknowledge.no-raise",
         "acknowledge() raises when repeated or after the listener stopped")
class AckRaising(WrappedDriver):
    """``acknowledge()`` does its work, then raises on a repeated call or a stopped listener.

    Backend libraries raise on a closed channel or an unknown delivery tag;
    a driver that lets that through breaks servers that acknowledge late.
    """

    def on_acknowledge(self, message: WrappedIncoming) -> None:
        repeated = message.acknowledged
        super().on_acknowledge(message)
        if repeated or message.listener.stopped:
            raise RuntimeError(f"channel closed: cannot acknowledge {message.msg_id}")


@variant("ack-ignored", "incoming.acknowledge.notifies-backend",
         "acknowledge() never reaches the backend, so messages come back after a restart")
class AckIgnored(WrappedDriver):
    """``acknowledge()`` is a no-op.

    Messages stay unacknowledged on the backend and are delivered again to
    the next listener on the same address, once the first one goes away.
    """

    def on_acknowledge(self, message: WrappedIncoming) -> None:
        message.acknowledged = True


@variant("settle-dropped-after-stop", "incoming.methods.after-listener-stop",
         "acknowledge(), requeue() and reply() do nothing once the listener is stopped")
class SettleDroppedAfterStop(WrappedDriver):
    """Messages of a stopped listener cannot be acknowledged, requeued or answered.

    A driver that tears its channel down in ``stop()`` instead of
    ``cleanup()``: the server's in-flight work, which finishes after
    ``stop()``, is lost (replies never sent, acknowledged messages redelivered).
    """

    def on_acknowledge(self, message: WrappedIncoming) -> None:
        if not message.listener.stopped:
            super().on_acknowledge(message)

    def on_requeue(self, message: WrappedIncoming) -> None:
        if not message.listener.stopped:
            super().on_requeue(message)

    def on_reply(self, message: WrappedRpcIncoming, reply: Any, failure: Any) -> None:
        if not message.listener.stopped:
            super().on_reply(message, reply, failure)


@variant("requeue-raises", "incoming.requeue.no-raise",
         "requeue() raises when repeated or after the listener stopped")
class RequeueRaises(WrappedDriver):
    """``requeue()`` does its work, then raises on a repeated call or a stopped listener.

    The requeue twin of ``ack-raising``: the contract says requeue() does not
    raise, also on drivers without requeue support.
    """

    def on_requeue(self, message: WrappedIncoming) -> None:
        repeated = message.requeued
        super().on_requeue(message)
        if repeated or message.listener.stopped:
            raise RuntimeError(f"channel closed: cannot requeue {message.msg_id}")


@variant("heartbeat-raises", "rpc-incoming.heartbeat.no-raise",
         "heartbeat() raises after the reply was sent or the listener stopped")
class HeartbeatRaises(WrappedDriver):
    """``heartbeat()`` raises once the call was answered or its listener stopped.

    A driver that treats a late heartbeat as a programming error; the RPC
    server's heartbeat thread may well fire once after the reply.
    """

    def on_heartbeat(self, message: WrappedRpcIncoming) -> None:
        if message.replied or message.listener.stopped:
            raise RuntimeError(f"call {message.msg_id} is over: no heartbeat possible")
        super().on_heartbeat(message)


# ======================================================================================
# Incoming messages
# ======================================================================================


@variant("msg-id-missing", "incoming.attributes.base-initialised",
         "delivered messages have msg_id None (IncomingMessage.__init__ not honoured)")
class MsgIdMissing(WrappedDriver):
    """``msg_id`` of every delivered message is None.

    This is the driver whose message class skips ``IncomingMessage.__init__``
    and sets only ctxt and message; the RPC server logs msg_id.
    """

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        message.overrides["msg_id"] = None
        return message


_SENT_OBJECTS: collections.OrderedDict[str, tuple[Any, Any]] = collections.OrderedDict()
_SENT_LOCK = threading.Lock()
_SENT_KEY = "_broken_shared_ref"


@variant("messages-shared", "incoming.content.copied-not-shared",
         "the listener receives the sender's very ctxt and message objects")
class MessagesShared(WrappedDriver):
    """Delivered ``ctxt`` and ``message`` are the objects the sender passed.

    An in-process driver that hands references over instead of serialising
    (oslo.messaging's old fake driver had to add a deepcopy for this): later
    mutations by either side show on the other.
    """

    def _remember(self, ctxt: Any, message: Any) -> Any:
        if not isinstance(ctxt, dict):
            return ctxt
        ref = uuid.uuid4().hex
        with _SENT_LOCK:
            _SENT_OBJECTS[ref] = (ctxt, message)
            while len(_SENT_OBJECTS) > 10000:
                _SENT_OBJECTS.popitem(last=False)
        return dict(ctxt, **{_SENT_KEY: ref})

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        return super().send(target, self._remember(ctxt, message), message, **kwargs)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(target, self._remember(ctxt, message), message,
                                         version, retry)

    def wrap_incoming(self, inner: Any, listener: ListenerLike) -> WrappedIncoming:
        message = super().wrap_incoming(inner, listener)
        ctxt = inner.ctxt
        if isinstance(ctxt, dict) and _SENT_KEY in ctxt:
            with _SENT_LOCK:
                sent = _SENT_OBJECTS.get(ctxt[_SENT_KEY])
            if sent is not None:
                message.overrides["ctxt"], message.overrides["message"] = sent
            else:
                message.overrides["ctxt"] = {k: v for k, v in ctxt.items() if k != _SENT_KEY}
        return message


# ======================================================================================
# Listeners (callback style)
# ======================================================================================


@variant("callback-after-stop", "listener.stop.no-callback-after",
         "stop() returns at once but the listener keeps calling back until cleanup()")
class CallbackAfterStop(WrappedDriver):
    """``stop()`` only flags the listener; the consumer runs on until ``cleanup()``.

    Drivers that stop consuming lazily (a flag checked by the consumer
    thread at its next turn, or a cancel deferred to cleanup) call the
    callback after ``stop()`` returned, while the server is already shutting
    its executor down.
    """

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        return None


@variant("batches-ignored", "listener.batch.at-most-batch-size",
         "batch_size is ignored: the callback gets everything available at once")
class BatchesIgnored(WrappedDriver):
    """A listener asked for batches of N gathers up to 100 messages per callback.

    A driver that uses its prefetch count as the batch size hands a batch
    notification listener more than it asked for in one call.
    """

    BIG = 100

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        return super().listen(target, self.BIG if batch_size > 1 else batch_size,
                              batch_timeout)

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        return super().listen_for_notifications(
            targets_and_priorities, pool, self.BIG if batch_size > 1 else batch_size,
            batch_timeout)


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
        ctxt = inner.ctxt
        if isinstance(ctxt, dict) and _SHARED_KEY in ctxt:
            message.overrides["ctxt"] = {k: v for k, v in ctxt.items() if k != _SHARED_KEY}
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


@variant("lazy-subscribe", "listen.blocks.until-subscribed",
         "listen() returns before subscribing; the subscription is made by start()")
class LazySubscribe(WrappedDriver):
    """The subscription is made in ``start()``, not in ``listen()``.

    A message sent between ``listen()`` and ``start()`` finds no queue bound
    to its address and is dropped; the contract makes ``listen()`` block
    until the subscription exists precisely so that it is kept.
    """

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        listener = WrappedListener(
            self, None, batch_size, batch_timeout, ListenInfo("rpc", [(target, None)]),
            make_inner=lambda: self.inner.listen(target, batch_size, batch_timeout))
        with self._lock:
            self._listeners.append(listener)
        return listener


# ======================================================================================
# Lifecycle
# ======================================================================================


@variant("cleanup-leaking-threads", "driver.cleanup.blocks",
         "cleanup() returns at once and tears the driver down in a background thread")
class CleanupLeakingThreads(WrappedDriver):
    """``cleanup()`` hands the real cleanup to a lingering non-daemon thread and returns.

    Drivers that close connections asynchronously (a reaper thread, a
    ``close()`` that only schedules) return from cleanup while their threads
    still run; the reaper waits a moment before working, as such reapers do.
    """

    def on_cleanup(self) -> None:
        def reap() -> None:
            _pause(1.0)
            self.inner.cleanup()

        threading.Thread(target=reap, name=f"reference-reaper-{uuid.uuid4().hex[:6]}",
                         daemon=False).start()


@variant("cast-async-handoff", "send.cast.returns-after-handoff",
         "a cast returns before the message is handed to the backend")
class CastAsyncHandoff(WrappedDriver):
    """Casts are queued for a background publisher and ``send()`` returns at once.

    A driver with a send buffer that ``cleanup()`` does not flush: a cast
    made right before cleanup is silently lost.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("wait_for_reply"):
            return super().send(target, ctxt, message, **kwargs)

        def publish() -> None:
            _pause(0.3)
            try:
                WrappedDriver.send(self, target, ctxt, message, **kwargs)
            except Exception:  # the buffer is gone with the driver; nobody hears of it
                pass

        threading.Thread(target=publish, name="broken-publisher", daemon=True).start()
        return None


@variant("notify-async-handoff", "notify.send.blocks-until-accepted",
         "send_notification() returns before the backend has the notification")
class NotifyAsyncHandoff(WrappedDriver):
    """Notifications are queued for a background publisher; ``cleanup()`` does not flush it.

    The notification twin of ``cast-async-handoff``: a service that
    notifies and then shuts down loses its last notifications.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        def publish() -> None:
            _pause(0.3)
            try:
                WrappedDriver.send_notification(self, target, ctxt, message, version, retry)
            except Exception:
                pass

        threading.Thread(target=publish, name="broken-notifier", daemon=True).start()
        return None


# ======================================================================================
# Poll-style listeners
# ======================================================================================


@variant("poll-batch-timer-from-entry", "poll.batch-timeout.from-first-message",
         "poll()'s batch timer starts when poll() is entered, as batch_poll_helper does")
class PollBatchTimerFromEntry(WrappedDriver):
    """``poll`` collects one message at a time until ``batch_timeout`` after poll *entry*.

    This is exactly oslo.messaging's ``batch_poll_helper``, used by every
    in-tree driver: ``timeout = batch_timeout or timeout``, so a first
    message arriving late in the window is returned at the window's end
    instead of ``batch_timeout`` after it arrived.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        limit = batch_timeout or timeout
        deadline = None if limit is None else time.monotonic() + limit
        got: list[Any] = []
        while len(got) < batch_size:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            one = poller.inner.poll(timeout=left, batch_size=1)
            if not one:
                break
            got += one
        return poller.wrap(got)


@variant("poll-batch-not-waited", "poll.batch-size.waits-for-full-batch",
         "poll() returns as soon as one message is there, without waiting for the batch")
class PollBatchNotWaited(WrappedDriver):
    """``poll(batch_size>1)`` returns whatever is available once the first message came.

    A driver that treats batch_size as a maximum and never waits for more:
    batch notification listeners get batches of one under light load.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=timeout, batch_size=batch_size,
                                             batch_timeout=0))


@variant("poll-over-batch-size", "poll.returns.up-to-batch-size",
         "poll() returns up to batch_size + 3 messages")
class PollOverBatchSize(WrappedDriver):
    """``poll`` fetches ``batch_size + 3`` messages per call.

    A driver that adds its prefetch to the batch (or fetches a fixed number)
    returns more messages than the caller can take in one batch.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=timeout, batch_size=batch_size + 3,
                                             batch_timeout=batch_timeout))


@variant("poll-timeout-ignored", "poll.timeout.returns-empty",
         "poll(timeout=T) does not wait: it returns [] at once when nothing is there")
class PollTimeoutIgnored(WrappedDriver):
    """A finite ``timeout`` is treated as 0: poll never blocks waiting for a message.

    A non-blocking ``basic_get``-style poll: callers expecting to wait up to
    ``timeout`` spin instead.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=0.0 if timeout is not None else None,
                                             batch_size=batch_size,
                                             batch_timeout=batch_timeout))


@variant("poll-stop-not-unblocking", "poll.stop.unblocks",
         "stop() does not wake a poll() in progress (only cleanup() does)")
class PollStopNotUnblocking(WrappedDriver):
    """``stop()`` only sets a flag; a ``poll(timeout=None)`` in progress stays blocked.

    A poller that checks its stop flag between receives but never interrupts
    the receive itself: the server's stop() then waits forever for its
    polling thread.  ``cleanup()`` does interrupt it, so nothing leaks.
    """

    def on_poller_stop(self, poller: WrappedPoller) -> None:
        return None


@variant("poll-raises-after-stop", "poll.errors.no-raise",
         "poll() raises once the listener is stopped or cleaned up")
class PollRaisesAfterStop(WrappedDriver):
    """``poll()`` on a stopped poller raises ``RuntimeError`` instead of returning.

    Backend consumers raise on a cancelled consumer; a driver that does not
    catch it breaks the contract "poll does not raise".  The poll thread of
    the adapter is spared (it would retry forever, once a second, and never
    let ``stop()`` return), so only direct callers see the exception.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        spared = threading.current_thread() is poller.adapter_thread
        if poller.stopped and not spared:
            raise RuntimeError("poll() on a stopped listener: consumer cancelled")
        return super().on_poll(poller, timeout, batch_size, batch_timeout)

