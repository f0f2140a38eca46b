"""The exit status of ``pytest --driver=...`` and of the kit's commands, defined once.

CI gates on ``$?`` alone, so every code means one thing wherever the kit
uses it (the plugin, the report, ``detect``, the CLI) and wherever it is
documented (the README and ``docs/reports.rst`` are generated from, or
checked against, :data:`MEANINGS`).  pytest's own codes 2, 3, 4, 5 and 6
keep pytest's meaning; the kit adds the verdict codes 0, 1, 7 and the
backend code 8.

With ``--expectations`` the exit status says whether the run *matched* the
driver's expected deviations (0 matched, 1 did not), not the verdict: a
driver with known deviations is non-compliant by definition, and its CI must
still go green until something changes.  The verdict is then reported beside
the status, never instead of it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit statuses of a conformance run."""

    #: Compliant: every required clause passed (or is an optional feature
    #: declared unsupported, or does not apply to the driver).  With
    #: ``--expectations``: the run matched them.
    COMPLIANT = 0
    #: Non-compliant: a required clause failed.  With ``--expectations``: the
    #: run did not match them (a new deviation, or a listed one that passed).
    NON_COMPLIANT = 1
    #: Interrupted, or a collection error (a scenario names an unknown clause).
    INTERRUPTED = 2
    #: An internal error (the report could not be written, a crash).
    INTERNAL_ERROR = 3
    #: A usage error: unknown driver, bad URL, bad option, a refused ``--certify`` run.
    USAGE_ERROR = 4
    #: No scenario was collected.
    NO_SCENARIOS = 5
    #: Too many warnings (pytest's ``--max-warnings``).
    MAX_WARNINGS = 6
    #: Unknown: required clauses were not judged (deselected, not run, skipped).
    UNKNOWN = 7
    #: The backend cannot be reached (the message names the host, never the password).
    BACKEND_UNAVAILABLE = 8


#: One line per code, as the terminal summary and the docs say it.
MEANINGS: dict[ExitCode, str] = {
    ExitCode.COMPLIANT: "compliant",
    ExitCode.NON_COMPLIANT: "non-compliant",
    ExitCode.INTERRUPTED: "interrupted, or a collection error",
    ExitCode.INTERNAL_ERROR: "internal error",
    ExitCode.USAGE_ERROR: "usage error",
    ExitCode.NO_SCENARIOS: "no scenario collected",
    ExitCode.MAX_WARNINGS: "too many warnings (pytest --max-warnings)",
    ExitCode.UNKNOWN: "verdict unknown: required clauses were not judged",
    ExitCode.BACKEND_UNAVAILABLE: "backend unavailable",
}

#: What 0 and 1 mean when the run was judged against ``--expectations``.
EXPECTATIONS_MEANINGS: dict[ExitCode, str] = {
    ExitCode.COMPLIANT: "the run matched its expectations",
    ExitCode.NON_COMPLIANT: "the run did not match its expectations",
}

_FOR_VERDICT = {
    "compliant": ExitCode.COMPLIANT,
    "non-compliant": ExitCode.NON_COMPLIANT,
    "unknown": ExitCode.UNKNOWN,
}


def for_verdict(verdict: str) -> ExitCode:
    """The exit status that stands for ``verdict`` (compliant, non-compliant, unknown)."""
    return _FOR_VERDICT[verdict]


def meaning(code: int, *, expectations: bool = False) -> str:
    """The one-line meaning of ``code`` (as the run used it), or ``""`` for a code not ours."""
    try:
        member = ExitCode(code)
    except ValueError:
        return ""
    if expectations and member in EXPECTATIONS_MEANINGS:
        return EXPECTATIONS_MEANINGS[member]
    return MEANINGS[member]
