"""Kafka for by-URL and external-broker runs: delete the run's topics and consumer groups.

The kit's topic, server and pool names start with the run's prefix, and the
kafka driver names its topics and consumer groups after them, so everything
of a run on a Kafka broker is found by listing topics and groups and keeping
those under the prefix.  Listing and deleting go through confluent-kafka's
``AdminClient`` (the client the kafka driver itself needs), bounded.
"""

from __future__ import annotations

import time
from typing import Any

from driver_conformance.stored import StoredView
from driver_conformance.urls import network_hosts

#: How long one admin request may take, in seconds.
ADMIN_TIMEOUT = 10.0


class KafkaJanitor:
    """Deletes a run's topics and consumer groups from a Kafka broker (see :mod:`.janitor`)."""

    cleans = True

    def __init__(self, url: str, prefix: str) -> None:
        self.bootstrap = ",".join(f"{h}:{p or 9092}" for h, p in network_hosts(url))
        self.prefix = prefix
        self.description = (f"topics and consumer groups named {prefix}* deleted from "
                            f"{self.bootstrap} when the run ends")
        self.deleted: list[str] = []

    def watch(self, driver: Any) -> Any:
        return driver

    def clean(self) -> str:
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:
            return "NOT cleaned: confluent-kafka is not installed"
        admin = AdminClient({"bootstrap.servers": self.bootstrap,
                             "socket.timeout.ms": int(ADMIN_TIMEOUT * 1000)})
        problems: list[str] = []
        try:
            topics = [t for t in admin.list_topics(timeout=ADMIN_TIMEOUT).topics
                      if t.startswith(self.prefix)]
            for topic, future in (admin.delete_topics(topics, operation_timeout=ADMIN_TIMEOUT)
                                  .items() if topics else []):
                try:
                    future.result(ADMIN_TIMEOUT)
                    self.deleted.append(topic)
                except Exception as exc:
                    problems.append(f"topic {topic}: {exc}")
            groups = [g.group_id for g in admin.list_consumer_groups(
                request_timeout=ADMIN_TIMEOUT).result(ADMIN_TIMEOUT).valid
                if g.group_id.startswith(self.prefix)]
            for group, future in (admin.delete_consumer_groups(
                    groups, request_timeout=ADMIN_TIMEOUT).items() if groups else []):
                try:
                    future.result(ADMIN_TIMEOUT)
                    self.deleted.append(group)
                except Exception as exc:
                    problems.append(f"group {group}: {exc}")
        except Exception as exc:  # the run's end must not fail on an unreachable broker
            problems.append(f"{type(exc).__name__}: {exc}")
        text = f"deleted {len(self.deleted)} topics and consumer groups"
        return text + (f"; problems: {'; '.join(problems[:3])}" if problems else "")


class KafkaStoredView(StoredView):
    """Notifications as a Kafka broker stores them: the records of their topic.

    The kafka driver publishes a notification for ``"<topic>.<priority>"`` to the
    Kafka topic it derives from that name and the URL's virtual host (the
    exchange plays no part in it), so the view reads that topic from its first
    offset with partitions assigned by hand: no consumer group is joined or
    left behind, and nothing is committed.  It reads through the same address
    the drivers are given (for the private broker, the kit's proxy).
    """

    def __init__(self, bootstrap: str, virtual_host: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.virtual_host = virtual_host

    def stored_notifications(self, exchange: str, topic: str, *, timeout: float
                             ) -> list[bytes]:
        import confluent_kafka
        import oslo_messaging
        from oslo_messaging._drivers.impl_kafka import target_to_topic

        name = target_to_topic(oslo_messaging.Target(topic=topic), vhost=self.virtual_host)
        deadline = time.monotonic() + timeout
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": "driver-conformance-stored-view",
            "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            metadata = consumer.list_topics(name, timeout=max(deadline - time.monotonic(), 0.1))
            found = metadata.topics.get(name)
            if found is None or found.error is not None or not found.partitions:
                return []
            first = confluent_kafka.OFFSET_BEGINNING
            consumer.assign([confluent_kafka.TopicPartition(name, p, first)
                             for p in found.partitions])
            bodies: list[bytes] = []
            while not bodies and (remaining := deadline - time.monotonic()) > 0:
                records = consumer.consume(num_messages=100, timeout=min(remaining, 0.5))
                bodies += [r.value() for r in records if r.error() is None and r.value()]
            return bodies
        finally:
            consumer.close()
