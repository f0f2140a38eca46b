"""The outcomes a scenario and a clause can have, and the ones beyond pass and fail.

A conformance verdict needs to say *why* something did not pass.  Besides
pytest's pass, fail, xfail and xpass, three outcomes say why a scenario
judged nothing, each a pytest skip underneath (so every pytest tool, xdist
included, carries it) told apart by the prefix of the skip reason, which
survives serialisation between workers:

* **unsupported** -- an optional feature the driver declares it lacks;
* **not applicable** -- the contract does not ask it of this driver: the
  clause is about poll-style listeners and the driver's ``listen()`` returns
  callback listeners, which the contract leaves to "the driver's preference";
* **not run** -- the scenario needs something the adapter lacks (a fault kind),
  or could not judge the clause (the reason says which and how to get there).

Not applicable is excluded from a clause's pass rate and from the verdict;
not run keeps the verdict ``unknown`` until the clause is judged.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

PASS = "pass"
FAIL = "fail"
#: A scenario that broke in a way that judged none of its clauses (a crashed worker).
ERROR = "error"
XFAIL = "xfail"
XPASS = "xpass"
UNSUPPORTED = "unsupported"
NOT_APPLICABLE = "not-applicable"
NOT_RUN = "not-run"

#: Every outcome, worst first: the order a clause's scenarios are summed in.
ORDER = (ERROR, FAIL, XPASS, XFAIL, PASS, UNSUPPORTED, NOT_APPLICABLE, NOT_RUN)
#: Outcomes of a required clause that make a driver non-compliant.
FAILING = frozenset({ERROR, FAIL, XPASS, XFAIL})
#: Outcomes that judged nothing: the clause was not looked at, and here is why.
UNJUDGED = frozenset({UNSUPPORTED, NOT_APPLICABLE, NOT_RUN})

UNSUPPORTED_PREFIX = "UNSUPPORTED: "
NOT_APPLICABLE_PREFIX = "NOT APPLICABLE: "
NOT_RUN_PREFIX = "NOT RUN: "
_PREFIXES = ((UNSUPPORTED_PREFIX, UNSUPPORTED), (NOT_APPLICABLE_PREFIX, NOT_APPLICABLE),
             (NOT_RUN_PREFIX, NOT_RUN))


class Unsupported(pytest.skip.Exception):
    """The clause is about an optional feature the driver declared unsupported."""


class NotApplicable(pytest.skip.Exception):
    """The contract does not ask this of the driver (see the module docstring)."""


class NotRun(pytest.skip.Exception):
    """The scenario needs something the adapter lacks, or could not judge its clause."""


def unsupported(reason: str) -> NoReturn:
    """End the scenario as UNSUPPORTED: neither passed nor failed."""
    raise Unsupported(UNSUPPORTED_PREFIX + reason, _use_item_location=True)


def not_applicable(reason: str) -> NoReturn:
    """End the scenario as NOT APPLICABLE to this driver, with the reason."""
    raise NotApplicable(NOT_APPLICABLE_PREFIX + reason, _use_item_location=True)


def not_run(reason: str) -> NoReturn:
    """End the scenario as NOT RUN, with the reason shown in the report."""
    raise NotRun(NOT_RUN_PREFIX + reason, _use_item_location=True)


def strip_skip_prefix(reason: str) -> str:
    """A skip reason without the words pytest puts in front of it."""
    # pytest words a plain skip "Skipped: <reason>" but a subclass of the skip
    # exception "<module>.<class>: <reason>".
    for exc in (Unsupported, NotApplicable, NotRun):
        reason = reason.removeprefix(f"{exc.__module__}.{exc.__qualname__}: ")
    return reason.removeprefix("Skipped: ")


def classify_skip(reason: str) -> str:
    """``unsupported``, ``not-applicable``, ``not-run`` or ``skipped`` from a skip reason."""
    reason = strip_skip_prefix(reason)
    for prefix, outcome in _PREFIXES:
        if reason.startswith(prefix):
            return outcome
    return "skipped"


def skip_message(reason: str) -> str:
    """The reason of a kit skip without any prefix: what a reader needs to know."""
    reason = strip_skip_prefix(reason)
    for prefix, _ in _PREFIXES:
        reason = reason.removeprefix(prefix)
    return reason
