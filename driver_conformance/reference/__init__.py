"""The reference driver: an in-process, conformant oslo.messaging driver.

It is the kit's baseline (every conformance scenario passes against it), the
kit's executable statement of the driver contract, and a better ``fake://``
for unit tests: real addressing, balanced delivery, acknowledgements,
requeue, store-and-forward notifications, remote exceptions, timeouts and
call-monitor heartbeats, retries and failover, without a broker process.

Using it in unit tests (installing ``driver-conformance`` registers the
``reference`` scheme with oslo.messaging)::

    import uuid
    import oslo_messaging
    from driver_conformance.reference import drop_broker

    url = f"reference:///{uuid.uuid4().hex}"   # a private, isolated broker
    transport = oslo_messaging.get_rpc_transport(conf, url=url)
    ...                                         # RPCClient / RPCServer as usual
    transport.cleanup()
    drop_broker(url)                            # forget its queues

Transports built with the same URL in one process share a broker, so a client
transport and a server transport talk to each other.  ``?listener=poll`` in
the URL selects poll-style listeners.  To break things on purpose::

    faults = ReferenceFaults.for_url(url)
    with faults.outage():
        ...                                     # every send fails and retries
    faults.cut_connections()                    # drivers must fail over
    faults.lose_confirmations(2)                # retried, never duplicated

To look at what went on the wire (the notification envelope, say)::

    broker = get_broker(url)
    for record in broker.wire_records(topic="notifications.info"):
        record.body                             # the stored JSON text, as stored

The raw view keeps notifications only, bounded in bytes
(``broker.wire_log_bytes``, 1 MiB by default), so a long-running test suite
does not grow with it.

Where the reference implements a clause of the catalog
(``driver_conformance/catalog.toml``) the code says so: ``# clause: <id>``.

Modules: :mod:`.broker` (queues, routing, consumers, faults),
:mod:`.vhosts` (one broker per virtual host), :mod:`.link` (a driver's
connection and retry policy), :mod:`.driver`, :mod:`.replies`,
:mod:`.incoming`, :mod:`.subscription` (batching and failover),
:mod:`.listeners`, :mod:`.faults`.
"""

from driver_conformance.reference.broker import (
    Address,
    Broker,
    BrokerStats,
    Connection,
    Message,
    MessageKind,
    QueueKey,
    QueueKind,
    WireRecord,
)
from driver_conformance.reference.driver import ReferenceDriver
from driver_conformance.reference.faults import ReferenceFaults
from driver_conformance.reference.listeners import (
    PollAdapter,
    ReferenceListener,
    ReferencePollListener,
)
from driver_conformance.reference.vhosts import DEFAULT_VHOST, drop_broker, get_broker, vhost_of

__all__ = [
    "DEFAULT_VHOST",
    "Address",
    "Broker",
    "BrokerStats",
    "Connection",
    "Message",
    "MessageKind",
    "PollAdapter",
    "QueueKey",
    "QueueKind",
    "ReferenceDriver",
    "ReferenceFaults",
    "ReferenceListener",
    "ReferencePollListener",
    "WireRecord",
    "drop_broker",
    "get_broker",
    "vhost_of",
]
