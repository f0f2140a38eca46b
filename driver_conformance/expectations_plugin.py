"""The pytest side of ``--expectations=FILE``: listed deviations are expected, by clause.

Registered by the kit's plugin when ``--expectations`` is given.  The file
lists, per clause, the scenarios expected to fail it (and, optionally, a
pattern the failure's message must match).  Each scenario's call-phase
report carries its judgments, clause by clause (:mod:`driver_conformance.judging`),
and each judgment is compared with the file:

* a clause that failed where the file lists it (and its message matches) is
  **expected**: the clause is ``xfail``, and if every failure of the scenario
  is expected the scenario is reported as xfailed;
* a clause that failed where the file does not list it, or with a message
  the entry's pattern does not match, is **unexpected**: the scenario fails,
  however many of its other clauses are listed -- a new bug in a listed
  scenario is never hidden by an old one;
* a listed clause that passed is **stale** (``[XPASS(strict)]``): the
  scenario fails, and the entry should go -- unless the entry is marked
  intermittent (timing-dependent deviations of real brokers), when a pass
  is reported as ``xpass`` and is not a mismatch.

A failure in the teardown of a scenario whose deviation was expected is
expected too: a driver call that hung in the scenario usually hangs again in
its cleanup.

The run's exit status then says whether the run *matched* the file (see
:mod:`driver_conformance.exitcodes`); the verdict stays in the report and
the terminal summary.
"""

from __future__ import annotations

from typing import Any

import pytest

from driver_conformance import expectations as exp_mod
from driver_conformance import outcomes as oc
from driver_conformance import stash

PLUGIN_NAME = "driver-conformance-expectations"
#: Per item: the call phase had expected deviations (its teardown failure is expected too).
EXPECTED = pytest.StashKey[str]()
#: The ``user_properties`` name a scenario's mismatch with the expectations travels under.
MISMATCH = "mismatch"


class ExpectationsPlugin:
    """Holds one driver's expectations and compares each scenario's judgments with them."""

    def __init__(self, expectations: exp_mod.Expectations) -> None:
        self.expectations = expectations
        self.unmatched: list[str] = []

    def pytest_report_header(self, config: pytest.Config) -> str:
        e = self.expectations
        return (f"driver-conformance: expectations {e.path} "
                f"(driver {e.driver or '?'}, {len(e.deviations)} known deviations)")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[Any]) -> None:
        collected = {exp_mod.scenario_key(i.nodeid) for i in items}
        for d in self.expectations.deviations.values():
            self.unmatched += [f"{d.clause}: {s}" for s in d.scenarios if s not in collected]

    # tryfirst: the outermost wrapper, so the judgments are settled when it looks.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Any:
        report = yield
        if call.when == "call":
            self.compare(item, report)
        elif (call.when == "teardown" and report.failed and EXPECTED in item.stash):
            report.outcome = "skipped"
            report.wasxfail = item.stash[EXPECTED]
        return report

    def compare(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """Turn the scenario's report into xfailed, failed or left as it is (see above)."""
        props = report.user_properties
        index = next((i for i, (name, _) in enumerate(props) if name == "judgments"), None)
        if index is None:
            judgments = self._judgments_from_outcome(item, report)
        else:
            judgments = {cid: list(j) for cid, j in props[index][1].items()}
        key = exp_mod.scenario_key(report.nodeid)
        expected, unexpected, stale = [], [], []
        for cid, (outcome, message) in judgments.items():
            deviation = self.expectations.deviations.get(cid)
            listed = deviation is not None and deviation.covers(key)
            if outcome in (oc.FAIL, oc.ERROR):
                if listed and deviation.matches(message):
                    expected.append(deviation.describe())
                    judgments[cid] = [oc.XFAIL, message]
                elif listed:
                    unexpected.append(f"{cid} failed otherwise than listed "
                                      f"(listed: {deviation.match!r}): {message}")
                else:
                    unexpected.append(f"{cid} failed, and is not listed for this scenario: "
                                      f"{message}")
            elif outcome == oc.PASS and listed:
                judgments[cid] = [oc.XPASS, f"{exp_mod.XPASS_STRICT} listed deviation passed"]
                if not deviation.is_intermittent(key):
                    stale.append(cid)
        if index is None:
            props.append(("judgments", judgments))
        else:
            props[index] = ("judgments", judgments)
        if unexpected or stale:
            lines = [f"unexpected: {u}" for u in unexpected]
            lines += [f"stale: {cid} is listed as deviating in this scenario, and passed "
                      "(remove the entry)" for cid in stale]
            report.sections.append(("driver-conformance expectations", "\n".join(lines)))
            report.user_properties.append((MISMATCH, lines))
            if report.passed:
                report.outcome = "failed"
                report.longrepr = f"{exp_mod.XPASS_STRICT} " + "; ".join(lines)
        elif expected:
            reason = "expected deviation " + "; ".join(expected)
            item.stash[EXPECTED] = reason
            report.outcome = "skipped"
            report.wasxfail = reason
        elif any(j[0] == oc.XPASS for j in judgments.values()):
            report.wasxfail = "intermittent deviation passed this time"

    def _judgments_from_outcome(self, item: pytest.Item, report: pytest.TestReport
                                ) -> dict[str, list[str]]:
        """Judgments of a test the kit's judging did not see: its outcome for every clause."""
        message = getattr(getattr(report.longrepr, "reprcrash", None), "message", "") or ""
        if report.failed:
            return {cid: [oc.FAIL, message] for cid in stash.judged_clauses(item)}
        if report.passed:
            return {cid: [oc.PASS, ""] for cid in stash.judged_clauses(item)}
        return {}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        if self.unmatched and not tr.config.getoption("clause", None) \
                and not tr.config.getoption("keyword", None):
            tr.write_sep("-", "expectations")
            tr.write_line(f"{len(self.unmatched)} listed scenarios were not collected "
                          "(renamed or removed?):")
            for line in self.unmatched[:10]:
                tr.write_line(f"  {line}")


def register(config: pytest.Config, value: str) -> ExpectationsPlugin:
    """Load ``--expectations=value`` and register the plugin; a bad file is a usage error.

    A clause ID the kit's catalog does not contain is an error, not a silently
    useless entry.
    """
    from driver_conformance.catalog import load_catalog

    try:
        expectations = exp_mod.load(exp_mod.resolve(value), known_clauses=load_catalog().ids())
    except exp_mod.ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[stash.EXPECTATIONS] = expectations
    plugin = ExpectationsPlugin(expectations)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin
