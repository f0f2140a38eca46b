"""Adapter for oslo.messaging's rabbit driver against a real RabbitMQ broker.

The broker is shared (other users, other runs), so the adapter keeps the run
to itself:

* **Reachability** is checked with a real AMQP login before anything else,
  so a stopped broker or wrong credentials end the run in seconds with the
  host named (password masked), not as a driver reconnecting forever in the
  first scenario.
* **Faults** are injected by a loopback TCP proxy per broker host
  (:mod:`driver_conformance.proxy`): the drivers under test are given the
  proxy's address, so cutting, refusing, freezing or delaying traffic only
  ever touches the kit's own connections.
* **Cleanup**: when the run ends the proxies stop (which closes every
  connection the run's drivers made), then every queue and exchange whose
  name starts with the run's prefix, and every ``reply_<uuid>`` queue the
  run's drivers declared (recorded as they name them), is deleted by name.
  Listing uses ``rabbitmqctl`` when the broker is on this machine and the
  kit runs as root; otherwise only the names the run knows are deleted, and
  the run's facts say so.

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
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from oslo_config import cfg

import driver_conformance
from driver_conformance import faults
from driver_conformance.adapter import (
    CALLBACK,
    POLL,
    Adapter,
    Backend,
    BackendUnavailable,
    Capabilities,
)
from driver_conformance.drivers import load_driver
from driver_conformance.urls import mask_url, network_hosts, parse_url

LOG = logging.getLogger(__name__)

#: Every cleanup this process ran, newest last (the kit's own tests inspect them).
CLEANUPS: list[Any] = []

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


def _split_netloc(netloc: str) -> list[tuple[str, str]]:
    """``[(userinfo, hostport), ...]`` for each host of a (multi-host) netloc."""
    parts = []
    for part in netloc.split(","):
        userinfo, _, hostport = part.rpartition("@")
        parts.append((userinfo, hostport))
    return parts


def rewrite_hosts(url: str, addresses: list[tuple[str, int]]) -> str:
    """``url`` with its i-th host replaced by ``addresses[i]``, credentials kept."""
    parts = urllib.parse.urlsplit(url)
    hosts = _split_netloc(parts.netloc)
    if len(hosts) != len(addresses):
        raise ValueError(f"{len(hosts)} hosts in {mask_url(url)} but {len(addresses)} "
                         "addresses to put in")
    netloc = ",".join(
        (f"{userinfo}@" if userinfo else "") + f"{host}:{port}"
        for (userinfo, _), (host, port) in zip(hosts, addresses, strict=True))
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


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


class ReplyQueueTracker:
    """Records the ``reply_<uuid>`` queue names the run's drivers choose.

    Reply queues carry no run prefix, so cleanup can only find the run's own
    by remembering them.  The driver picks the name in
    ``_get_reply_queue_name()``; wrapping that method on each instance the
    adapter builds observes the name without changing it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: set[str] = set()

    def watch(self, driver: Any) -> Any:
        original: Callable[[], str] | None = getattr(driver, "_get_reply_queue_name", None)
        if original is None:
            return driver

        def named() -> str:
            name = original()
            with self._lock:
                self.names.add(name)
            return name

        driver._get_reply_queue_name = named
        return driver

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self.names)


class RabbitAdapter(Adapter):
    name = "rabbit"
    description = ("oslo.messaging's rabbit driver on a real RabbitMQ, "
                   "faults through the kit's loopback proxy")
    default_url = "rabbit://guest:guest@127.0.0.1:5672/"
    default_port = 5672

    def __init__(self) -> None:
        self.replies = ReplyQueueTracker()
        #: What the last backend teardown deleted (read by the kit's own tests).
        self.last_cleanup: Any = None

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities(
            listener_styles=frozenset({CALLBACK, POLL}),
            faults=frozenset({faults.OUTAGE, faults.CUT, faults.FREEZE, faults.DELAY}),
        )

    def option_overrides(self) -> Mapping[str, Mapping[str, Any]]:
        return {"oslo_messaging_rabbit": dict(RABBIT_OVERRIDES)}

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
        from driver_conformance.proxy import ProxyFaults, proxies_for

        broker = self._login(url)
        quiet_background_logs()
        hosts = [(h, p or self.default_port) for h, p in network_hosts(url)]
        self.replies = ReplyQueueTracker()
        try:
            with proxies_for(hosts, name=f"rabbit-proxy-{prefix}") as proxies:
                proxied = rewrite_hosts(url, [p.address for p in proxies])
                facts = {
                    "broker": broker["broker"],
                    "fault proxy": ", ".join(f"127.0.0.1:{p.port} -> {h}:{port}"
                                             for p, (h, port) in zip(proxies, hosts,
                                                                     strict=True)),
                }
                yield Backend(url=proxied, faults=ProxyFaults(proxies), facts=facts)
        finally:
            self.last_cleanup = self.cleanup(broker, prefix)

    def cleanup(self, broker: dict[str, Any], prefix: str) -> Any:
        """Delete what the run declared; never raises (it runs at the end of every run)."""
        from driver_conformance.brokers.rabbit import (
            CleanupResult,
            RabbitCtl,
            RabbitCtlUnavailable,
            delete_by_name,
            is_run_name,
        )

        result = CleanupResult()
        replies = self.replies.snapshot()
        queues: list[str] = sorted(replies)
        exchanges: list[str] = [f"{prefix}-default"]
        try:
            ctl = RabbitCtl.for_host(broker["host"], broker["vhost"])
            listed_q, listed_x, _ = ctl.snapshot()
            result.listed = True
            queues = sorted(n for n in listed_q if is_run_name(n, prefix, replies))
            exchanges = sorted(n for n in listed_x if is_run_name(n, prefix))
        except RabbitCtlUnavailable as exc:
            result.problems.append(f"not listed: {exc}")
        except Exception as exc:  # an unreadable listing must not fail the run's end
            result.problems.append(f"not listed: {type(exc).__name__}: {exc}")
        result.problems += delete_by_name(
            broker["host"], broker["port"], userid=broker["userid"],
            password=broker["password"], vhost=broker["vhost"],
            queues=queues, exchanges=exchanges)
        result.queues, result.exchanges = queues, exchanges
        result.prefix, result.reply_queues = prefix, sorted(replies)
        CLEANUPS.append(result)
        LOG.info("driver-conformance rabbit cleanup of %s: %s", prefix, result.summary())
        return result

    # -- drivers -------------------------------------------------------------------------
    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        driver = load_driver(conf, url, default_exchange=default_exchange,
                             allowed_remote_exmods=allowed_remote_exmods)
        return self.replies.watch(driver)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [RabbitAdapter()]
