"""The one results pipeline: scenario reports in, clause outcomes and the verdict out.

Every per-scenario fact of a run reaches :class:`ResultCollector` and nowhere
else: the outcome of each phase, the judgments of each clause (see
:mod:`driver_conformance.judging`), the delivery counts, the failure detail,
the seed, what was collected and deselected, and what pytest-xdist workers
sent back.  The terminal summary, the JSON report, ``driver-conformance
detect`` and the kit's negative-control tests all read it (or the report
written from it); none collects on its own.

A clause is judged by one or more scenarios.  Its outcome is the worst of
their judgments of it (:func:`worst`): any failure fails it; otherwise a pass
passes it; otherwise it is unsupported, not applicable, or not run, with the
reason.  :func:`verdict` is the one rule that turns clause outcomes into
``compliant``, ``non-compliant`` or ``unknown``; the report recomputes
verdicts of merged documents with the same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from driver_conformance import outcomes as oc
from driver_conformance.catalog import REQUIRED_LEVELS, Catalog, Clause

COMPLIANT = "compliant"
NON_COMPLIANT = "non-compliant"
UNKNOWN = "unknown"

#: Scenario messages a reader sees for scenarios that never reported.
DESELECTED = "deselected"
NOT_REACHED = "never ran: the session ended before this scenario"
UNSELECTED = "not judged in this run: --clause selected other clauses"


def _short(longrepr: Any) -> str:
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return oc.skip_message(str(longrepr[2]))
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    if crash:
        return str(crash)
    text = str(longrepr).strip()
    return text.splitlines()[-1] if text else ""


@dataclasses.dataclass
class ScenarioResult:
    """Everything the run learned from one scenario (one test item)."""

    nodeid: str
    #: The clauses this run judged by the scenario (declared, and selected).
    clauses: list[str]
    outcome: str = oc.NOT_RUN
    duration: float = 0.0
    #: Setup, call and teardown together (a hung teardown call shows here, not in ``duration``).
    elapsed: float = 0.0
    message: str = ""
    #: The failure's full text (traceback), for the report's detail view.
    detail: str = ""
    #: Per clause: ``[outcome, message]`` (see :mod:`driver_conformance.judging`).
    judgments: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    delivery: dict[str, int] | None = None
    leaked_threads: list[str] = dataclasses.field(default_factory=list)
    #: Driver calls that did not return within their bound.
    hung: list[str] = dataclasses.field(default_factory=list)
    teardown_error: str = ""
    hypothesis_seed: int | str | None = None
    #: With ``--expectations``: why the scenario did not match them (one line each).
    mismatch: list[str] = dataclasses.field(default_factory=list)
    #: False for scenarios that were deselected or never reached.
    reported: bool = True
    _failed_phase: str = ""

    def outcome_for(self, clause_id: str) -> tuple[str, str]:
        """This scenario's judgment of ``clause_id``: ``(outcome, message)``."""
        if clause_id in self.judgments:
            outcome, message = self.judgments[clause_id]
            return outcome, message
        if self._failed_phase == "setup":
            return oc.NOT_RUN, f"not judged: the scenario's set-up failed: {self.message}"
        if self.outcome == oc.FAIL:
            # A failed call phase without judgments: the report did not come
            # from the kit's judging (a crashed pytest-xdist worker).
            return oc.ERROR, self.message
        return self.outcome, self.message

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("_failed_phase")
        return data


def _phase_outcome(report: Any) -> str | None:
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return oc.XFAIL
        kind = oc.classify_skip(str(report.longrepr[2]) if isinstance(report.longrepr, tuple)
                                else "")
        return kind if kind != "skipped" else oc.NOT_RUN
    if report.failed:
        return oc.FAIL
    if report.when == "call":
        return oc.XPASS if hasattr(report, "wasxfail") else oc.PASS
    return None


