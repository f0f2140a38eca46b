"""One conformance run: the adapter chosen, its backend, and how drivers are built.

Built once per pytest session (per xdist worker) by the plugin; scenarios
reach it through the ``kit`` fixture.  It owns the backend's lifetime: the
adapter prepares it when the run starts and tears it down when it ends, so
whatever the run declared on a broker is gone afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from typing import Any

from oslo_config import cfg

from driver_conformance.adapter import CALLBACK, Adapter, Backend, Capabilities
from driver_conformance.registry import AdapterRegistry
from driver_conformance.timing import Timing
from driver_conformance.urls import mask_url


def run_prefix() -> str:
    """A name prefix unique to this run and xdist worker: ``dc-<run>-<worker>``.

    The run part comes from ``DRIVER_CONFORMANCE_RUN_ID`` when set (so that a
    controller can share it with its workers) and is random otherwise.
    """
    run_id = os.environ.get("DRIVER_CONFORMANCE_RUN_ID") or uuid.uuid4().hex[:8]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"dc-{run_id}-{worker}"


def base_conf() -> cfg.ConfigOpts:
    """A private ``ConfigOpts`` with every option group oslo.messaging's public API reads."""
    from oslo_messaging import conffixture

    conf = cfg.ConfigOpts()
    conf([], project="driver-conformance", default_config_files=[], default_config_dirs=[])
    conffixture.ConfFixture(conf)
    return conf


def shorten_executor_idle_wait(seconds: float = 0.05) -> None:
    """Let the public API's servers stop in about 50 ms instead of about 1 s.

    ``RPCServer.wait()`` shuts its futurist thread pool down, and each idle
    worker only notices after ``MAX_IDLE_FOR`` (1 s) in a blocking queue get.
    Every public-API scenario stops at least one server, so that second is
    most of the suite's wall time.  Shortening the idle wait in this process
    changes when idle workers look at their stop flag, nothing else.
    """
    from futurist import _thread

    _thread.ThreadWorker.MAX_IDLE_FOR = seconds


@dataclasses.dataclass
class ConformanceRun:
    adapter: Adapter
    registry: AdapterRegistry
    user_url: str
    timing: Timing
    prefix: str = dataclasses.field(default_factory=run_prefix)
    backend: Backend | None = None
    capabilities: Capabilities = dataclasses.field(default_factory=Capabilities)
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    facts: dict[str, str] = dataclasses.field(default_factory=dict)
    _stack: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        """The URL drivers are built with (the backend may have rewritten it)."""
        return self.backend.url if self.backend else self.user_url

    @property
    def masked_url(self) -> str:
        return mask_url(self.user_url)

    def start(self) -> None:
        """Prepare the backend; raises ``BackendUnavailable`` when it cannot be reached."""
        shorten_executor_idle_wait()
        self.backend = self._stack.enter_context(self.adapter.backend(self.user_url, self.prefix))
        self.capabilities = self.adapter.get_capabilities(self.url)
        self.overrides = self.registry.option_overrides(self.adapter)
        self.facts = dict(self.backend.facts)
        for extra in self.registry.pm.hook.conformance_run_facts(
            adapter=self.adapter, url=self.masked_url
        ):
            self.facts.update(extra or {})

    def finish(self) -> None:
        self._stack.close()

    def make_conf(self) -> cfg.ConfigOpts:
        """A fresh configuration with oslo.messaging's options and the adapter's overrides."""
        conf = base_conf()
        conf.set_override("control_exchange", f"{self.prefix}-default")
        for group, values in self.overrides.items():
            for name, value in values.items():
                conf.set_override(name, value, group=None if group == "DEFAULT" else group)
        return conf

    def make_driver(
        self,
        *,
        listener_style: str = CALLBACK,
        allowed_remote_exmods: list[str] | None = None,
        conf: cfg.ConfigOpts | None = None,
    ) -> Any:
        conf = conf or self.make_conf()
        return self.adapter.make_driver(
            conf,
            self.url,
            default_exchange=conf.control_exchange,
            allowed_remote_exmods=list(allowed_remote_exmods or []),
            listener_style=listener_style,
        )
