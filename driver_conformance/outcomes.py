"""Outcomes beyond pass and fail.

A conformance verdict needs to say *why* a scenario did not run.  Both
outcomes here are pytest skips underneath (so every pytest tool, xdist
included, carries them), told apart by the prefix of the skip reason, which
survives serialisation between workers.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

UNSUPPORTED_PREFIX = "UNSUPPORTED: "
NOT_RUN_PREFIX = "NOT RUN: "


class Unsupported(pytest.skip.Exception):
    """The clause is about an optional feature the driver declared unsupported."""


class NotRun(pytest.skip.Exception):
    """The scenario needs something the adapter lacks (a fault kind, a listener style)."""


def unsupported(reason: str) -> NoReturn:
    """End the scenario as UNSUPPORTED: neither passed nor failed."""
    raise Unsupported(UNSUPPORTED_PREFIX + reason, _use_item_location=True)


def not_run(reason: str) -> NoReturn:
    """End the scenario as NOT RUN, with the reason shown in the report."""
    raise NotRun(NOT_RUN_PREFIX + reason, _use_item_location=True)


def classify_skip(reason: str) -> str:
    """``"unsupported"``, ``"not-run"`` or ``"skipped"`` from a skip reason."""
    # pytest words a plain skip "Skipped: <reason>" but a subclass of the skip
    # exception "<module>.<class>: <reason>".
    for exc in (Unsupported, NotRun):
        reason = reason.removeprefix(f"{exc.__module__}.{exc.__qualname__}: ")
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(UNSUPPORTED_PREFIX):
        return "unsupported"
    if reason.startswith(NOT_RUN_PREFIX):
        return "not-run"
    return "skipped"
