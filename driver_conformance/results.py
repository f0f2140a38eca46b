"""From pytest reports to clause outcomes and a verdict.

A clause is checked by one or more scenarios (test items, parametrized
cases included).  Its outcome is the worst of theirs: any failure fails the
clause, a clause all of whose scenarios were UNSUPPORTED is unsupported, and
a clause none of whose scenarios ran is not-run.  The verdict follows the
rules documented in the report format: compliant only when every required
clause ran and passed (or is an optional feature declared unsupported).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from driver_conformance.catalog import Catalog
from driver_conformance.outcomes import classify_skip

#: Scenario and clause outcomes, worst first.
OUTCOME_ORDER = ("error", "fail", "xpass", "xfail", "pass", "unsupported", "not-run")

COMPLIANT = "compliant"
NON_COMPLIANT = "non-compliant"
UNKNOWN = "unknown"


@dataclasses.dataclass
class ScenarioResult:
    nodeid: str
    clauses: list[str]
    outcome: str = "not-run"
    duration: float = 0.0
    message: str = ""
    delivery: dict[str, int] | None = None
    leaked_threads: list[str] = dataclasses.field(default_factory=list)
    #: When a scenario covering several clauses fails, the clauses its failure
    #: disproves (``("failed_clauses", [...])`` in the item's user properties);
    #: None means all of them.
    failed_clauses: list[str] | None = None

    def outcome_for(self, clause_id: str) -> str:
        """This scenario's outcome as evidence about ``clause_id``."""
        if (self.outcome in ("fail", "error") and self.failed_clauses is not None
                and clause_id not in self.failed_clauses):
            return "not-run"
        return self.outcome

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _short(longrepr: Any) -> str:
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    return crash or str(longrepr).strip().splitlines()[-1] if str(longrepr).strip() else ""


class ResultCollector:
    """Fed every ``TestReport`` (from this process or xdist workers)."""

    def __init__(self) -> None:
        self.scenarios: dict[str, ScenarioResult] = {}

    def add(self, report: Any) -> None:
        props = dict(report.user_properties)
        clauses = props.get("clauses")
        if clauses is None:
            return
        res = self.scenarios.setdefault(report.nodeid, ScenarioResult(report.nodeid, clauses))
        if "delivery" in props:
            res.delivery = props["delivery"]
        if "leaked_threads" in props:
            res.leaked_threads = props["leaked_threads"]
        if "failed_clauses" in props:
            res.failed_clauses = props["failed_clauses"]
        if report.when == "call":
            res.duration = report.duration
        outcome = self._outcome(report)
        if outcome is None:
            return
        if report.when == "call" or res.outcome == "not-run" or outcome == "error":
            if not (report.when != "call" and outcome == "error" and res.outcome == "fail"):
                res.outcome = outcome
                res.message = _short(report.longrepr) if outcome != "pass" else ""

    @staticmethod
    def _outcome(report: Any) -> str | None:
        xfail = hasattr(report, "wasxfail")
        if report.skipped:
            if xfail:
                return "xfail"
            return {"unsupported": "unsupported", "not-run": "not-run"}.get(
                classify_skip(_short(report.longrepr)), "not-run"
            )
        if report.failed:
            return "fail" if report.when == "call" else "error"
        if report.when == "call":
            return "xpass" if xfail else "pass"
        return None

    def clause_outcomes(self, catalog: Catalog) -> dict[str, tuple[str, list[ScenarioResult]]]:
        by_clause: dict[str, list[ScenarioResult]] = {c.id: [] for c in catalog}
        for res in self.scenarios.values():
            for cid in res.clauses:
                by_clause.setdefault(cid, []).append(res)
        return {cid: (worst(r.outcome_for(cid) for r in rs), rs)
                for cid, rs in by_clause.items()}


def worst(outcomes: Iterable[str]) -> str:
    outcomes = set(outcomes)
    if not outcomes:
        return "not-run"
    if outcomes <= {"pass", "unsupported"} and "pass" in outcomes:
        return "pass"
    for outcome in OUTCOME_ORDER:
        if outcome in outcomes:
            return outcome
    return "not-run"


def verdict(catalog: Catalog, outcomes: dict[str, tuple[str, list[ScenarioResult]]]) -> str:
    """compliant / non-compliant / unknown, by the rules in the module docstring."""
    if not any(rs for _, rs in outcomes.values()):
        return UNKNOWN
    missing = False
    for clause in catalog:
        outcome, _ = outcomes.get(clause.id, ("not-run", []))
        if not clause.required:
            continue
        if outcome in ("fail", "error", "xpass", "xfail"):
            return NON_COMPLIANT
        if outcome == "unsupported" and clause.level == "OPTIONAL":
            continue
        if outcome != "pass":
            missing = True
    return UNKNOWN if missing else COMPLIANT
