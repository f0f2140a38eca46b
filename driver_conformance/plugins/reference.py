"""Adapter for the kit's own in-process reference driver (``reference://``).

Each run (and each pytest-xdist worker) gets its own in-process broker,
named by the run's prefix as the URL's virtual host, and dropped when the
run ends.  The reference driver declares every capability, fault injection
included, because it is the baseline every scenario must pass.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

import driver_conformance
from driver_conformance.adapter import (
    CALLBACK,
    POLL,
    Adapter,
    Backend,
    Capabilities,
    StoredView,
)
from driver_conformance.drivers import load_driver

if TYPE_CHECKING:
    from driver_conformance.reference.broker import Broker


def _unsplit(parts: urllib.parse.SplitResult) -> str:
    # urlunsplit drops an empty netloc ("reference:///vh" -> "reference:/vh"),
    # which TransportURL then rejects; keep the "//" explicitly.
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query}"


def _with_vhost(url: str, vhost: str) -> str:
    """``url`` with ``vhost`` as its virtual host, unless it already names one."""
    parts = urllib.parse.urlsplit(url)
    if parts.path.strip("/"):
        return url
    return _unsplit(parts._replace(path="/" + vhost))


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(params)
    return _unsplit(parts._replace(query=urllib.parse.urlencode(query)))


class ReferenceStoredView(StoredView):
    """The in-process broker's wire log: a notification is logged as it is stored, before
    ``send_notification`` returns, so nothing is waited for."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def stored_notifications(self, exchange: str, topic: str, *, timeout: float
                             ) -> list[bytes]:
        records = self.broker.wire_records(exchange=exchange, topic=topic)
        return [r.body.encode() if isinstance(r.body, str) else r.body
                for r in records if r.body is not None]


class ReferenceAdapter(Adapter):
    name = "reference"
    description = "the kit's in-process reference driver: conformant, fast, with fault injection"
    default_url = "reference://"
    #: In-process delivery takes microseconds; a quarter second still leaves
    #: three orders of magnitude for a loaded machine's scheduling delays.
    quiet_window = 0.25

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities()

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        from driver_conformance.reference import vhosts
        from driver_conformance.reference.faults import ReferenceFaults

        url = _with_vhost(url, prefix)
        broker = vhosts.get_broker(url)
        try:
            yield Backend(url=url, faults=ReferenceFaults(broker),
                          stored=ReferenceStoredView(broker),
                          facts={"broker": "in-process reference broker"})
        finally:
            vhosts.drop_broker(url)

    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        if listener_style == POLL:
            url = _with_query(url, listener="poll")
        return load_driver(conf, url, default_exchange=default_exchange,
                           allowed_remote_exmods=allowed_remote_exmods)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [ReferenceAdapter()]
