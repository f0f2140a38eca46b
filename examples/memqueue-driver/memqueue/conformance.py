"""driver-conformance's adapter for memqueue (entry point ``driver_conformance.adapters``).

Installing this package makes ``pytest --driver=memqueue`` work from any
directory; only the kit imports this module, so the driver itself does not
depend on the kit.  The adapter:

* gives every run (and pytest-xdist worker) a broker of its own: the run's
  name prefix becomes the URL's virtual host, dropped when the run ends;
* overrides ``[memqueue] retry_interval``, the driver's own option, whose
  1 s default would make every outage scenario wait a second per retry.
  The kit applies it the moment the driver registers its group in
  ``__init__`` (setting it earlier would raise ``NoSuchGroupError``);
* declares every optional feature, because the driver has them all;
* injects outages, connection cuts and lost confirmations into the broker
  (:class:`MemqueueFaults`), so the retry and failover clauses run;
* counts the settings the drivers it built actually read (:attr:`built`), so
  a maintainer can see that the overrides took effect.
"""

from __future__ import annotations

import collections
import contextlib
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from oslo_config import cfg

import memqueue
from driver_conformance import Adapter, Backend, Capabilities, faults, hookimpl
from driver_conformance.adapter import CALLBACK
from memqueue import broker as mq
from memqueue import options

#: What makes the driver fast under test: retries 50 times a second instead of once.
FAST_UNDER_TEST: Mapping[str, Any] = {"retry_interval": 0.02}


class MemqueueFaults(faults.FaultInjector):
    """Faults in one virtual host's broker: every driver connected to it sees them."""

    kinds: ClassVar[frozenset[str]] = frozenset({faults.OUTAGE, faults.CUT,
                                                 faults.LOST_CONFIRM})

    def __init__(self, broker: mq.Broker) -> None:
        self.broker = broker

    def start_outage(self) -> None:
        self.broker.go_down()

    def cut_connections(self) -> None:
        self.broker.cut_connections()

    def lose_confirmations(self, count: int) -> None:
        self.broker.lose_confirmations(count)

    def heal(self) -> None:
        self.broker.heal()

    def publish_attempts(self) -> int:
        return self.broker.stats.publish_attempts


def with_virtual_host(url: str, virtual_host: str) -> str:
    """``url`` with ``virtual_host``, unless the URL already names one."""
    parts = urllib.parse.urlsplit(url)
    if parts.path.strip("/"):
        return url
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{virtual_host}{query}"


class MemqueueAdapter(Adapter):
    name = "memqueue"
    description = "memqueue, the example out-of-tree driver (installed package)"
    default_url = "memqueue://"
    #: In-process delivery takes microseconds; a quarter second is ample on a loaded box.
    quiet_window = 0.25

    def __init__(self) -> None:
        #: How many drivers this adapter built, by the ``[memqueue]`` settings they read.
        self.built: collections.Counter[options.Settings] = collections.Counter()

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities(rpc=True, notifications=True, pools=True, requeue=True)

    def option_overrides(self) -> Mapping[str, Mapping[str, Any]]:
        return {options.GROUP: dict(FAST_UNDER_TEST)}

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        url = with_virtual_host(url, prefix)
        virtual_host = urllib.parse.urlsplit(url).path.strip("/")
        broker = mq.broker_for(virtual_host)
        try:
            yield Backend(url=url, faults=MemqueueFaults(broker),
                          facts={"broker": "memqueue in-process broker",
                                 "memqueue_version": memqueue.__version__})
        finally:
            mq.drop_broker(virtual_host)

    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        # listener_style is ignored on purpose: memqueue's listen() always returns a
        # callback Listener, which the contract leaves to the driver's preference.
        driver = self.build(conf, url, default_exchange=default_exchange,
                            allowed_remote_exmods=allowed_remote_exmods)
        self.built[driver.settings] += 1
        return driver

    def build(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
              allowed_remote_exmods: list[str]) -> Any:
        """The driver, loaded by its URL scheme as oslo.messaging would (it is installed)."""
        return super().make_driver(conf, url, default_exchange=default_exchange,
                                   allowed_remote_exmods=allowed_remote_exmods)


@hookimpl
def conformance_adapters() -> list[Adapter]:
    return [MemqueueAdapter()]
