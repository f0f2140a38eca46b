"""Broken timeouts: the caller's timer and the heartbeats that keep a call alive.

Mirrors :mod:`driver_conformance.scenarios.timeouts`.  The variants lose
the caller's ``timeout``, the server side's ``client_timeout``, or make
``heartbeat()`` useless or raising; each is seen as a call ending at the
wrong time (or a server thread hit by an exception).
"""

from __future__ import annotations

from typing import Any

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import (
    ListenerLike,
    WrappedDriver,
    WrappedIncoming,
    WrappedRpcIncoming,
)


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
