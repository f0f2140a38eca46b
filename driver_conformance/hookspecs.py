"""The hooks through which drivers under test are wired into the kit.

The kit keeps its own :class:`pluggy.PluginManager` (project name
``driver_conformance``), separate from pytest's.  That is deliberate: an
adapter package registered under the ``driver_conformance.adapters`` entry-point
group is loaded only by the kit, so disabling the kit (``-p no:driver_conformance``)
leaves pytest untouched by it.  A ``conftest.py`` that defines these hook
functions is registered with the kit automatically when pytest loads it.

Implement a hook with the :data:`hookimpl` marker::

    from driver_conformance import Adapter, hookimpl

    class MyAdapter(Adapter):
        name = "mine"
        default_url = "mine://localhost/"

    @hookimpl
    def conformance_adapters():
        return [MyAdapter()]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from driver_conformance.adapter import Adapter

PROJECT = "driver_conformance"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def conformance_adapters() -> Iterable[Adapter]:
    """Return the adapters this plugin provides.

    Called once per run by every registered plugin; the results are merged
    into one registry keyed by :attr:`Adapter.name`.  Two plugins offering
    the same name is an error naming both, because silently picking one would
    test a driver the user did not ask for.
    """


@hookspec
def conformance_option_overrides(
    adapter: Adapter, overrides: MutableMapping[str, MutableMapping[str, Any]]
) -> None:
    """Adjust the configuration overrides applied to every driver built for ``adapter``.

    ``overrides`` starts as a copy of :meth:`Adapter.option_overrides` and is
    mutated in place (``overrides.setdefault(group, {})[name] = value``).  This
    lets a project tune a driver it does not own, from its ``conftest.py``,
    without subclassing the adapter.
    """


@hookspec
def conformance_run_facts(adapter: Adapter, url: str) -> Mapping[str, str] | None:
    """Return extra facts about the run (driver package version, broker version, ...).

    Called once the backend is prepared, before any driver is built.  The
    facts are stored in the report (``run.facts``) and shown on its HTML
    card; the effective configuration of the drivers (every option that
    differs from its default, the adapter's overrides) is recorded by the kit
    itself in ``run.configuration``.  The ``url`` given is already masked; a
    fact must never carry a credential.
    """
