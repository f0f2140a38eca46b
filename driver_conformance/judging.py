"""Judging clause by clause: a failure marks only the clause whose check failed.

A scenario names the clauses it checks (``@pytest.mark.clause(...)``).  One
of a single clause is one judgment: it passes, and the clause passes; it
fails, for whatever reason, and the clause fails.  A scenario of several
clauses would make one bug look like several if its failure were charged to
all of them, so it judges each clause in a block of its own::

    with kit.clause("send.fanout.all-subscribers"):
        assert tally.where("f1") == ["L1", "L2", "L3"]
    with kit.clause("send.one-of-many.single-copy"):
        assert len(tally.where("c1")) == 1

The first block that fails fails its clause and ends the scenario; clauses
judged before it keep their pass; clauses after it are *not judged by it*,
with the reason.  A scenario that fails outside every block (shared set-up:
building drivers, sending; or a delivery history that is not clean) judges
none of its clauses, not even those whose blocks passed: it did not show
they hold.  So the evidence a multi-clause scenario gathers comes first, in
waits that do not assert, and its judgments after.

Under ``--clause`` only the selected clauses are judged: a block of another
clause still runs (the scenario needs what it does), but its failure is not
recorded, and ends the scenario as NOT RUN for the selected clauses after it.

The judgments of a scenario travel on its call-phase report, in
``user_properties`` (``("judgments", {clause: [outcome, message]})``), so
that they reach the pytest-xdist controller like every other result.  The
:class:`JudgingPlugin` also makes the delivery history judge every scenario
that recorded one: a scenario that lost or duplicated a message fails even if
it never looked.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from driver_conformance import outcomes, stash

#: The ``user_properties`` name judgments travel under.
PROPERTY = "judgments"
#: Attribute set on an exception once a block charged it, so enclosing blocks do not.
_CHARGED = "_driver_conformance_charged"


@dataclasses.dataclass
class Judgment:
    outcome: str
    message: str = ""


def _first_charge(exc: BaseException) -> bool:
    """Mark ``exc`` as charged; False if a block nested inside already charged it."""
    if getattr(exc, _CHARGED, False):
        return False
    setattr(exc, _CHARGED, True)
    return True


def short(exc: BaseException) -> str:
    """One line naming ``exc``: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, AssertionError) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class Judgments:
    """The judgments one scenario makes, clause by clause (see the module docstring)."""

    def __init__(self, declared: Sequence[str], judged: frozenset[str] | None = None) -> None:
        self.declared = list(declared)
        #: The declared clauses this run judges (all of them unless ``--clause``).
        self.selected = [c for c in self.declared if judged is None or c in judged]
        self.results: dict[str, Judgment] = {}
        #: The clause a failure was charged to, once one was.
        self.failed_on: str | None = None
        #: Failures of soft blocks, raised when the scenario's body ends.
        self.deferred: list[BaseException] = []

    @property
    def single(self) -> bool:
        return len(self.declared) == 1

    @contextlib.contextmanager
    def clause(self, clause_id: str, *, soft: bool = False) -> Iterator[None]:
        """Judge ``clause_id`` by the block: it passes if the block completes.

        A failing block ends the scenario, unless ``soft``: then its failure
        is recorded and the scenario goes on to its next judgment, and fails at
        its end.  Soft blocks are for judgments of evidence already gathered,
        which no later code depends on.
        """
        if clause_id not in self.declared:
            raise ValueError(f"the scenario judges {clause_id!r} but does not declare it "
                             f"(@pytest.mark.clause declares {self.declared})")
        try:
            yield
        except pytest.skip.Exception:
            raise
        except BaseException as exc:
            if not _first_charge(exc):
                raise
            if clause_id not in self.selected:
                raise outcomes.NotRun(
                    f"{outcomes.NOT_RUN_PREFIX}not judged: clause {clause_id}, which this run "
                    f"does not judge (--clause), failed first: {short(exc)}") from exc
            self.fail(clause_id, short(exc))
            exc.add_note(f"driver-conformance: charged to clause {clause_id}")
            if not soft or not isinstance(exc, Exception):
                raise
            self.deferred.append(exc)
        else:
            if clause_id in self.selected:
                self.results.setdefault(clause_id, Judgment(outcomes.PASS))

    @contextlib.contextmanager
    def relying_on(self, clause_id: str) -> Iterator[None]:
        """A block that only works if ``clause_id`` holds (a fanout, say, to get two copies).

        If it fails, the scenario ends NOT RUN, naming that clause: a driver
        that breaks it fails it in that clause's own scenarios, and the
        clauses of this one are not judged rather than charged for it.
        """
        try:
            yield
        except pytest.skip.Exception:
            raise
        except Exception as exc:
            if not _first_charge(exc):
                raise
            raise outcomes.NotRun(
                f"{outcomes.NOT_RUN_PREFIX}not judged: the scenario relies on {clause_id}, "
                f"which failed here: {short(exc)}") from exc

    def raise_deferred(self) -> None:
        """End the scenario with the first failure a soft block recorded, if any."""
        if self.deferred:
            first = self.deferred[0]
            if len(self.deferred) > 1:
                first.add_note("driver-conformance: also failed: " + "; ".join(
                    short(e) for e in self.deferred[1:]))
            raise first

    def passed(self, *clause_ids: str) -> None:
        """Record passes for clauses judged otherwise than by a block (the model scenario)."""
        for cid in clause_ids:
            if cid in self.selected:
                self.results.setdefault(cid, Judgment(outcomes.PASS))

    def fail(self, clause_id: str, message: str) -> None:
        """Charge a failure to ``clause_id`` (a failure overrides an earlier pass)."""
        if clause_id in self.selected:
            self.results[clause_id] = Judgment(outcomes.FAIL, message)
            self.failed_on = self.failed_on or clause_id

    def is_judged(self, clause_id: str) -> bool:
        """Whether this run judges ``clause_id`` (a checker may skip what it does not)."""
        return clause_id in self.selected

    def settle(self, report: pytest.TestReport, excinfo: Any) -> dict[str, list[str]]:
        """Every selected clause's outcome, from the blocks and how the call phase ended."""
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _longrepr_text(report)
            kind = outcomes.classify_skip(reason)
            fallback = Judgment(kind if kind != "skipped" else outcomes.NOT_RUN,
                                outcomes.skip_message(reason))
        elif report.passed:
            fallback = (Judgment(outcomes.PASS) if self.single else Judgment(
                outcomes.NOT_RUN,
                "not judged: the scenario passed without reaching this clause's check"))
        else:
            message = short(excinfo.value) if excinfo is not None else _longrepr_text(report)
            if self.single:
                fallback = Judgment(outcomes.FAIL, message)
            elif self.failed_on:
                fallback = Judgment(outcomes.NOT_RUN, "not judged: the scenario failed on "
                                    f"clause {self.failed_on} first")
            else:
                # A failure no clause's check owns: whatever passed before it,
                # the scenario did not show its clauses hold.
                return {cid: [outcomes.NOT_RUN, "not judged: the scenario failed outside "
                              f"its clauses' checks: {message}"] for cid in self.selected}
        return {cid: [j.outcome, j.message]
                for cid in self.selected
                for j in [self.results.get(cid, fallback)]}


def _longrepr_text(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    if crash:
        return str(crash)
    text = str(longrepr or "").strip()
    return text.splitlines()[-1] if text else ""


def judgments_of(item: pytest.Item) -> Judgments:
    """The item's judgments, made on first use from its clause marks and the run's selection."""
    if stash.JUDGMENTS not in item.stash:
        item.stash[stash.JUDGMENTS] = Judgments(
            stash.clause_ids(item), item.config.stash.get(stash.JUDGED, None))
    return item.stash[stash.JUDGMENTS]


class JudgingPlugin:
    """Settles each scenario's judgments onto its report; makes the history judge too."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        result = yield
        judgments_of(item).raise_deferred()
        kit = item.stash.get(stash.KIT, None)
        if kit is not None:
            kit.judge_history()
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Any:
        report = yield
        if call.when == "call" and stash.judged_clauses(item):
            settled = judgments_of(item).settle(report, call.excinfo)
            report.user_properties.append((PROPERTY, settled))
        return report
