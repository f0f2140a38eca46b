"""Incoming messages: what a listener hands to the server, and how it answers.

One class serves RPC requests and notifications alike; a message without a
reply address (a cast, a fanout, a notification) ignores ``reply`` and
``heartbeat``.  None of ``acknowledge``, ``requeue``, ``reply`` and
``heartbeat`` raises: the contract says failures are logged, because the
server calling them has nobody to hand an exception to.

Replies are at most once: the first ``reply()`` wins, later ones are logged
and ignored.  A reply is retried until the caller's deadline (carried in the
request) has passed, since a reply nobody waits for is useless; a heartbeat is
tried once, since the next one follows shortly.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any

from oslo_messaging._drivers import base, common
from oslo_serialization import jsonutils

from driver_conformance.reference.broker import (
    BrokerError,
    Delivery,
    Message,
    MessageKind,
)
from driver_conformance.reference.link import Link

LOG = logging.getLogger(__name__)

#: How long a reply is retried when the caller gave no timeout, in seconds.
REPLY_PATIENCE = 60.0

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


# -- the wire: JSON text, one encode and one decode per hop ----------------------------
#
# Every body crosses the broker as JSON text, as on a real wire: the receiver
# decodes its own copy (nothing shared with the sender), and what a real
# driver could not send is refused.  Two requests of speed, same semantics:
#
# * Encoding uses json's C encoder built once, not ``JSONEncoder.encode``,
#   which rebuilds it per call and keeps a dict of every container to detect
#   cycles.  A cycle still fails: it exhausts the recursion limit, reported
#   as the ValueError ``jsonutils.dumps`` raises.  ``to_primitive`` converts
#   what JSON cannot (datetimes, sets, ...) as jsonutils does, and raises for
#   what cannot be converted at all.
# * Decoding uses ``raw_decode``: the text is ours, so the whitespace scans
#   ``json.loads`` adds around it find nothing.


def _c_encoder() -> Any:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain encoder, same output
        return None
    return make(None, jsonutils.to_primitive, json.encoder.encode_basestring_ascii, None,
                ": ", ", ", False, False, True)


_C_ENCODE = _c_encoder()
_PLAIN_ENCODE = json.JSONEncoder(default=jsonutils.to_primitive).encode


def to_wire(data: Any) -> str:
    """``data`` as JSON text, exactly as ``jsonutils.dumps`` writes it."""
    if _C_ENCODE is None:
        return _PLAIN_ENCODE(data)
    try:
        return "".join(_C_ENCODE(data, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep)") from None


_raw_decode = json.JSONDecoder().raw_decode


def from_wire(text: str) -> Any:
    """The receiver's own copy of what :func:`to_wire` wrote."""
    return _raw_decode(text)[0]


def encode_request(ctxt: Any, message: Any, *, envelope: bool = False) -> str:
    """The stored form of a request or notification: JSON, optionally enveloped.

    Serialising here copies the message (nothing is shared by reference with
    the consumer) and rejects what a real driver could not send.
    """
    # clause: incoming.content.ctxt-and-message, incoming.content.ctxt-no-added-keys,
    # clause: incoming.content.copied-not-shared
    wire: dict[str, Any] = {"ctxt": ctxt, "message": message}
    if envelope:
        wire = common.serialize_msg(wire)
    return to_wire(wire)


def decode_request(body: str, *, envelope: bool = False) -> tuple[Any, Any]:
    """Inverse of :func:`encode_request`; with ``envelope``, accepts both forms."""
    wire = from_wire(body)
    if envelope:  # clause: notify.envelope.transparent
        wire = common.deserialize_msg(wire)
    return wire["ctxt"], wire["message"]


def encode_reply(reply: Any, failure: ExcInfo | BaseException | None) -> str:
    """The stored form of a reply: the result, or the failure as oslo serialises it."""
    if failure is None:
        return to_wire({"result": reply, "failure": None})
    # clause: rpc-incoming.reply.failure-rebuilt, rpc-incoming.reply.failure-is-exc-info
    # clause: rpc-incoming.reply.failure-keeps-traceback (oslo's form carries the traceback)
    if isinstance(failure, BaseException):
        failure = (type(failure), failure, failure.__traceback__)
    return to_wire({"result": None, "failure": common.serialize_remote_exception(failure)})


