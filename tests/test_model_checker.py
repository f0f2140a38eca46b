"""The model's violations are named after their clause, even when hypothesis calls them flaky."""

from __future__ import annotations

from hypothesis.errors import FlakyFailure

from driver_conformance.model_checker import clause_of, failure_type, first_model_failure

PROBLEM = "[notify.delivery.single-copy / incoming.requeue.redelivers] e1.m9: expected 2, got 3"


def test_a_violation_is_typed_by_its_first_clause() -> None:
    kind = failure_type(PROBLEM)
    assert kind.__name__ == "ModelFailure[notify.delivery.single-copy]"
    assert failure_type(PROBLEM) is kind
    assert clause_of("a driver raised") == "driver-error"


def test_a_flaky_violation_is_still_found() -> None:
    """A timing-dependent bug seen once and not on replay arrives inside FlakyFailure;
    it must still be charged to its clause, not counted as a failure no clause owns."""
    violation = failure_type(PROBLEM)(PROBLEM)
    flaky = FlakyFailure("Inconsistent results from replaying a failing test case",
                         [violation])
    assert first_model_failure(flaky) is violation
    assert first_model_failure(violation) is violation
    assert first_model_failure(FlakyFailure("x", [ValueError("driver")])) is None
    assert first_model_failure(RuntimeError("x")) is None
