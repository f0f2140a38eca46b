"""Adapter for oslo.messaging's rabbit driver against a real RabbitMQ broker.

The broker is shared (other users, other runs), so the adapter keeps the run
to itself:

* **Reachability** is checked with a real AMQP login before anything else,
  so a stopped broker or wrong credentials end the run in seconds with the
  host named (password masked), not as a driver reconnecting forever in the
  first scenario.
* **Faults** are injected by a loopback TCP proxy per broker host
  (:func:`driver_conformance.proxy.proxied`): the drivers under test are
  given the proxy's address, so cutting, refusing, freezing or delaying
  traffic only ever touches the kit's own connections.  The proxies read
  the connections as AMQP 0-9-1 frames, which lets them lose a publisher
  confirmation (a publish reaches the broker, its ``basic.ack`` never
  reaches the driver) and count publish attempts.
* **Cleanup**: when the run ends the proxies stop (which closes every
  connection the run's drivers made), then the run's janitor for ``rabbit://``
  URLs (:class:`driver_conformance.brokers.rabbit.RabbitJanitor`, the same
  for any adapter) deletes every queue and exchange named under the run's
  prefix and every ``reply_<uuid>`` queue the run's drivers declared.

The option overrides make failures visible within the kit's time bounds:
reconnect attempts every second instead of with a growing back-off, AMQP
heartbeats of 2 s so a silent partition is noticed in seconds, and a 2 s
limit on how long a reply waits for a vanished caller's queue (60 s by
default, longer than any scenario's bound).  Every value is an ordinary,
documented option of the driver.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
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
from driver_conformance.configuration import Override
from driver_conformance.drivers import load_driver
from driver_conformance.urls import mask_url, parse_url

# Moved to driver_conformance.urls; still importable from here for existing callers.
from driver_conformance.urls import rewrite_hosts as rewrite_hosts

LOG = logging.getLogger(__name__)

#: Options of the ``oslo_messaging_rabbit`` group that make the driver fast under test.
RABBIT_OVERRIDES: dict[str, Any] = {
    # Reconnect at once after a consumer cancel, and every second (the
    # option's minimum) without back-off while the broker is unreachable.
    "kombu_reconnect_delay": 0.1,
    "rabbit_retry_interval": 1,
    "rabbit_retry_backoff": 0,
    "rabbit_interval_max": 1,
    # A frozen connection is noticed after about two missed heartbeats (4 s),
    # not after two minutes.
    "heartbeat_timeout_threshold": 2,
    "heartbeat_rate": 2,
    # reply() to a caller whose reply queue is gone retries for this long
    # before giving up; the default (60 s) exceeds every scenario's bound.
    "kombu_missing_consumer_retry_timeout": 2,
    # A backstop: reply and fanout queues left by a killed run expire.
    "rabbit_transient_queues_ttl": 60,
}

#: Why each override is there (shown when it replaces a value of the user's files).
_RECONNECT = "reconnect every second, without back-off, while the broker is unreachable"
RABBIT_OVERRIDE_REASONS: dict[str, str] = {
    "kombu_reconnect_delay": "reconnect at once after a consumer cancel",
    "rabbit_retry_interval": _RECONNECT,
    "rabbit_retry_backoff": _RECONNECT,
    "rabbit_interval_max": _RECONNECT,
    "heartbeat_timeout_threshold": "a frozen link is noticed in about 4 s, within the kit's "
                                   "bounds, not after minutes",
    "heartbeat_rate": "a frozen link is noticed in about 4 s, within the kit's bounds",
    "kombu_missing_consumer_retry_timeout": "a reply to a vanished caller gives up within the "
                                            "kit's bounds (the default is 60 s)",
    "rabbit_transient_queues_ttl": "a backstop: queues left by a killed run expire",
}
#: Overrides that change what the contract sees: a user's own value is kept.
RABBIT_BEHAVIOUR = frozenset({"rabbit_transient_queues_ttl"})


def quiet_background_logs() -> None:
    """Keep driver threads' log records out of the terminal between scenarios.

    Driver calls abandoned by the kit (hung past their bound) keep retrying on
    their daemon threads and log every attempt.  Outside a test pytest has no
    handler installed, so Python's last-resort handler prints them between
    the progress dots.  A ``NullHandler`` on the drivers' loggers stops only
    that: records still propagate to pytest's capture (and ``caplog``) during
    a scenario.
    """
    for name in ("oslo_messaging", "oslo.messaging", "kombu", "amqp"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


class RabbitAdapter(Adapter):
    name = "rabbit"
    description = ("oslo.messaging's rabbit driver on a real RabbitMQ, "
                   "faults through the kit's loopback proxy")
    default_url = "rabbit://guest:guest@127.0.0.1:5672/"
    default_port = 5672

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities()

    def option_overrides(self) -> Mapping[str, Mapping[str, Any]]:
        return {"oslo_messaging_rabbit": {
            name: Override(value, RABBIT_OVERRIDE_REASONS[name], name in RABBIT_BEHAVIOUR)
            for name, value in RABBIT_OVERRIDES.items()}}

    # -- backend -----------------------------------------------------------------------
    def _login(self, url: str) -> dict[str, Any]:
        """Log in to the first host that answers; the broker's facts, or BackendUnavailable."""
        import amqp

        from driver_conformance.brokers.rabbit import amqp_unreachable_reason

        transport_url = parse_url(cfg.ConfigOpts(), url)
        reasons = []
        for host in transport_url.hosts:
            address = (host.hostname or "127.0.0.1", host.port or self.default_port)
            reason = amqp_unreachable_reason(*address)
            if reason is None:
                conn = amqp.Connection(
                    f"{address[0]}:{address[1]}", userid=host.username or "guest",
                    password=host.password or "guest",
                    virtual_host=transport_url.virtual_host or "/", connect_timeout=3,
                    read_timeout=3, write_timeout=3,
                    client_properties={"connection_name": "driver-conformance-probe"})
                try:
                    conn.connect()
                    props = conn.server_properties
                    return {
                        "host": address[0], "port": address[1],
                        "userid": host.username or "guest",
                        "password": host.password or "guest",
                        "vhost": transport_url.virtual_host or "/",
                        "broker": f"{_text(props.get('product'))} "
                                  f"{_text(props.get('version'))}".strip(),
                    }
                except Exception as exc:
                    reason = f"{address[0]}:{address[1]}: login failed: {exc}"
                finally:
                    with contextlib.suppress(Exception):
                        conn.close()
            reasons.append(reason)
        raise BackendUnavailable(
            f"cannot reach the RabbitMQ broker of {mask_url(url)} ({'; '.join(reasons)})")

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        from driver_conformance.proxy import proxied

        broker = self._login(url)
        quiet_background_logs()
        with proxied(url, self.default_port, name=f"rabbit-proxy-{prefix}",
                     protocol="amqp") as proxy:
            yield Backend(url=proxy.url, faults=proxy.faults, stored=stored_view(broker),
                          facts={"broker": broker["broker"], **proxy.facts})

    # -- drivers -------------------------------------------------------------------------
    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        return load_driver(conf, url, default_exchange=default_exchange,
                           allowed_remote_exmods=allowed_remote_exmods)


