"""Adapter for oslo.messaging's in-memory ``fake`` driver.

The fake driver claims requeue (``require_features`` accepts it) and pools
(``listen_for_notifications`` accepts a pool) and hands back poll-style
listeners; it sends no heartbeats and ignores ``retry``.  What it claims is
declared here as it is, so the suite checks the claims rather than excusing
them.
"""

from __future__ import annotations

import driver_conformance
from driver_conformance.adapter import Adapter, Capabilities


class FakeAdapter(Adapter):
    name = "fake"
    description = "oslo.messaging's in-memory fake driver"
    default_url = "fake://"

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities(
            rpc=True,
            notifications=True,
            pools=True,
            requeue=True,
        )


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [FakeAdapter()]
