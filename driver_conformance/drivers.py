"""Finding and building oslo.messaging drivers the way oslo.messaging does.

The kit builds drivers itself rather than through ``get_rpc_transport`` so
that scenarios can talk to the driver API directly, and so that a driver
under development, not yet registered as an entry point, can be tested.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any

from oslo_config import cfg
from stevedore import driver as stevedore_driver

from driver_conformance.urls import mask_url, parse_url, scheme_of

#: The entry-point group oslo.messaging loads drivers from.
DRIVER_NAMESPACE = "oslo.messaging.drivers"


def quiet_import_oslo_messaging() -> None:
    """Import oslo.messaging once with its import-time deprecation noise silenced.

    Importing it drags in eventlet-era modules that warn at import time; the
    warnings concern oslo.messaging's own dependencies, not the driver under
    test, and would otherwise open every run's output.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging  # noqa: F401


class NoSuchDriver(LookupError):
    """No installed oslo.messaging driver answers to a URL's scheme."""


def installed_schemes() -> list[str]:
    """Schemes of every oslo.messaging driver installed, sorted.

    Read from the distributions' metadata, without importing any driver: a
    driver whose own dependency is missing (kafka without confluent-kafka)
    is still installed, and importing it here would log an error into every
    run that never uses it.
    """
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=DRIVER_NAMESPACE)})


def check_loadable(url: str) -> None:
    """Raise :class:`NoSuchDriver` (one line) unless ``url``'s scheme has a driver that imports."""
    scheme = scheme_of(url)
    found = importlib.metadata.entry_points(group=DRIVER_NAMESPACE, name=scheme)
    if not found:
        raise NoSuchDriver(
            f"no oslo.messaging driver is installed for scheme {scheme!r} "
            f"(in {mask_url(url)!r}); installed: {', '.join(installed_schemes())}")
    try:
        next(iter(found)).load()
    except Exception as exc:
        raise NoSuchDriver(
            f"the oslo.messaging driver for scheme {scheme!r} is installed but does not "
            f"import: {type(exc).__name__}: {exc}") from None


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
    check_loadable(url)
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
