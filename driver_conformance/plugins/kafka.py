"""Adapter for oslo.messaging's kafka driver against a private Tansu broker.

The kafka driver implements notifications only: ``send`` and ``listen``
raise ``NotImplementedError``, so RPC (and with it call-monitor) is declared
unsupported and those clauses end UNSUPPORTED.  ``require_features`` is the
base one, which refuses requeue, so requeue is declared unsupported too.
Pools map onto Kafka consumer groups and are declared supported.

**The broker.**  Each run (each xdist worker) starts its own Tansu process
on a free loopback port with in-memory storage and stops it by PID at the
end (:mod:`driver_conformance.brokers.tansu`), so nothing needs deleting
afterwards.  A fault proxy sits in front of it, and Tansu *advertises the
proxy's address*: Kafka clients reconnect to the advertised address after
bootstrapping, so every connection, not only the first, can be cut,
refused, frozen or delayed.  A ``--transport-url`` naming another Kafka
broker is used as it is, without faults or topic provisioning.

**The consumer-group cost, and what the lane does about it.**  With the
driver's client settings (librdkafka defaults: ``session.timeout.ms`` 45 s)
a new consumer group member gets its partitions about 25 s after it joins,
and not before its topic exists; the driver subscribes with
``auto.offset.reset=latest``, so everything published before that is never
seen.  Every listener a scenario makes is a new member, so with defaults
each delivery scenario would wait 25 s and then fail for that one reason.
Listeners cannot be reused across scenarios (every scenario uses its own
topics, by design), so the adapter instead shortens the wait for each
listener:

* it sets ``session.timeout.ms`` to 1 s (heartbeats every 100 ms) on the
  consumers the driver creates -- client settings the driver does not
  expose as options -- which brings the group join down to about 1 s, and
* it creates each topic a consumer subscribes to just before the
  subscription, as an operator provisioning topics would, so the join does
  not wait for a producer to auto-create the topic.

The join then completes inside the listener constructor's own 5 s start-up
poll, so ``listen_for_notifications`` returns with partitions assigned.
That 5 s poll (a FIXME in the driver) remains the cost of every listener;
the lane runs with ``-n 8`` (on two CPUs) so that those waits overlap.  Publishing to a
topic before any listener subscribed still loses the message (the driver's
``latest`` offset reset), and that is reported by the store-and-forward
clauses, not hidden.

Set ``DRIVER_CONFORMANCE_KAFKA_CLIENT=defaults`` to run with the driver's
own client settings and no provisioning (expect ~25 s per listener and the
delivery failures described above).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from oslo_config import cfg

import driver_conformance
from driver_conformance.adapter import (
    CALLBACK,
    Adapter,
    Backend,
    BackendUnavailable,
    Capabilities,
)
from driver_conformance.brokers.janitor import Janitor, NothingToClean
from driver_conformance.drivers import load_driver
from driver_conformance.urls import mask_url, network_hosts, parse_url

LOG = logging.getLogger(__name__)
#: Where librdkafka's log lines go (as Python log records) while the adapter is installed.
CLIENT_LOG = logging.getLogger("driver_conformance.kafka.librdkafka")

#: Environment switch: ``defaults`` runs the driver with its own client settings.
CLIENT_ENV = "DRIVER_CONFORMANCE_KAFKA_CLIENT"
#: The URL host that means "start a private Tansu broker for this run".
PRIVATE_HOST = "tansu"

#: librdkafka consumer settings the adapter adds (the driver exposes none of them).
CONSUMER_TUNING: dict[str, Any] = {
    "session.timeout.ms": 1000,
    "heartbeat.interval.ms": 100,
    "topic.metadata.refresh.interval.ms": 500,
}


class _ProvisioningConsumer:
    """A ``confluent_kafka.Consumer`` whose ``subscribe`` first creates the topics."""

    def __init__(self, consumer: Any, client: _TunedClient) -> None:
        self._consumer = consumer
        self._client = client

    def subscribe(self, topics: list[str], *args: Any, **kwargs: Any) -> Any:
        self._client.provision(topics)
        return self._consumer.subscribe(topics, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class _TunedClient:
    """Stands in for the ``confluent_kafka`` module inside the kafka driver's module.

    Only consumer construction changes (the settings above, and topic
    provisioning on subscribe); producers and everything else are the real
    module's.  Installed for the run by :meth:`install`, removed after it.
    """

    def __init__(self, module: Any, bootstrap: str) -> None:
        self._module = module
        self.bootstrap = bootstrap
        self._admin: Any = None
        self._lock = threading.Lock()
        self.provisioned: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def Consumer(self, conf: dict[str, Any], **kwargs: Any) -> Any:
        tuned = {**conf, **CONSUMER_TUNING, "logger": CLIENT_LOG}
        return _ProvisioningConsumer(self._module.Consumer(tuned, **kwargs), self)

    def Producer(self, conf: dict[str, Any], **kwargs: Any) -> Any:
        # Only the log destination changes: librdkafka's own stderr lines
        # would interleave with pytest's progress output.
        return self._module.Producer({**conf, "logger": CLIENT_LOG}, **kwargs)

    def provision(self, topics: list[str], timeout: float = 5.0) -> None:
        """Create ``topics`` (broker-default partitions); existing ones are left alone."""
        from confluent_kafka.admin import AdminClient, NewTopic

        wanted = [t for t in topics if t not in self.provisioned]
        if not wanted:
            return
        with self._lock:
            if self._admin is None:
                self._admin = AdminClient({"bootstrap.servers": self.bootstrap,
                                           "logger": CLIENT_LOG})
            admin = self._admin
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=-1, replication_factor=-1) for t in wanted],
            operation_timeout=timeout, request_timeout=timeout)
        for topic, future in futures.items():
            try:
                future.result(timeout)
            except Exception as exc:
                err = exc.args[0] if exc.args else None
                code = getattr(err, "code", lambda: None)()
                if code != self._module.KafkaError.TOPIC_ALREADY_EXISTS:
                    # Provisioning is a convenience: the subscription goes on
                    # and the driver behaves as it would without it.
                    LOG.warning("could not create Kafka topic %s: %s", topic, exc)
                    continue
            self.provisioned.add(topic)

    @contextlib.contextmanager
    def install(self) -> Iterator[_TunedClient]:
        from oslo_messaging._drivers import impl_kafka

        previous = impl_kafka.confluent_kafka
        impl_kafka.confluent_kafka = self
        CLIENT_LOG.disabled = False
        try:
            yield self
        finally:
            impl_kafka.confluent_kafka = previous
            # Clients abandoned by hung driver calls keep reconnecting to the
            # stopped broker; their complaints after the run are noise.
            CLIENT_LOG.disabled = True


def _kafka_unreachable_reason(bootstrap: str, timeout: float = 3.0) -> str | None:
    """Why no broker answers a metadata request at ``bootstrap``, or None."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000),
                         "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:
        return f"{bootstrap}: {exc}"
    return None


