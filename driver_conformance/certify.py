"""``--certify``: a run that claims a verdict for the whole contract, and refuses otherwise.

A certification must judge every required clause: it refuses, before
anything runs, options that run a subset (``--clause``, ``-k``, ``-m``,
``--deselect``, ``--last-failed``, ``--stepwise``, ``-x``), and ``skip`` or
``xfail`` marks on scenarios of required clauses; after the run, required
clauses that were deselected, skipped or expected to fail (:func:`problems`).
A refused certification exits 4, like any usage error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from driver_conformance import outcomes as oc
from driver_conformance import stash
from driver_conformance.catalog import load_catalog
from driver_conformance.results import DESELECTED

#: Options that run a subset of the suite: a certification must run it all.
SELECTING_OPTIONS = (
    ("clause", "--clause"),
    ("keyword", "-k"),
    ("markexpr", "-m"),
    ("deselect", "--deselect"),
    ("lf", "--last-failed"),
    ("stepwise", "--stepwise"),
    ("maxfail", "-x/--maxfail"),
)


class CertifyPlugin:
    """Refuses a ``--certify`` run that cannot certify, as early as it can tell."""

    def __init__(self, config: pytest.Config) -> None:
        used = [flag for dest, flag in SELECTING_OPTIONS
                if config.getoption(dest, default=None)]
        if used and not stash.is_worker(config):
            raise pytest.UsageError(
                "--certify runs the whole suite; it cannot be combined with " + ", ".join(used))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Refuse scenarios of required clauses marked to skip or fail, before they run.

        Under pytest-xdist the items are collected in the workers; their
        refusals come back with the results and refuse the run at its end.
        """
        config = session.config
        catalog = load_catalog()
        collector = config.stash[stash.RESULTS]
        for item in session.items:
            required = [c for c in stash.clause_ids(item) if catalog[c].required]
            marks = sorted({m.name for m in item.iter_markers()
                            if m.name in ("skip", "skipif", "xfail")})
            if required and marks:
                collector.refusals.append(
                    f"{', '.join(required)}: {item.nodeid} marked {'/'.join(marks)}")
        if collector.refusals and not stash.is_worker(config):
            shown = "; ".join(collector.refusals[:5])
            more = " ..." if len(collector.refusals) > 5 else ""
            raise pytest.UsageError(f"--certify refuses this run: {shown}{more}")


def problems(clauses: Iterable[Mapping[str, Any]], refusals: Iterable[str] = ()) -> list[str]:
    """Why a run cannot certify: required clauses deselected, skipped or expected to fail.

    ``clauses`` are report entries (:func:`driver_conformance.report.document.clause_entries`),
    so that a run and a merged report are judged by the same words.  Judged
    per clause, as the verdict is: a scenario that does not apply is fine as
    long as the clause's other scenarios ran and passed.  An OPTIONAL clause
    reported UNSUPPORTED, and a clause that does not apply to the driver, are
    the allowed ways for a required clause not to pass.
    """
    found = list(refusals)
    for clause in clauses:
        if not clause.get("required"):
            continue
        outcome = clause["outcome"]
        scenarios = clause.get("scenarios") or []
        what = None
        if outcome in (oc.XFAIL, oc.XPASS):
            what = "expected to fail"
        elif outcome == oc.NOT_RUN and scenarios:
            deselected = all(s.get("message") == DESELECTED for s in scenarios)
            what = DESELECTED if deselected else "skipped or not run"
        elif outcome == oc.UNSUPPORTED and clause["level"] != "OPTIONAL":
            what = "skipped as unsupported"
        if what:
            line = f"{clause['level']} clause {clause['id']} {what}"
            if line not in found:
                found.append(line)
    return found


def describe(outcome: Any) -> list[str]:
    """The summary's lines about a certification (``outcome`` is the run's RunOutcome)."""
    if outcome.certification_problems:
        return [f"certification REFUSED ({len(outcome.certification_problems)} problem(s)):",
                *(f"  {p}" for p in outcome.certification_problems[:10])]
    if outcome.verdict.result == "compliant":
        return ["certification run: CERTIFIED compliant"]
    return [f"certification run: not certified ({outcome.verdict.result})"]