class ReferenceIncomingMessage(base.RpcIncomingMessage):
    """A message taken from the broker by a listener.

    Every method may be called from any thread, concurrently for different
    messages (the server's workers and watchdogs do), so each takes only the
    broker lock or this message's own lock.
    """

    # clause: rpc-incoming.class.used-for-rpc, incoming.methods.thread-safe

    def __init__(self, link: Link, delivery: Delivery, ctxt: Any, message: Any) -> None:
        stored = delivery.message
        # clause: incoming.attributes.base-initialised
        super().__init__(ctxt, message, msg_id=str(stored.id))
        # clause: rpc-incoming.client-timeout.from-call-monitor
        self.client_timeout = stored.call_monitor_timeout
        self._link = link
        self._delivery = delivery
        # The first reply takes this lock and never gives it back: at most once.
        self._answered = threading.Lock()

    @property
    def redelivered(self) -> bool:
        return self._delivery.message.redelivered

    def acknowledge(self) -> None:
        self._settle(requeue=False)

    def requeue(self) -> None:
        self._settle(requeue=True)

    def _settle(self, *, requeue: bool) -> None:
        # clause: incoming.acknowledge.no-raise, incoming.acknowledge.log-on-failure
        # clause: incoming.requeue.no-raise, incoming.requeue.log-on-failure
        # clause: incoming.methods.after-listener-stop (the broker still settles it)
        action = "requeue" if requeue else "acknowledge"
        try:
            self._link.broker.settle(self._delivery, requeue=requeue)
        except BrokerError as exc:
            LOG.warning("reference: cannot %s message %s: %s", action, self.msg_id, exc)
        except Exception:
            LOG.exception("reference: cannot %s message %s", action, self.msg_id)

    def reply(self, reply: Any = None, failure: ExcInfo | BaseException | None = None) -> None:
        # clause: rpc-incoming.reply.after-acknowledge (settling does not matter here)
        stored = self._delivery.message
        if stored.reply_to is None:  # clause: rpc-incoming.reply.cast-no-op
            return
        if not self._answered.acquire(blocking=False):  # clause: rpc-incoming.reply.at-most-once
            LOG.warning("reference: message %s already answered; reply ignored", self.msg_id)
            return
        try:
            body = encode_reply(reply, failure)
        except Exception:
            LOG.exception("reference: reply to %s is not serialisable; "
                          "sending the error instead", self.msg_id)
            body = encode_reply(None, sys.exc_info())  # type: ignore[arg-type]
        deadline = stored.deadline or time.monotonic() + REPLY_PATIENCE
        self._publish(MessageKind.REPLY, body, None, deadline)

    def heartbeat(self) -> None:
        # clause: rpc-incoming.heartbeat.resets-caller-timer, rpc-incoming.heartbeat.no-raise
        stored = self._delivery.message
        if stored.reply_to is None or self._answered.locked():
            return
        self._publish(MessageKind.HEARTBEAT, "", 0, None)

    def _publish(self, kind: MessageKind, body: str, retry: int | None,
                 deadline: float | None) -> None:
        """Publish a reply or heartbeat to the caller's reply queue."""
        # clause: rpc-incoming.reply.routed-to-caller (its reply queue, its request's id)
        # clause: rpc-incoming.reply.blocks-until-handoff (returns once stored)
        # clause: rpc-incoming.reply.no-raise, rpc-incoming.reply.log-on-failure
        request = self._delivery.message
        message = Message(self._link.new_id(), body, kind, None, request.id)
        try:
            self._link.run(self._link.broker.publish, message, request.reply_to,
                           retry=retry, deadline=deadline, what=kind)
        except Exception as exc:
            LOG.warning("reference: %s for message %s not sent: %s", kind, self.msg_id, exc)


def decode_reply(body: str, allowed_remote_exmods: list[str]) -> Any:
    """The caller's side of :func:`encode_reply`: the result, or raise the failure."""
    data = from_wire(body)
    failure = data.get("failure")
    if failure is not None:
        # clause: driver.init.allowed-remote-exmods, send.reply.remote-error-otherwise
        # clause: send.errors.messaging-exception (or the remote exception itself)
        raise common.deserialize_remote_exception(failure, allowed_remote_exmods)
    return data["result"]