class ResultCollector:
    """Fed every ``TestReport`` of a conformance run (this process's or xdist workers')."""

    def __init__(self) -> None:
        self.scenarios: dict[str, ScenarioResult] = {}
        #: Scenarios collected (by node id), with the clauses each is judged on.
        self.collected: dict[str, list[str]] = {}
        self.deselected: dict[str, list[str]] = {}
        #: What pytest-xdist workers reported at their end (capabilities, facts, ...).
        self.workers: list[dict[str, Any]] = []
        #: Why a ``--certify`` run cannot certify, found before any result (markers).
        self.refusals: list[str] = []
        #: Clauses this run does not judge (``--clause`` selected others).
        self.unselected: frozenset[str] = frozenset()

    def add(self, report: Any) -> None:
        props = dict(report.user_properties)
        clauses = props.get("clauses")
        if clauses is None:
            return
        res = self.scenarios.setdefault(report.nodeid, ScenarioResult(report.nodeid, clauses))
        res.elapsed += getattr(report, "duration", 0.0) or 0.0
        for name in ("delivery", "leaked_threads", "hung", "hypothesis_seed", "mismatch"):
            if name in props:
                setattr(res, name, props[name])
        if "judgments" in props:
            res.judgments = {cid: list(j) for cid, j in props["judgments"].items()}
        outcome = _phase_outcome(report)
        if outcome is None:
            return
        if report.when == "teardown":
            if report.failed:
                res.teardown_error = _short(report.longrepr)
                res.detail = res.detail or getattr(report, "longreprtext", "")
            elif outcome == oc.XFAIL and report.longrepr is not None and not res.teardown_error:
                res.teardown_error = "(expected) " + _short(report.longrepr)
            return
        if report.when == "setup" and outcome == oc.FAIL:
            res._failed_phase = "setup"
        if report.when == "call" or res.outcome == oc.NOT_RUN:
            res.outcome = outcome
            res.message = _short(report.longrepr) if outcome != oc.PASS else ""
            if report.when == "call":
                res.duration = report.duration
            if report.failed or outcome == oc.XFAIL:
                res.detail = getattr(report, "longreprtext", "") or res.detail

    def note_collected(self, nodeid: str, clauses: list[str]) -> None:
        self.collected[nodeid] = clauses

    def note_deselected(self, nodeid: str, clauses: list[str]) -> None:
        self.deselected[nodeid] = clauses

    def merge_worker(self, output: Mapping[str, Any]) -> None:
        """Take what a pytest-xdist worker knew only in its own process."""
        self.workers.append(dict(output))
        self.collected.update(output.get("collected") or {})
        self.deselected.update(output.get("deselected") or {})
        self.refusals += [r for r in output.get("refusals") or [] if r not in self.refusals]

    def worker_output(self) -> dict[str, Any]:
        return {"collected": self.collected, "deselected": self.deselected,
                "refusals": self.refusals}

    def unreported(self) -> dict[str, tuple[list[str], str]]:
        """Scenarios that never reported: node id -> (clauses, why)."""
        out: dict[str, tuple[list[str], str]] = {}
        for nodeid, clauses in self.collected.items():
            if nodeid not in self.scenarios and nodeid not in self.deselected:
                out[nodeid] = (clauses, NOT_REACHED)
        for nodeid, clauses in self.deselected.items():
            if nodeid not in self.scenarios:
                out[nodeid] = (clauses, DESELECTED)
        return out

    def clause_results(self, catalog: Catalog) -> list[ClauseResult]:
        """One result per catalog clause, in catalog order."""
        by_clause: dict[str, list[ScenarioResult]] = {c.id: [] for c in catalog}
        for res in self.scenarios.values():
            for cid in res.clauses:
                by_clause.setdefault(cid, []).append(res)
        for nodeid, (clauses, why) in self.unreported().items():
            for cid in clauses:
                by_clause.setdefault(cid, []).append(ScenarioResult(
                    nodeid, clauses, oc.NOT_RUN, message=why, reported=False))
        results = []
        for clause in catalog:
            if clause.id in self.unselected:
                results.append(ClauseResult(clause, oc.NOT_RUN, UNSELECTED, []))
            else:
                results.append(ClauseResult.of(clause, by_clause[clause.id]))
        return results

    def failed_clauses(self, catalog: Catalog) -> list[str]:
        """The clauses some scenario judged failed (what a negative control is caught by)."""
        return [r.clause.id for r in self.clause_results(catalog) if r.outcome in oc.FAILING]

    def unexpected(self) -> list[str]:
        """Scenarios that failed in a way no expectation covers (node ids)."""
        return [r.nodeid for r in self.scenarios.values()
                if r.outcome in (oc.FAIL, oc.ERROR)
                or (r.teardown_error and not r.teardown_error.startswith("(expected)"))]

    @property
    def hung_calls(self) -> int:
        return self.hangs().calls

    def hangs(self) -> Hangs:
        """What the hung driver calls cost the run (see :class:`Hangs`)."""
        hung = [r for r in self.scenarios.values() if r.hung]
        return Hangs(calls=sum(len(r.hung) for r in hung), scenarios=len(hung),
                     seconds=sum(r.elapsed for r in hung),
                     total=sum(r.elapsed for r in self.scenarios.values()),
                     first=f"{hung[0].hung[0]} in {hung[0].nodeid}" if hung else "")


