"""The registry of broken variants, and the few helpers the variants share.

Each area module (``addressing.py``, ``retry.py``, ...) registers its
variants with :func:`variant` as it is imported; :mod:`.variants` imports
the area modules in the catalog's area order, so :data:`VARIANTS` lists the
variants area by area, and within an area in the order their module
defines them.  Nothing here imports an area module: that is what lets any
of them import this one without a cycle.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import threading
from collections.abc import Callable
from typing import Any

import oslo_messaging

from driver_conformance.broken.wrappers import WrappedDriver


@dataclasses.dataclass(frozen=True)
class Variant:
    """One negative control: a wrapper breaking ``clause``."""

    name: str
    clause: str
    description: str
    wrapper: type[WrappedDriver]

    @property
    def adapter_name(self) -> str:
        return f"broken-{self.name}"


VARIANTS: list[Variant] = []


def variant(name: str, clause: str, description: str
            ) -> Callable[[type[WrappedDriver]], type[WrappedDriver]]:
    """Register the decorated wrapper class as the variant ``name`` breaking ``clause``."""

    def register(cls: type[WrappedDriver]) -> type[WrappedDriver]:
        if any(v.name == name for v in VARIANTS):
            raise ValueError(f"duplicate broken variant {name!r}")
        cls.variant_name = name
        VARIANTS.append(Variant(name, clause, description, cls))
        return cls

    return register


def select(patterns: list[str] | None = None) -> list[Variant]:
    """The variants whose name matches any of ``patterns`` (globs); all when none given."""
    if not patterns:
        return list(VARIANTS)
    return [v for v in VARIANTS if any(fnmatch.fnmatchcase(v.name, p) for p in patterns)]


def _target(target: Any, **changes: Any) -> oslo_messaging.Target:
    """A copy of ``target`` with ``changes`` (Target is mutable: never change the caller's)."""
    fields = {"exchange": target.exchange, "topic": target.topic, "server": target.server,
              "fanout": target.fanout, "namespace": target.namespace,
              "version": target.version}
    fields.update(changes)
    return oslo_messaging.Target(**fields)


class _Gate:
    """A small process-wide registry shared by every driver instance of one variant.

    Several variants need to know what other instances of the same (broken)
    driver do in this process: which listeners run, which objects were sent.
    A real driver would know it from its backend; a wrapper keeps it here.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[Any, list[Any]] = collections.defaultdict(list)

    def add(self, key: Any, item: Any) -> None:
        with self.lock:
            self.items[key].append(item)

    def remove(self, key: Any, item: Any) -> None:
        with self.lock:
            if item in self.items.get(key, []):
                self.items[key].remove(item)

    def first(self, key: Any) -> Any:
        with self.lock:
            found = self.items.get(key) or [None]
            return found[0]


def _pause(seconds: float) -> None:
    """A short, bounded wait that is part of a broken driver's own behaviour.

    The pause between two attempts of a variant's retry loop, or the delay of
    a background publisher or reaper before it works, as such drivers have.
    A driver may wait; a scenario may not (scenarios wait on a condition with
    a deadline, see :mod:`driver_conformance.timing`), and nothing here waits
    *for* a scenario: ``seconds`` is always a small constant, so the wait ends
    by itself whatever the test does.  It waits on an event nobody sets,
    which is ``time.sleep`` without its name.
    """
    threading.Event().wait(seconds)
