"""The broken variants: the reference driver with one clause of the contract broken.

Each variant is a :class:`~driver_conformance.broken.wrappers.WrappedDriver`
subclass overriding the one or two hooks its breakage needs, registered with
:func:`variant` under a name, the catalog clause it breaks and a one-line
description.  The class docstring says why the breakage is *faithful*: a
mistake a real driver makes (or the in-tree drivers made), not an arbitrary
sabotage, so that catching it says something about the scenarios.

A variant must break its clause and, as far as a wrapper allows, nothing
else a scenario of that clause needs to get to its assertion: the point is
that the suite fails *and names the clause*.

Where a variant lives
---------------------
A variant lives in the module named after its clause's ``area`` in the
catalog, beside the scenarios that must catch it: the variants breaking a
clause of ``scenarios/retry.py`` are in ``broken/retry.py``, and so on for
every area of :data:`driver_conformance.catalog.AREAS`.  The registry and
the helpers the variants share are in :mod:`._registry`.

This module imports the area modules in the catalog's area order, which is
what fills :data:`VARIANTS` (and so the order of ``driver-conformance detect``
and of the negative-control tests), and re-exports the registry's public
names, so ``from driver_conformance.broken.variants import Variant`` keeps
working.
"""

from __future__ import annotations

import importlib

from driver_conformance.broken._registry import VARIANTS, Variant, select, variant
from driver_conformance.catalog import AREAS

__all__ = ["VARIANTS", "Variant", "select", "variant"]

# One module per area, imported in AREAS order: a new area of the catalog needs
# its module here before it can have negative controls.
for _area in AREAS:
    importlib.import_module(f"{__package__}.{_area}")
del _area
