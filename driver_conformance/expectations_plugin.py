"""The pytest side of ``--expectations=FILE``: listed deviations become strict xfails.

Registered by the kit's plugin when ``--expectations`` is given
(:func:`register`).  Marking uses pytest's own ``xfail(strict=True)``, so
every pytest tool (xdist, junit, the kit's report) already knows the
outcomes: a listed scenario that fails is XFAIL, one that passes is a
failure ``[XPASS(strict)]`` -- the file is stale -- and everything not
listed runs as usual.  A failure in a listed scenario's teardown is
expected too (pytest applies the mark to every phase), because a driver
call that hung in the scenario usually hangs again in its cleanup.

With expectations the run's exit status says whether the run *matched* them
(0: every deviation was expected, 1: something new deviated or an entry is
stale), not the verdict: a driver with known deviations is non-compliant by
definition, and its CI must still go green until something changes.  The
verdict stays in the report and the terminal summary.
"""

from __future__ import annotations

from typing import Any

import pytest

from driver_conformance import expectations as exp_mod

PLUGIN_NAME = "driver-conformance-expectations"


class ExpectationsPlugin:
    """Holds one driver's expectations for the session and marks the scenarios they cover."""

    def __init__(self, expectations: exp_mod.Expectations) -> None:
        self.expectations = expectations
        self.marked: dict[str, list[str]] = {}
        self.unmatched: list[str] = []
        #: The exit status the verdict alone would have given (see the module docstring).
        self.verdict_status: int | None = None
        self.final_status: int | None = None

    # trylast: the innermost wrapper, so the status is settled after the
    # report's hook set it from the verdict and before the terminal summary.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        before = session.exitstatus
        result = yield
        if before in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            self.verdict_status = int(session.exitstatus)
            session.exitstatus = before
            self.final_status = int(before)
        return result

    def pytest_report_header(self, config: pytest.Config) -> str:
        e = self.expectations
        return (f"driver-conformance: expectations {e.path} "
                f"(driver {e.driver or '?'}, {len(e.deviations)} known deviations)")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[Any]) -> None:
        from driver_conformance.plugin import clause_ids

        seen: set[tuple[str, str]] = set()
        for item in items:
            key = exp_mod.scenario_key(item.nodeid)
            applicable = [d for d in self.expectations.for_clauses(clause_ids(item))
                          if d.covers(key)]
            if not applicable:
                continue
            for d in applicable:
                seen.add((d.clause, key))
            reason = "expected deviation " + "; ".join(d.describe() for d in applicable)
            strict = not all(d.is_intermittent(key) for d in applicable)
            item.add_marker(pytest.mark.xfail(strict=strict, reason=reason))
            self.marked[key] = [d.clause for d in applicable]
        collected = {exp_mod.scenario_key(i.nodeid) for i in items}
        for d in self.expectations.deviations.values():
            for scenario in d.scenarios:
                if scenario not in collected:
                    self.unmatched.append(f"{d.clause}: {scenario}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # Counted from the reports, not from ``self.marked``: under xdist the
        # items are collected and marked in the workers, not here.
        tr = terminalreporter
        xfailed = len({r.nodeid for r in tr.stats.get("xfailed", [])})
        intermittent = len({r.nodeid for r in tr.stats.get("xpassed", [])})
        stale = sorted({exp_mod.scenario_key(r.nodeid) for r in tr.stats.get("failed", [])
                        if exp_mod.XPASS_STRICT in str(getattr(r, "longrepr", ""))})
        tr.write_sep("-", "expectations")
        tr.write_line(f"{self.expectations.path}: {xfailed} listed scenarios deviated as "
                      f"expected, {len(stale)} passed (stale entries: remove them)"
                      + (f", {intermittent} intermittent ones passed this time"
                         if intermittent else ""))
        for key in stale:
            tr.write_line(f"  stale: {key}")
        if self.verdict_status is not None and self.final_status is not None:
            matched = self.final_status == pytest.ExitCode.OK
            tr.write_line(f"exit status {self.final_status}: the run "
                          + ("matched its expectations" if matched
                             else "did not match its expectations")
                          + f" (the verdict alone would exit {self.verdict_status})")
        if self.unmatched and not tr.config.getoption("clause", None) \
                and not tr.config.getoption("keyword", None):
            tr.write_line(f"{len(self.unmatched)} listed scenarios were not collected "
                          "(renamed or removed?):")
            for line in self.unmatched[:10]:
                tr.write_line(f"  {line}")


def register(config: pytest.Config, value: str, *,
             known_clauses: Any = None) -> ExpectationsPlugin:
    """Load ``--expectations=value`` and register the plugin; a bad file is a usage error.

    ``known_clauses`` defaults to the kit's catalog; a clause ID it does not
    contain is an error, not a silently useless entry.
    """
    if known_clauses is None:
        from driver_conformance.catalog import load_catalog

        known_clauses = load_catalog().ids()
    try:
        expectations = exp_mod.load(exp_mod.resolve(value), known_clauses=known_clauses)
    except exp_mod.ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    plugin = ExpectationsPlugin(expectations)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin
