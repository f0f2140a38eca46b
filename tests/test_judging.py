"""Judging clause by clause: a failure marks only the clauses whose check failed."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from driver_conformance import outcomes as oc
from driver_conformance.judging import Judgments

A, B = "send.fanout.all-subscribers", "send.one-of-many.single-copy"


def settle(judgments: Judgments, exc: BaseException | None) -> dict[str, list[str]]:
    report = SimpleNamespace(passed=exc is None, failed=exc is not None, skipped=False,
                             longrepr=None)
    excinfo = SimpleNamespace(value=exc) if exc is not None else None
    return judgments.settle(report, excinfo)  # type: ignore[arg-type]


def run(judgments: Judgments, body: Any) -> BaseException | None:
    try:
        body()
    except Exception as exc:
        return exc
    return None


def test_a_failing_block_charges_its_clause_only() -> None:
    j = Judgments([A, B])

    def body() -> None:
        with j.clause(A):
            pass
        with j.clause(B):
            raise AssertionError("two copies")

    assert settle(j, run(j, body)) == {A: ["pass", ""], B: ["fail", "two copies"]}


def test_clauses_after_a_failure_are_not_judged() -> None:
    j = Judgments([A, B])

    def body() -> None:
        with j.clause(A):
            raise AssertionError("one copy")
        with j.clause(B):
            pass

    settled = settle(j, run(j, body))
    assert settled[A] == ["fail", "one copy"]
    assert settled[B][0] == "not-run" and A in settled[B][1]


def test_soft_blocks_judge_every_clause() -> None:
    j = Judgments([A, B])

    def body() -> None:
        with j.clause(A, soft=True):
            raise AssertionError("one copy")
        with j.clause(B, soft=True):
            pass
        j.raise_deferred()

    error = run(j, body)
    assert isinstance(error, AssertionError)
    assert settle(j, error) == {A: ["fail", "one copy"], B: ["pass", ""]}


def test_a_failure_outside_every_block_judges_nothing() -> None:
    j = Judgments([A, B])

    def body() -> None:
        with j.clause(A):
            pass
        raise RuntimeError("driver.send() raised")

    settled = settle(j, run(j, body))
    assert {o for o, _ in settled.values()} == {"not-run"}
    assert "RuntimeError: driver.send() raised" in settled[A][1]


def test_one_clause_is_one_judgment() -> None:
    j = Judgments([A])
    assert settle(j, run(j, lambda: None)) == {A: ["pass", ""]}
    j = Judgments([A])
    assert settle(j, AssertionError("boom")) == {A: ["fail", "boom"]}


def test_a_passing_scenario_that_skips_a_check_says_so() -> None:
    j = Judgments([A, B])

    def body() -> None:
        with j.clause(A):
            pass

    settled = settle(j, run(j, body))
    assert settled[A] == ["pass", ""]
    assert settled[B][0] == "not-run"


def test_relying_on_another_clause_ends_not_run() -> None:
    j = Judgments([B])
    with pytest.raises(oc.NotRun, match=f"relies on {A}"), j.relying_on(A):
        raise AssertionError("expected 1 message, got 0")


def test_unselected_clauses_are_not_judged_and_end_the_scenario_not_run() -> None:
    j = Judgments([A, B], judged=frozenset({B}))
    with j.clause(B):
        pass
    with pytest.raises(oc.NotRun, match=f"clause {A}, which this run does not judge"), \
            j.clause(A):
        raise AssertionError("one copy")
    assert j.results == {B: j.results[B]} and j.results[B].outcome == "pass"


def test_judging_an_undeclared_clause_is_a_mistake_in_the_scenario() -> None:
    j = Judgments([A])
    with pytest.raises(ValueError, match="does not declare it"), j.clause(B):
        pass


SCENARIO = f'''
import pytest

@pytest.mark.clause("{A}", "{B}")
def test_probe_fanout_broken(kit):
    with kit.clause("{A}", soft=True):
        assert False, "fanout reached one listener"
    with kit.clause("{B}", soft=True):
        pass

@pytest.mark.clause("{B}")
def test_probe_history_forgotten(kit):
    with kit.sending("k"):
        pass
    kit.history.received("k", "L1")
    kit.history.received("k", "L2")
'''


def test_the_report_carries_each_clause_judgment(pytester: pytest.Pytester) -> None:
    """End to end: one scenario fails A and passes B; another forgot its history."""
    pytester.makepyfile(test_probe=SCENARIO)
    result = pytester.runpytest_subprocess(
        "test_probe.py", "-p", "no:cacheprovider", "--driver=reference", "-k", "probe",
        "--report-json=r.json", timeout=120)
    doc = json.loads((pytester.path / "r.json").read_text())
    scenarios = {(c["id"], s["nodeid"].split("::")[-1]): s for c in doc["clauses"]
                 for s in c["scenarios"]}
    assert scenarios[(A, "test_probe_fanout_broken")]["outcome"] == "fail"
    assert scenarios[(B, "test_probe_fanout_broken")]["outcome"] == "pass"
    history = scenarios[(B, "test_probe_history_forgotten")]
    assert history["outcome"] == "fail" and "duplicated=1" in history["message"], history
    assert result.ret == 1
