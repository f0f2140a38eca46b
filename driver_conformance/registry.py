"""The adapter registry: every adapter the kit can find, by name.

Adapters come from three places, all through the same hook: the kit's own
(entry points of this distribution), installed packages (the
``driver_conformance.adapters`` entry-point group) and ``conftest.py`` files
(registered by the pytest plugin as pytest loads them).
"""

from __future__ import annotations

import copy
import importlib.metadata
from collections.abc import Iterable
from typing import Any

import pluggy

from driver_conformance import hookspecs
from driver_conformance.adapter import Adapter

#: Entry-point group for installed adapter packages.
ADAPTER_GROUP = "driver_conformance.adapters"
#: Name of the adapter that tests any installed driver by its transport URL.
BY_URL = "url"


class UnknownAdapter(LookupError):
    """``--driver`` names no adapter; the message lists the ones there are."""


class AdapterConflict(Exception):
    """Two plugins offer adapters with the same name."""


class KitPluginManager(pluggy.PluginManager):
    """Accepts unmarked ``conformance_*`` functions too, as pytest does for ``pytest_*``.

    A driver's ``conftest.py`` can then define ``def conformance_adapters():``
    without importing the kit's marker.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str):  # type: ignore[override]
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("conformance_") and callable(
            getattr(plugin, name, None)
        ):
            return {}  # type: ignore[return-value]
        return opts


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the kit's hookspecs and, by default, installed adapters."""
    pm = KitPluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        load_adapter_entry_points(pm)
    return pm


class AdapterLoadError(Exception):
    """An installed adapter package failed to import."""


def load_adapter_entry_points(pm: pluggy.PluginManager) -> None:
    """Register every plugin of the ``driver_conformance.adapters`` group.

    Unlike ``load_setuptools_entrypoints``, a package that fails to import is
    reported in one line naming it, not as a traceback out of pytest's core.
    """
    for ep in importlib.metadata.entry_points(group=ADAPTER_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise AdapterLoadError(
                f"adapter plugin {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        pm.register(plugin, name=ep.name)


def registry_for_pytest(pluginmanager: Any) -> AdapterRegistry:
    """The adapters a pytest run sees: installed ones, and its loaded ``conftest.py`` files.

    ``pluginmanager`` is pytest's (``config.pluginmanager``); every plugin of
    it that implements a kit hook (a conftest defining ``conformance_adapters``)
    is registered with the kit's own plugin manager under pytest's name for
    it (the conftest's path), so ``driver-conformance list`` can say where an
    adapter came from.  Raises :class:`AdapterLoadError` or
    :class:`AdapterConflict` (one line each).
    """
    pm = make_plugin_manager()
    for plugin in pluginmanager.get_plugins():
        if is_kit_plugin(plugin) and not pm.is_registered(plugin):
            pm.register(plugin, name=pluginmanager.get_name(plugin))
    return AdapterRegistry(pm)


def is_kit_plugin(obj: object) -> bool:
    """Whether ``obj`` (a module, say a conftest) implements any of the kit's hooks."""
    return any(
        callable(getattr(obj, name, None))
        for name in dir(hookspecs)
        if name.startswith("conformance_")
    )


class AdapterRegistry:
    """Adapters by name, collected from a plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._adapters: dict[str, Adapter] = {}
        self._origin: dict[str, str] = {}
        for plugin, adapters in self._collect():
            for adapter in adapters:
                self._add(adapter, self.pm.get_name(plugin) or repr(plugin))

    def _collect(self) -> Iterable[tuple[object, Iterable[Adapter]]]:
        for impl in self.pm.hook.conformance_adapters.get_hookimpls():
            yield impl.plugin, impl.function() or ()

    def _add(self, adapter: Adapter, origin: str) -> None:
        if not adapter.name:
            raise AdapterConflict(f"adapter {adapter!r} from {origin} has no name")
        if adapter.name in self._adapters:
            raise AdapterConflict(
                f"adapter name {adapter.name!r} is offered by both "
                f"{self._origin[adapter.name]} and {origin}"
            )
        self._adapters[adapter.name] = adapter
        self._origin[adapter.name] = origin

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def items(self) -> list[tuple[str, Adapter]]:
        return sorted(self._adapters.items())

    def origin(self, name: str) -> str:
        return self._origin[name]

    def get(self, name: str) -> Adapter:
        try:
            return self._adapters[name]
        except KeyError:
            raise UnknownAdapter(
                f"unknown driver {name!r}; available: {', '.join(self.names()) or '(none)'}"
            ) from None

    def option_overrides(self, adapter: Adapter) -> dict[str, dict[str, Any]]:
        """The adapter's overrides after every plugin's ``conformance_option_overrides``."""
        overrides = {g: dict(v) for g, v in copy.deepcopy(adapter.option_overrides()).items()}
        self.pm.hook.conformance_option_overrides(adapter=adapter, overrides=overrides)
        return overrides
