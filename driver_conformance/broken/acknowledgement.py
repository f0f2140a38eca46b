"""Broken acknowledge and requeue: settling a message does not take effect, or raises.

Mirrors :mod:`driver_conformance.scenarios.acknowledgement`.  Every variant
overrides ``on_acknowledge`` or ``on_requeue`` (and, for the stopped
listener, ``on_reply``): the hooks a delivered message's settling methods
pass through.
"""

from __future__ import annotations

from typing import Any

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import WrappedDriver, WrappedIncoming, WrappedRpcIncoming


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
