"""Adapter for the bench's yardstick, ``ceiling://``: NOT a conformant driver.

:mod:`driver_conformance.bench.ceiling` is the thinnest in-process driver the
public oslo.messaging API still works with (one hand-off queue, no broker
model, no copies).  It exists so that ``driver-conformance bench`` can report
every driver as a ratio to what the public API itself allows on the machine
at hand.  Run the conformance suite against it and it fails clauses, by
design (copies, store-and-forward, acknowledgement, balance, retries,
faults): a yardstick measures, it is not measured.

Each run gets its own virtual host (the run prefix), forgotten when the run
ends, like the reference adapter's brokers; a query in the URL is kept
(``--transport-url=ceiling://?copy=no``: the bare floor, without copies).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator
from typing import Any

from oslo_config import cfg

import driver_conformance
from driver_conformance.adapter import CALLBACK, Adapter, Backend, Capabilities
from driver_conformance.drivers import load_driver


class CeilingAdapter(Adapter):
    name = "ceiling"
    description = ("bench yardstick, NOT a conformant driver (fails clauses by design): "
                   "the thinnest in-process driver the public API works with")
    default_url = "ceiling://"
    quiet_window = 0.25
    #: The bench reports every other driver as a ratio to a yardstick subject.
    yardstick = True

    def get_capabilities(self, url: str) -> Capabilities:
        # Everything the bench's workloads need; its listeners are callback-style.
        return Capabilities()

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        from driver_conformance.bench import ceiling

        vhost = prefix
        query = urllib.parse.urlsplit(url).query
        try:
            yield Backend(url=f"ceiling:///{vhost}" + (f"?{query}" if query else ""),
                          facts={"broker": "none: the bench yardstick, not a real driver"})
        finally:
            ceiling.drop_hub(vhost)

    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        return load_driver(conf, url, default_exchange=default_exchange,
                           allowed_remote_exmods=allowed_remote_exmods)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [CeilingAdapter()]
