"""Probing a driver for the optional features it supports, instead of assuming.

Used by the by-URL adapter, which knows nothing about the driver but its
scheme.  Each probe asks the driver the contract's own question (does
``require_features(requeue=True)`` refuse? does a pooled
``listen_for_notifications`` raise ``NotImplementedError``?) on a throwaway
instance, bounded, so a hung driver cannot hang the probe.
"""

from __future__ import annotations

import contextlib
import uuid

import oslo_messaging

from driver_conformance.adapter import Adapter, Capabilities
from driver_conformance.bounded import call_bounded

PROBE_BOUND = 10.0


def probe_capabilities(adapter: Adapter, url: str, bound: float = PROBE_BOUND, *,
                       prefix: str = "dc-probe") -> Capabilities:
    from driver_conformance.configuration import base_conf

    conf = base_conf()
    driver = call_bounded(adapter.make_driver, conf, url, default_exchange=f"{prefix}-probe",
                          allowed_remote_exmods=[], bound=bound, what="probe: build driver")
    name = f"{prefix}-probe-{uuid.uuid4().hex[:8]}"
    try:
        requeue = _refuses(lambda: driver.require_features(requeue=True), bound)
        rpc_listener = _try_listen(
            lambda: driver.listen(oslo_messaging.Target(topic=name, server=name), 1, None), bound)
        pools_refused = _refuses(
            lambda: _close(driver.listen_for_notifications(
                [(oslo_messaging.Target(topic=name), "info")], name, 1, None)), bound)
        if rpc_listener is not None:
            _close(rpc_listener)
        return Capabilities(
            rpc=rpc_listener is not None,
            notifications=True,
            pools=not pools_refused,
            requeue=not requeue,
        )
    finally:
        with contextlib.suppress(Exception):
            call_bounded(driver.cleanup, bound=bound, what="probe: driver.cleanup()")


def _refuses(fn, bound: float) -> bool:
    try:
        call_bounded(fn, bound=bound, what="probe")
    except NotImplementedError:
        return True
    return False


def _try_listen(fn, bound: float):
    try:
        return call_bounded(fn, bound=bound, what="probe: listen()")
    except NotImplementedError:
        return None


def _close(listener) -> None:
    with contextlib.suppress(Exception):
        listener.cleanup()