def stored_view(broker: dict[str, Any]) -> Any:
    """The raw view of the notifications stored on the broker :meth:`RabbitAdapter._login`
    found."""
    from driver_conformance.brokers.rabbit import RabbitStoredView

    return RabbitStoredView(host=broker["host"], port=broker["port"], userid=broker["userid"],
                            password=broker["password"], vhost=broker["vhost"])


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def doubled_hosts(url: str) -> str:
    """``url`` with its one host named twice (``rabbit://u:p@h:5672,u:p@h:5672/``)."""
    parts = urllib.parse.urlsplit(url)
    if "," in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.netloc},{parts.netloc}"))


class RabbitMultiHostAdapter(RabbitAdapter):
    """The rabbit driver with a two-host URL: two proxies in front of the one broker.

    The driver is given ``rabbit://h1,h2/`` where h1 and h2 are two kit
    proxies to the same RabbitMQ, so one host can be lost (its proxy refuses
    and resets: :data:`~driver_conformance.proxy.injector.HOST_OUTAGE`)
    while the broker stays up behind the other, and the driver has to fail
    over.  Every other fault applies to both proxies, as in the ``rabbit``
    lane.  A URL that already names several hosts keeps them, one proxy each.
    """

    name = "rabbit-multihost"
    description = ("oslo.messaging's rabbit driver with a two-host URL: two loopback proxies "
                   "in front of one RabbitMQ, one of which can be lost")

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        from driver_conformance.proxy import proxied
        from driver_conformance.proxy.injector import HostFaults

        broker = self._login(url)
        quiet_background_logs()
        with proxied(doubled_hosts(url), self.default_port,
                     name=f"rabbit-multihost-proxy-{prefix}", protocol="amqp") as proxy:
            yield Backend(url=proxy.url, faults=HostFaults(proxy.faults.proxies),
                          stored=stored_view(broker),
                          facts={"broker": broker["broker"], **proxy.facts})


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [RabbitAdapter(), RabbitMultiHostAdapter()]
