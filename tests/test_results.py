"""The results pipeline: reports in, clause outcomes and one verdict out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from driver_conformance import outcomes as oc
from driver_conformance.catalog import load_catalog
from driver_conformance.results import ClauseOutcome, ResultCollector, verdict, worst

A, B = "send.fanout.all-subscribers", "send.one-of-many.single-copy"
POLL = "poll.timeout.returns-empty"
OPTIONAL = "incoming.requeue.redelivers"


def report(nodeid: str, outcome: str, clauses: list[str], when: str = "call",
           **props: Any) -> SimpleNamespace:
    return SimpleNamespace(
        nodeid=nodeid, when=when, duration=0.1,
        longrepr="boom" if outcome == "failed" else (
            ("f", 1, props.pop("reason")) if outcome == "skipped" else None),
        passed=outcome == "passed", failed=outcome == "failed", skipped=outcome == "skipped",
        user_properties=[("clauses", clauses), *props.items()],
    )


def by_id(collector: ResultCollector) -> dict[str, Any]:
    return {r.clause.id: r for r in collector.clause_results(load_catalog())}


def test_worst_judgment_wins() -> None:
    results = ResultCollector()
    results.add(report("t1", "passed", [A], judgments={A: ["pass", ""]}))
    results.add(report("t2", "failed", [A, B], judgments={A: ["fail", "x"], B: ["pass", ""]}))
    outcomes = by_id(results)
    assert outcomes[A].outcome == "fail" and outcomes[A].reason == "x"
    assert outcomes[B].outcome == "pass"


def test_a_clause_not_judged_by_a_failed_scenario_is_not_charged() -> None:
    results = ResultCollector()
    results.add(report("t1", "failed", [A, B], judgments={
        A: ["fail", "fanout reached one"], B: ["not-run", "not judged: failed on A first"]}))
    outcomes = by_id(results)
    assert outcomes[A].outcome == "fail"
    assert outcomes[B].outcome == "not-run"
    assert outcomes[B].reason.startswith("not judged")


def test_a_failed_report_without_judgments_is_an_error() -> None:
    """A crashed pytest-xdist worker's report: the kit never judged it."""
    results = ResultCollector()
    results.add(report("t1", "failed", [A]))
    assert by_id(results)[A].outcome == "error"


def test_setup_failure_judges_nothing() -> None:
    results = ResultCollector()
    results.add(report("t1", "failed", [A], when="setup"))
    outcome = by_id(results)[A]
    assert outcome.outcome == "not-run" and "set-up failed" in outcome.reason


def test_teardown_failure_keeps_the_judgment_and_is_unexpected() -> None:
    results = ResultCollector()
    results.add(report("t1", "passed", [A], judgments={A: ["pass", ""]}))
    results.add(report("t1", "failed", [A], when="teardown"))
    assert by_id(results)[A].outcome == "pass"
    assert results.scenarios["t1"].teardown_error == "boom"
    assert results.unexpected() == ["t1"]


def test_skips_say_why() -> None:
    results = ResultCollector()
    results.add(report("t1", "skipped", [POLL],
                       reason=oc.NOT_APPLICABLE_PREFIX + "callback listeners"))
    results.add(report("t2", "skipped", [A], reason=oc.NOT_RUN_PREFIX + "no faults"))
    outcomes = by_id(results)
    assert (outcomes[POLL].outcome, outcomes[POLL].reason) == ("not-applicable",
                                                                "callback listeners")
    assert (outcomes[A].outcome, outcomes[A].reason) == ("not-run", "no faults")


def test_worst_order() -> None:
    assert worst(["pass", "fail"]) == "fail"
    assert worst(["pass", "not-run"]) == "pass"
    assert worst(["not-applicable", "not-run"]) == "not-applicable"
    assert worst(["unsupported", "not-applicable"]) == "unsupported"
    assert worst([]) == "not-run"


def test_no_results_is_unknown() -> None:
    catalog = load_catalog()
    results = ResultCollector().clause_results(catalog)
    assert verdict([ClauseOutcome(r.clause.id, r.clause.level, r.outcome) for r in results],
                   reported=False).result == "unknown"


def test_not_applicable_leaves_the_verdict_alone() -> None:
    clauses = [ClauseOutcome(A, "MUST", "pass"), ClauseOutcome(POLL, "MUST", "not-applicable")]
    assert verdict(clauses).result == "compliant"


def test_only_an_optional_clause_can_be_declared_unsupported() -> None:
    optional = [ClauseOutcome(A, "MUST", "pass"), ClauseOutcome(OPTIONAL, "OPTIONAL",
                                                                "unsupported")]
    assert verdict(optional).result == "compliant"
    must = [ClauseOutcome(A, "MUST", "unsupported")]
    judged = verdict(must)
    assert judged.result == "unknown"
    assert judged.reasons() == [f"1 required clause(s) were not judged: {A}"]


def test_a_failing_required_clause_is_non_compliant_whatever_else() -> None:
    clauses = [ClauseOutcome(A, "MUST", "fail"), ClauseOutcome(B, "MUST", "not-run")]
    judged = verdict(clauses)
    assert judged.result == "non-compliant"
    assert judged.reasons()[0] == f"MUST clause {A}: fail"


def test_should_clauses_do_not_decide() -> None:
    clauses = [ClauseOutcome(A, "MUST", "pass"), ClauseOutcome("x", "SHOULD", "fail")]
    assert verdict(clauses).result == "compliant"


def test_a_notifications_only_driver_is_judged_on_what_it_claims() -> None:
    from driver_conformance.results import judge_profiles

    clauses = [ClauseOutcome("send.x", "MUST", "unsupported", profiles=("rpc",)),
               ClauseOutcome("notify.x", "MUST", "pass", profiles=("notifications",)),
               ClauseOutcome("driver.x", "MUST", "pass", profiles=("rpc", "notifications"))]
    judged = judge_profiles(clauses, ["rpc", "notifications"], ["notifications"])
    assert judged.overall.result == "compliant"
    assert judged.profiles["rpc"].result == "unknown"
    assert judged.describe() == ("compliant (profiles judged: notifications; "
                                 "not claimed: rpc)")
    both = judge_profiles(clauses, ["rpc", "notifications"], ["rpc", "notifications"])
    assert both.overall.result == "unknown", "claiming rpc puts its clauses in the verdict"
    broken = [*clauses[1:], ClauseOutcome("notify.y", "MUST", "fail",
                                          profiles=("notifications",))]
    assert judge_profiles(broken, ["rpc", "notifications"],
                          ["notifications"]).overall.result == "non-compliant"


def test_hangs_count_the_teardown_of_the_scenarios_that_hung() -> None:
    results = ResultCollector()
    results.add(report("ok", "passed", [A]))
    results.add(report("stuck", "failed", [A], hung=["listener.stop()"]))
    results.add(report("stuck", "passed", [A], when="teardown", hung=["listener.stop()"]))
    hangs = results.hangs()
    assert (hangs.calls, hangs.scenarios) == (1, 1)
    assert round(hangs.seconds, 3) == 0.2 and round(hangs.total, 3) == 0.3
    assert hangs.dominated and hangs.first == "listener.stop() in stuck"
    assert hangs.describe().startswith("the run was dominated by hangs: 1 driver call(s)")
    assert not ResultCollector().hangs().dominated
