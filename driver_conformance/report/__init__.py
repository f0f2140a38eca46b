"""Run reports: the JSON document a conformance run writes, and what is rendered from it.

The JSON document is the one artefact of a run that outlives the terminal, so
everything a reader of a report needs (metadata, per-clause outcome, the
scenarios behind each clause) is in it, and every renderer (HTML, Markdown,
badge) is a pure function of it.  That keeps a report reproducible from the
file alone: CI jobs can render, merge and re-render without the driver, the
broker or the kit's pytest plugin.

This module holds only constants, so that importing it (from the CLI, or from
a renderer) costs nothing.
"""

from __future__ import annotations

#: Version of the report format.  Readers accept every document of the same
#: major version; a minor bump only adds optional fields.
SCHEMA_VERSION = "1.0"
#: The ``kind`` every report document carries, to tell it from other JSON.
KIND = "driver-conformance-report"

#: Scenario and clause outcomes, in the order renderers list them.
OUTCOMES = ("pass", "fail", "error", "xfail", "xpass", "unsupported", "not-run")

COMPLIANT = "compliant"
NON_COMPLIANT = "non-compliant"
UNKNOWN = "unknown"
VERDICTS = (COMPLIANT, NON_COMPLIANT, UNKNOWN)

# Exit codes of ``pytest --driver=...`` (see docs/reports.rst).  pytest's own
# codes 2 (interrupted, collection errors), 3 (internal error), 4 (usage
# error) and 5 (no tests collected) keep their meaning; the kit adds 6
# (backend unavailable, :data:`driver_conformance.plugin.EXIT_BACKEND_UNAVAILABLE`)
# and the verdict codes below.
EXIT_COMPLIANT = 0
EXIT_NON_COMPLIANT = 1
#: A ``--certify`` run refused (a required clause deselected, skipped or
#: expected to fail): a usage error, like pytest's own.
EXIT_CERTIFY_REFUSED = 4
#: The run ended but required clauses never ran: the verdict is unknown.
EXIT_UNKNOWN = 7

_EXIT_FOR_VERDICT = {
    COMPLIANT: EXIT_COMPLIANT,
    NON_COMPLIANT: EXIT_NON_COMPLIANT,
    UNKNOWN: EXIT_UNKNOWN,
}


def exit_code_for(verdict: str) -> int:
    """The process exit code that stands for ``verdict`` (compliant 0, non-compliant 1)."""
    return _EXIT_FOR_VERDICT[verdict]
