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
from pathlib import Path
from typing import Any

from driver_conformance.adapter import CALLBACK, Adapter, Backend, BackendUnavailable, Capabilities
from driver_conformance.bounded import call_bounded
from driver_conformance.brokers.janitor import Janitor
from driver_conformance.configuration import (
    DEFAULT_GROUP,
    DriverConf,
    OverridesError,
    base_conf,
    judged_configuration,
    unapplied_overrides,
)
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
    #: Why the backend could not be prepared (masked: never a password), once tried.
    start_error: str | None = None
    #: What the kit learned of the driver by using it (``listener`` style, ...).
    observed: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Who cleans the backend when the run ends (chosen by the adapter; see brokers.janitor).
    janitor: Janitor | None = None
    #: What the janitor said when it cleaned.
    cleanup: str | None = None
    #: The user's oslo.config files (``--oslo-config-file``), in order.
    config_files: list[Path] = dataclasses.field(default_factory=list)
    #: The configuration judged (see :func:`configuration.judged_configuration`).
    configuration: dict[str, Any] | None = None
    _started: bool = False
    _stack: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        """The URL drivers are built with (the backend may have rewritten it)."""
        return self.backend.url if self.backend else self.user_url

    @property
    def masked_url(self) -> str:
        return mask_url(self.user_url)

    @property
    def fault_kinds(self) -> frozenset[str]:
        """The fault kinds the backend's injector can produce (none without one)."""
        injector = self.backend.faults if self.backend else None
        return frozenset(injector.kinds) if injector is not None else frozenset()

    def capabilities_dict(self) -> dict[str, Any]:
        """What the report says of the driver: its declarations and the faults available."""
        return {**self.capabilities.as_dict(), "faults": sorted(self.fault_kinds)}

    def ensure_started(self) -> bool:
        """Prepare the backend once; False (and :attr:`start_error` says why) if it can't be."""
        if not self._started:
            self._started = True
            try:
                self.start()
            except BackendUnavailable as exc:
                self.start_error = mask_url(str(exc))
        return self.start_error is None

    def start(self) -> None:
        """Prepare the backend; raises ``BackendUnavailable`` when it cannot be reached.

        The run's janitor cleans the backend after the adapter has torn it
        down (the stack unwinds in reverse), whatever happened in between.
        """
        shorten_executor_idle_wait()
        self.janitor = self.adapter.janitor(self.user_url, self.prefix)
        self._stack.callback(self._clean)
        self.backend = self._stack.enter_context(self.adapter.backend(self.user_url, self.prefix))
        self.capabilities = self.adapter.get_capabilities(self.url)
        self.overrides = self.registry.option_overrides(self.adapter)
        self.facts = dict(self.backend.facts)
        self.facts["cleanup"] = self.janitor.description
        for extra in self.registry.pm.hook.conformance_run_facts(
            adapter=self.adapter, url=self.masked_url
        ):
            self.facts.update(extra or {})
        self.check_overrides()

    def finish(self) -> None:
        """Tear the backend down and clean it (once; idempotent)."""
        self._stack.close()

    def _clean(self) -> None:
        if self.janitor is not None:
            self.cleanup = self.janitor.clean()
            self.facts["cleanup"] = self.cleanup

    def make_conf(self) -> DriverConf:
        """A fresh configuration with oslo.messaging's options and the adapter's overrides.

        The overrides of a driver's own option group take effect when the
        driver registers it (see :mod:`driver_conformance.configuration`).
        """
        conf = base_conf(self.overrides, self.config_files)
        conf.override(DEFAULT_GROUP, "control_exchange", f"{self.prefix}-default")
        return conf

    def check_overrides(self) -> None:
        """Build one driver: fail, in one line, on an override it never registered, and
        record the configuration the run judges (every option set, secrets masked)."""
        conf = self.make_conf()
        driver = call_bounded(self.make_driver, conf=conf, bound=self.timing.call_bound,
                              what="driver construction")
        try:
            problem = unapplied_overrides(conf, self.adapter.name)
            self.configuration = judged_configuration(conf, self.config_files)
        finally:
            with contextlib.suppress(Exception):
                call_bounded(driver.cleanup, bound=self.timing.call_bound,
                             what="driver.cleanup()")
        if problem:
            raise OverridesError(problem)

    def make_driver(
        self,
        *,
        listener_style: str = CALLBACK,
        allowed_remote_exmods: list[str] | None = None,
        conf: DriverConf | None = None,
    ) -> Any:
        conf = conf or self.make_conf()
        driver = self.adapter.make_driver(
            conf,
            self.url,
            default_exchange=conf.control_exchange,
            allowed_remote_exmods=list(allowed_remote_exmods or []),
            listener_style=listener_style,
        )
        return self.janitor.watch(driver) if self.janitor is not None else driver