@dataclasses.dataclass(frozen=True)
class Hangs:
    """The scenarios in which a driver call did not return within its bound.

    A driver that hangs in one method makes every scenario that calls it wait
    out the bound; when those scenarios are most of the run's time, the run's
    length says "hung driver", not "slow kit", and the summary says so.
    """

    calls: int
    scenarios: int
    #: Setup, call and teardown time of the scenarios with a hung call.
    seconds: float
    #: The same, over every scenario of the run.
    total: float
    #: The first hung call and its scenario, for the summary.
    first: str

    @property
    def dominated(self) -> bool:
        """Whether the scenarios with hangs took at least half of the run's scenario time."""
        return self.calls > 0 and self.seconds >= 0.5 * self.total

    def describe(self) -> str:
        head = "the run was dominated by hangs" if self.dominated else "hangs"
        return (f"{head}: {self.calls} driver call(s) did not return within their bound, in "
                f"{self.scenarios} scenario(s), which took {self.seconds:.1f} s of the "
                f"scenarios' {self.total:.1f} s (first: {self.first})")


def worst(judgments: Iterable[str]) -> str:
    """A clause's outcome from its scenarios' judgments of it.

    A failure anywhere fails the clause (the worst failing outcome wins); else
    one pass passes it; else it is unsupported, not applicable, or not run, in
    that order (a clause that does not apply to the driver is not "not run").
    """
    seen = set(judgments)
    failing = [o for o in oc.ORDER if o in seen and o in oc.FAILING]
    if failing:
        return failing[0]
    for outcome in (oc.PASS, oc.UNSUPPORTED, oc.NOT_APPLICABLE, oc.NOT_RUN):
        if outcome in seen:
            return outcome
    return oc.NOT_RUN


@dataclasses.dataclass
class ClauseResult:
    """A clause, its outcome, why, and the scenarios behind it."""

    clause: Clause
    outcome: str
    #: For an outcome other than pass: the message that explains it.
    reason: str
    scenarios: list[ScenarioResult]

    @classmethod
    def of(cls, clause: Clause, scenarios: list[ScenarioResult]) -> ClauseResult:
        judged = [(s, *s.outcome_for(clause.id)) for s in scenarios]
        outcome = worst(o for _, o, _ in judged)
        reason = ""
        if outcome != oc.PASS:
            reason = next((m for _, o, m in judged if o == outcome and m), "")
            if not scenarios:
                reason = "no scenario of this kit checks it"
        return cls(clause, outcome, reason, scenarios)


