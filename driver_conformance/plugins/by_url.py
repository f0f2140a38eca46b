"""The by-URL adapter: any installed oslo.messaging driver, with no adapter code.

The driver is found by the transport URL's scheme, exactly as oslo.messaging
finds it.  Optional capabilities are probed on a throwaway driver instance
rather than assumed, so that a driver which refuses requeue or pools is
reported UNSUPPORTED for those clauses instead of failing them.  The probe's
names carry the run's prefix, and the backend is cleaned by the janitor of
the URL's scheme (:mod:`driver_conformance.brokers.janitor`), as for any
adapter.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import driver_conformance
from driver_conformance import probe
from driver_conformance.adapter import Adapter, Backend, Capabilities

LOG = logging.getLogger(__name__)


class ByURLAdapter(Adapter):
    name = "url"
    description = "any installed oslo.messaging driver, chosen by --transport-url's scheme"
    default_url = ""

    def __init__(self) -> None:
        #: The run's name prefix, so the probe's queues are the run's to clean up.
        self.prefix = "dc-probe"

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        self.prefix = prefix
        with super().backend(url, prefix) as backend:
            yield backend

    def get_capabilities(self, url: str) -> Capabilities:
        return probe.probe_capabilities(self, url, prefix=self.prefix)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [ByURLAdapter()]
