"""The by-URL adapter: any installed oslo.messaging driver, with no adapter code.

The driver is found by the transport URL's scheme, exactly as oslo.messaging
finds it.  Optional capabilities are probed on a throwaway driver instance
rather than assumed, so that a driver which refuses requeue or pools is
reported UNSUPPORTED for those clauses instead of failing them.
"""

from __future__ import annotations

import logging

import driver_conformance
from driver_conformance import probe
from driver_conformance.adapter import Adapter, Capabilities

LOG = logging.getLogger(__name__)


class ByURLAdapter(Adapter):
    name = "url"
    description = "any installed oslo.messaging driver, chosen by --transport-url's scheme"
    default_url = ""

    def get_capabilities(self, url: str) -> Capabilities:
        return probe.probe_capabilities(self, url)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [ByURLAdapter()]
