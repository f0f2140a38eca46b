"""Negative controls: the reference driver broken one clause at a time.

Each :class:`~driver_conformance.broken.variants.Variant` wraps the
reference driver and breaks one catalog clause.  A variant lives in the
module of its clause's area, beside the scenarios that must catch it
(``scenarios/retry.py`` and ``broken/retry.py``); :mod:`.variants` collects
them in catalog-area order and :mod:`.wrappers` is the machinery they share.

Each variant is offered to the kit as an adapter named ``broken-<variant>``
(see :class:`BrokenAdapter`).  They are *not* registered by default: a
``conftest.py`` that does::

    from driver_conformance.broken import conformance_adapters  # noqa: F401

makes them available to ``pytest --driver=broken-<variant>``, and
``driver-conformance detect`` runs the suite against every one of them and
prints which clauses each made fail (see :mod:`driver_conformance.detect`).
"""

from __future__ import annotations

from driver_conformance.drivers import quiet_import_oslo_messaging

# The variants import oslo.messaging; do it once here without its import-time
# deprecation noise, which would otherwise open every test run and command output.
quiet_import_oslo_messaging()

from typing import Any  # noqa: E402

from oslo_config import cfg  # noqa: E402

from driver_conformance.adapter import CALLBACK, Adapter, Capabilities  # noqa: E402
from driver_conformance.broken.variants import VARIANTS, Variant, select  # noqa: E402
from driver_conformance.broken.wrappers import WrappedDriver  # noqa: E402
from driver_conformance.hookspecs import hookimpl  # noqa: E402
from driver_conformance.plugins.reference import ReferenceAdapter  # noqa: E402

__all__ = [
    "VARIANTS",
    "BrokenAdapter",
    "Variant",
    "WrappedDriver",
    "broken_adapters",
    "conformance_adapters",
    "select",
]


class BrokenAdapter(ReferenceAdapter):
    """The reference adapter, with every driver it builds wrapped by one variant."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.name = variant.adapter_name
        self.description = f"negative control: {variant.description} [{variant.clause}]"

    def get_capabilities(self, url: str) -> Capabilities:
        return self.variant.wrapper.capabilities(super().get_capabilities(url))

    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        inner = super().make_driver(
            conf, url, default_exchange=default_exchange,
            allowed_remote_exmods=self.variant.wrapper.inner_exmods(allowed_remote_exmods),
            listener_style=listener_style)
        return self.variant.wrapper(inner)


def broken_adapters() -> list[Adapter]:
    """One adapter per broken variant, in catalog-area order."""
    return [BrokenAdapter(v) for v in VARIANTS]


@hookimpl
def conformance_adapters() -> list[Adapter]:
    """The kit hook: every ``broken-*`` adapter (only where this module is registered)."""
    return broken_adapters()