class KafkaAdapter(Adapter):
    name = "kafka"
    description = ("oslo.messaging's kafka driver (notifications only) on a private Tansu "
                   "broker, faults through the kit's loopback proxy")
    default_url = f"kafka://{PRIVATE_HOST}/"
    default_port = 9092

    def __init__(self) -> None:
        self.client: _TunedClient | None = None

    def private(self, url: str) -> bool:
        return [h for h, _ in network_hosts(url)] == [PRIVATE_HOST]

    def janitor(self, url: str, prefix: str) -> Janitor:
        if self.private(url):
            return NothingToClean("a private broker, in memory, stopped with the run")
        return super().janitor(url, prefix)

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities(
            rpc=False,
            notifications=True,
            pools=True,
            requeue=False,
        )

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        import confluent_kafka

        from driver_conformance.plugins.rabbit import quiet_background_logs

        quiet_background_logs()
        tuned = os.environ.get(CLIENT_ENV, "").strip().lower() != "defaults"
        if not self.private(url):
            hosts = [f"{h}:{p or self.default_port}" for h, p in network_hosts(url)]
            reason = _kafka_unreachable_reason(",".join(hosts))
            if reason:
                raise BackendUnavailable(
                    f"cannot reach the Kafka broker of {mask_url(url)} ({reason})")
            yield Backend(url=url, stored=_stored_view(url),
                          facts={"broker": f"Kafka at {', '.join(hosts)}"})
            return

        from driver_conformance.brokers.tansu import TansuBroker, TansuUnavailable, free_port
        from driver_conformance.proxy import proxied

        broker_port = free_port()
        # The proxy starts first: Tansu must advertise the proxy's address.
        with proxied(f"kafka://127.0.0.1:{broker_port}/", self.default_port,
                     name=f"kafka-proxy-{prefix}") as proxy:
            (proxy_port,) = proxy.ports
            try:
                broker = TansuBroker(port=broker_port, advertised_port=proxy_port).start()
            except TansuUnavailable as exc:
                raise BackendUnavailable(f"cannot start the Tansu broker: {exc}") from None
            try:
                facts = {
                    "broker": f"{broker.version()} (private, memory storage, pid {broker.pid})",
                    **proxy.facts,
                    "kafka client": ("consumers tuned by the adapter: " + ", ".join(
                        f"{k}={v}" for k, v in CONSUMER_TUNING.items())
                        + "; topics created before subscribing") if tuned
                    else "the driver's own client settings (no tuning, no provisioning)",
                }
                backend = Backend(url=proxy.url, faults=proxy.faults,
                                  stored=_stored_view(proxy.url), facts=facts)
                if tuned:
                    self.client = _TunedClient(confluent_kafka, f"127.0.0.1:{proxy_port}")
                    with self.client.install():
                        yield backend
                else:
                    yield backend
            finally:
                self.client = None
                broker.stop()

    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        return load_driver(conf, url, default_exchange=default_exchange,
                           allowed_remote_exmods=allowed_remote_exmods)


def _stored_view(url: str) -> Any:
    """The raw view of the notifications stored on the Kafka broker at ``url``."""
    from driver_conformance.brokers.kafka import KafkaStoredView

    hosts = ",".join(f"{h}:{p or KafkaAdapter.default_port}" for h, p in network_hosts(url))
    return KafkaStoredView(hosts, parse_url(cfg.ConfigOpts(), url).virtual_host or None)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [KafkaAdapter()]