@dataclasses.dataclass(frozen=True)
class ClauseOutcome:
    """What :func:`verdict` needs of a clause: live results and report entries alike."""

    id: str
    level: str
    outcome: str
    reason: str = ""
    #: The conformance profiles the clause belongs to (see catalog.toml).
    profiles: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.level in REQUIRED_LEVELS


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The verdict, and the clauses that keep it from being ``compliant``."""

    result: str
    failing: tuple[ClauseOutcome, ...] = ()
    unjudged: tuple[ClauseOutcome, ...] = ()

    def reasons(self, limit: int = 10) -> list[str]:
        """One line per reason the verdict is not ``compliant``, most serious first."""
        if self.result == COMPLIANT:
            return []
        if not self.failing and not self.unjudged:
            return ["no scenario reported a result"]
        lines = [f"{c.level} clause {c.id}: {c.outcome}" for c in self.failing]
        if self.unjudged:
            ids = ", ".join(c.id for c in self.unjudged[:limit])
            more = f" and {len(self.unjudged) - limit} more" if len(self.unjudged) > limit else ""
            lines.append(f"{len(self.unjudged)} required clause(s) were not judged: {ids}{more}")
        return lines


def unsupported_allowed(clause: ClauseOutcome) -> bool:
    """Only an OPTIONAL feature can be declared away; a MUST never can."""
    return clause.outcome == oc.UNSUPPORTED and clause.level == "OPTIONAL"


def verdict(clauses: Iterable[ClauseOutcome], *, reported: bool = True) -> Verdict:
    """``compliant`` only when every required clause passed, was an OPTIONAL feature
    declared unsupported, or does not apply; ``non-compliant`` when one failed;
    ``unknown`` otherwise, and when no scenario reported anything (``reported``)."""
    clauses = [c for c in clauses if c.required]
    failing = tuple(c for c in clauses if c.outcome in oc.FAILING)
    unjudged = tuple(c for c in clauses
                     if c.outcome not in oc.FAILING and c.outcome not in (oc.PASS,
                                                                          oc.NOT_APPLICABLE)
                     and not unsupported_allowed(c))
    if failing:
        return Verdict(NON_COMPLIANT, failing, unjudged)
    if not reported:
        return Verdict(UNKNOWN)
    return Verdict(UNKNOWN if unjudged else COMPLIANT, failing, unjudged)


def outcomes_of(results: Iterable[ClauseResult], catalog: Catalog | None = None
                ) -> list[ClauseOutcome]:
    return [ClauseOutcome(r.clause.id, r.clause.level, r.outcome, r.reason,
                          tuple(catalog.profiles_of(r.clause.id)) if catalog else ())
            for r in results]


@dataclasses.dataclass(frozen=True)
class ProfileVerdicts:
    """The verdict of each conformance profile, and the run's over the profiles it claims.

    A driver claims the profiles it implements (a notifications-only driver
    claims ``notifications``); the run's verdict is over the clauses of the
    claimed profiles, and says which.  Clauses of no profile (a catalog
    without profiles) count for every verdict.
    """

    overall: Verdict
    profiles: dict[str, Verdict]
    claimed: tuple[str, ...]

    def describe(self) -> str:
        """``compliant (profiles rpc, notifications)``, or with what was not claimed."""
        if not self.profiles:
            return self.overall.result
        text = f"{self.overall.result} (profiles judged: {', '.join(self.claimed)}"
        unclaimed = [p for p in self.profiles if p not in self.claimed]
        if unclaimed:
            text += f"; not claimed: {', '.join(unclaimed)}"
        return text + ")"


def judge_profiles(clauses: list[ClauseOutcome], profiles: Iterable[str],
                   claimed: Iterable[str] | None = None, *, reported: bool = True
                   ) -> ProfileVerdicts:
    """Per-profile verdicts and the run's (see :class:`ProfileVerdicts`)."""
    names = list(profiles)
    chosen = tuple(p for p in names if claimed is None or p in set(claimed)) or tuple(names)

    def of(selected: set[str]) -> Verdict:
        return verdict([c for c in clauses if not c.profiles or selected & set(c.profiles)],
                       reported=reported)

    return ProfileVerdicts(overall=of(set(chosen)), claimed=chosen,
                           profiles={name: of({name}) for name in names})


@dataclasses.dataclass
class ExpectationsResult:
    """How a run compared with ``--expectations``."""

    path: str
    matched: bool
    #: Node ids of scenarios whose failure no listed deviation covers, or that went stale.
    unexpected: list[str]
    listed: int
    #: Per node id of ``unexpected``: why (``unexpected: ...`` / ``stale: ...`` lines).
    why: dict[str, list[str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunOutcome:
    """The end of a run, settled once: the verdict and the exit status that stands for it."""

    verdict: Verdict
    exit_status: int
    #: What pytest alone would have exited with.
    pytest_status: int
    #: The status the verdict alone stands for (differs under ``--expectations``).
    verdict_status: int
    #: The verdict of every profile (``verdict`` is over the claimed ones).
    profiles: ProfileVerdicts | None = None
    expectations: ExpectationsResult | None = None
    backend_error: str | None = None
    certification_problems: list[str] = dataclasses.field(default_factory=list)


__all__ = [
    "COMPLIANT",
    "NON_COMPLIANT",
    "UNKNOWN",
    "ClauseOutcome",
    "ClauseResult",
    "ExpectationsResult",
    "ProfileVerdicts",
    "ResultCollector",
    "RunOutcome",
    "ScenarioResult",
    "Verdict",
    "judge_profiles",
    "outcomes_of",
    "verdict",
    "worst",
]
