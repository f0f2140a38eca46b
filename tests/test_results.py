"""Clause outcomes from scenario outcomes: the worst wins, narrowed failures stay narrow."""

from __future__ import annotations

from types import SimpleNamespace

from driver_conformance.catalog import load_catalog
from driver_conformance.results import ResultCollector, verdict

A, B = "send.fanout.all-subscribers", "send.one-of-many.single-copy"


def report(nodeid: str, outcome: str, clauses: list[str], **props: object) -> SimpleNamespace:
    return SimpleNamespace(
        nodeid=nodeid, when="call", duration=0.1, longrepr="boom" if outcome == "failed" else None,
        passed=outcome == "passed", failed=outcome == "failed", skipped=False,
        user_properties=[("clauses", clauses), *props.items()],
    )


def test_worst_outcome_wins() -> None:
    results = ResultCollector()
    results.add(report("t1", "passed", [A]))
    results.add(report("t2", "failed", [A, B]))
    outcomes = results.clause_outcomes(load_catalog())
    assert outcomes[A][0] == "fail" and outcomes[B][0] == "fail"


def test_failure_narrowed_to_the_clause_it_disproves() -> None:
    results = ResultCollector()
    results.add(report("t1", "passed", [A, B]))
    results.add(report("model", "failed", [A, B], failed_clauses=[B]))
    outcomes = results.clause_outcomes(load_catalog())
    assert outcomes[A][0] == "pass"
    assert outcomes[B][0] == "fail"


def test_no_results_is_unknown() -> None:
    catalog = load_catalog()
    assert verdict(catalog, ResultCollector().clause_outcomes(catalog)) == "unknown"
