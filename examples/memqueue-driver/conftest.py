"""Wires this checkout's memqueue driver into driver-conformance, with no install needed.

``pytest --driver=memqueue-dev`` from this directory runs the conformance
suite against the driver in ``memqueue/`` as it is on disk: the adapter
builds ``MemqueueDriver`` itself instead of looking the ``memqueue://`` scheme
up among installed drivers.  Its ``option_overrides()`` target the driver's
own option group, ``[memqueue]``, which the driver registers in ``__init__``;
the kit holds them until then.

``pytest --driver=memqueue-fanout-to-one`` runs the same suite against a
deliberately broken variant (every listener shares one fanout queue, so a
fanout reaches only one of them): it must fail ``send.fanout.all-subscribers``
and nothing else.  ``pytest --driver=memqueue-dev-no-faults`` is the driver
without fault injection, the way a run looks before the adapter has a
``FaultInjector``: the retry and failover clauses are NOT RUN, with the reason,
and the verdict is UNKNOWN (exit status 7).

The installed package offers the adapter ``memqueue`` too (entry point
``driver_conformance.adapters``).  Adapter names must be unique, or the run
stops with a conflict naming both, so the ones here carry other names and
both kinds can be used side by side; ``--driver`` says which one runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from memqueue import options
from memqueue.conformance import FAST_UNDER_TEST, MemqueueAdapter

with warnings.catch_warnings():
    # Importing oslo.messaging drags in eventlet, which warns with a Warning that is no
    # DeprecationWarning; the kit imports it quietly, but only after conftests load.
    warnings.simplefilter("ignore")
    from memqueue.driver import MemqueueDriver
from oslo_config import cfg

from driver_conformance import Adapter, Backend
from driver_conformance.urls import BadTransportURL, parse_url, scheme_of


class CheckoutAdapter(MemqueueAdapter):
    """memqueue as it is in this checkout, installed or not."""

    name = "memqueue-dev"
    description = "memqueue from this source checkout (its conftest.py)"
    driver_class: type[MemqueueDriver] = MemqueueDriver

    def validate_url(self, url: str) -> None:
        # The scheme need not be installed: the class is built directly.
        parse_url(cfg.ConfigOpts(), url)
        if scheme_of(url) != "memqueue":
            raise BadTransportURL(f"adapter {self.name!r} takes memqueue:// URLs, not {url!r}")

    def option_overrides(self) -> dict[str, dict[str, Any]]:
        # [memqueue] does not exist until MemqueueDriver.__init__ registers it.
        return {options.GROUP: dict(FAST_UNDER_TEST)}

    def build(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
              allowed_remote_exmods: list[str]) -> Any:
        return self.driver_class(conf, parse_url(conf, url), default_exchange=default_exchange,
                                 allowed_remote_exmods=allowed_remote_exmods)


class NoFaultsAdapter(CheckoutAdapter):
    """The same driver, but the kit gets no fault injector: what NOT RUN looks like."""

    name = "memqueue-dev-no-faults"
    description = "memqueue from this checkout, without fault injection"

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        with super().backend(url, prefix) as backend:
            yield dataclasses.replace(backend, faults=None)


class FanoutToOneDriver(MemqueueDriver):
    """Broken on purpose: one fanout queue per (exchange, topic), shared by its listeners.

    The queue's listeners then take turns at it, as consumers of one queue
    do, so each fanout reaches one of them.  A classic: a fanout queue named
    without anything unique to its listener.
    """

    def fanout_queue(self, exchange: str, topic: str) -> str:
        return f"{exchange}/fanout/{topic}"


class FanoutToOneAdapter(CheckoutAdapter):
    name = "memqueue-fanout-to-one"
    description = "memqueue broken on purpose: a fanout reaches one listener only"
    driver_class = FanoutToOneDriver


ADAPTERS: list[Adapter] = [CheckoutAdapter(), NoFaultsAdapter(), FanoutToOneAdapter()]


def conformance_adapters() -> list[Adapter]:
    return list(ADAPTERS)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which ``[memqueue]`` settings the drivers built in this process read.

    The driver reads its options once, in ``__init__``, right after
    registering them, so this is the proof that the overrides took effect
    (or a clear sign that they did not).  Under pytest-xdist the workers build
    the drivers, so the controller has nothing to say.
    """
    defaults = options.Settings.defaults()
    for adapter in ADAPTERS:
        assert isinstance(adapter, MemqueueAdapter)
        for settings, count in sorted(adapter.built.items(), key=str):
            changed = {name: value for name, value in vars(settings).items()
                       if value != getattr(defaults, name)}
            terminalreporter.write_line(
                f"{adapter.name}: {count} driver(s) built with [{options.GROUP}] "
                + ", ".join(f"{k}={v}" for k, v in vars(settings).items())
                + f" (overridden: {', '.join(sorted(changed)) or 'none'})")
