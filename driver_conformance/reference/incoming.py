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

from driver_conformance.reference.broker import BrokerError, Delivery, Message
from driver_conformance.reference.link import Link

LOG = logging.getLogger(__name__)

#: How long a reply is retried when the caller gave no timeout, in seconds.
REPLY_PATIENCE = 60.0

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


#: One encoder for every message: ``jsonutils.dumps`` builds a new one per call.
#: ``to_primitive`` converts what JSON cannot (datetimes, sets, ...) as jsonutils does,
#: and raises for what cannot be converted at all.
_encode = json.JSONEncoder(default=jsonutils.to_primitive).encode


def encode_request(ctxt: Any, message: Any, *, envelope: bool = False) -> str:
    """The stored form of a request or notification: JSON, optionally enveloped.

    Serialising here copies the message (nothing is shared by reference with
    the consumer) and rejects what a real driver could not send.
    """
    wire: dict[str, Any] = {"ctxt": ctxt, "message": message}
    if envelope:
        wire = common.serialize_msg(wire)
    return _encode(wire)


def decode_request(body: str, *, envelope: bool = False) -> tuple[Any, Any]:
    """Inverse of :func:`encode_request`; with ``envelope``, accepts both forms."""
    wire = json.loads(body)
    if envelope:
        wire = common.deserialize_msg(wire)
    return wire["ctxt"], wire["message"]


def encode_reply(reply: Any, failure: ExcInfo | BaseException | None) -> str:
    if failure is None:
        return _encode({"result": reply, "failure": None})
    if isinstance(failure, BaseException):
        failure = (type(failure), failure, failure.__traceback__)
    return _encode({"result": None, "failure": common.serialize_remote_exception(failure)})


class ReferenceIncomingMessage(base.RpcIncomingMessage):
    """A message taken from the broker by a listener."""

    def __init__(self, link: Link, delivery: Delivery, ctxt: Any, message: Any) -> None:
        stored = delivery.message
        super().__init__(ctxt, message, msg_id=stored.id)
        self.client_timeout = stored.call_monitor_timeout
        self._link = link
        self._delivery = delivery
        self._reply_lock = threading.Lock()
        self._replied = False

    @property
    def redelivered(self) -> bool:
        return self._delivery.message.redelivered

    def acknowledge(self) -> None:
        self._settle(requeue=False)

    def requeue(self) -> None:
        self._settle(requeue=True)

    def _settle(self, *, requeue: bool) -> None:
        action = "requeue" if requeue else "acknowledge"
        try:
            self._link.broker.settle(self._delivery, requeue=requeue)
        except BrokerError as exc:
            LOG.warning("reference: cannot %s message %s: %s", action, self.msg_id, exc)
        except Exception:
            LOG.exception("reference: cannot %s message %s", action, self.msg_id)

    def reply(self, reply: Any = None, failure: ExcInfo | BaseException | None = None) -> None:
        stored = self._delivery.message
        if stored.reply_to is None:
            return
        with self._reply_lock:
            if self._replied:
                LOG.warning("reference: message %s already answered; reply ignored", self.msg_id)
                return
            self._replied = True
        try:
            body = encode_reply(reply, failure)
        except Exception:
            LOG.exception("reference: reply to %s is not serialisable; "
                          "sending the error instead", self.msg_id)
            body = encode_reply(None, sys.exc_info())  # type: ignore[arg-type]
        deadline = stored.deadline or time.monotonic() + REPLY_PATIENCE
        self._publish("reply", body, retry=None, deadline=deadline)

    def heartbeat(self) -> None:
        stored = self._delivery.message
        if stored.reply_to is None or self._replied:
            return
        self._publish("heartbeat", "", retry=0, deadline=None)

    def _publish(self, kind: str, body: str, *, retry: int | None,
                 deadline: float | None) -> None:
        stored = self._delivery.message
        message = Message(
            id=self._link.new_id(), body=body, kind=kind, correlation_id=stored.id
        )
        broker = self._link.broker
        key = ("reply", stored.reply_to)
        try:
            self._link.run(
                lambda connection: broker.publish_to_queue(connection, message, key),
                retry=retry, deadline=deadline, what=kind,
            )
        except Exception as exc:
            LOG.warning("reference: %s for message %s not sent: %s", kind, self.msg_id, exc)


def decode_reply(body: str, allowed_remote_exmods: list[str]) -> Any:
    """The caller's side of :func:`encode_reply`: the result, or raise the failure."""
    data = json.loads(body)
    failure = data.get("failure")
    if failure is not None:
        raise common.deserialize_remote_exception(failure, allowed_remote_exmods)
    return data["result"]
