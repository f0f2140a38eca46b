"""Finding and building oslo.messaging drivers the way oslo.messaging does.

The kit builds drivers itself rather than through ``get_rpc_transport`` so
that scenarios can talk to the driver API directly, and so that a driver
under development, not yet registered as an entry point, can be tested.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from stevedore import driver as stevedore_driver
from stevedore import extension

from driver_conformance.urls import mask_url, parse_url, scheme_of

#: The entry-point group oslo.messaging loads drivers from.
DRIVER_NAMESPACE = "oslo.messaging.drivers"


class NoSuchDriver(LookupError):
    """No installed oslo.messaging driver answers to a URL's scheme."""


def installed_schemes() -> list[str]:
    """Schemes of every oslo.messaging driver installed, sorted."""
    manager = extension.ExtensionManager(DRIVER_NAMESPACE, invoke_on_load=False)
    return sorted(manager.names())


def load_driver(
    conf: cfg.ConfigOpts,
    url: str,
    *,
    default_exchange: str,
    allowed_remote_exmods: list[str],
) -> Any:
    """Build the driver registered for ``url``'s scheme, as ``get_transport`` would."""
    transport_url = parse_url(conf, url)
    scheme = scheme_of(url)
    if scheme not in installed_schemes():
        raise NoSuchDriver(
            f"no oslo.messaging driver for scheme {scheme!r} in {mask_url(url)!r}; "
            f"installed: {', '.join(installed_schemes())}"
        )
    manager = stevedore_driver.DriverManager(
        DRIVER_NAMESPACE,
        scheme,
        invoke_on_load=True,
        invoke_args=[conf, transport_url],
        invoke_kwds={
            "default_exchange": default_exchange,
            "allowed_remote_exmods": allowed_remote_exmods,
        },
    )
    return manager.driver
