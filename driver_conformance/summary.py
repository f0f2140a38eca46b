"""The terminal summary of a conformance run: what it found, the verdict, and the exit status.

Everything it prints was settled before (the results, the verdict, the exit
status, where the report went) and is only read here, from ``config.stash``,
so the summary cannot disagree with ``$?`` or the JSON report.  It says, in
this order:

* counts by level (``MUST 51 clauses: 49 pass, 1 fail, 1 not-run``);
* every failed clause, with the first message that failed it;
* every required clause that was not judged, with the reason and what would
  let the run judge it (a fault injector, a listener style, ``--clause``);
* which clauses do not apply to the driver, and why;
* the verdict; how the run compared with ``--expectations``; certification;
  where the report went;
* the exit status, once, with its meaning as this run used it.
"""

from __future__ import annotations

import collections
import textwrap
from typing import Any

import pytest

from driver_conformance import certify, stash
from driver_conformance import outcomes as oc
from driver_conformance.catalog import LEVELS, load_catalog
from driver_conformance.exitcodes import ExitCode, meaning
from driver_conformance.report.plugin import WRITTEN
from driver_conformance.results import ClauseResult
from driver_conformance.urls import mask_url

#: Longest line written for one clause.
WIDTH = 200
#: Clauses not judged for the same reason are listed one a line, with the reason
#: (grep-able), up to this many; more (a --clause run's deselections) are listed
#: together under the reason, every one of them named.
GROUPED = 12

#: What a maintainer can do about a NOT RUN reason, by the words it contains.
HINTS = (
    ("fault injection", "implement Adapter.backend(...).faults (a FaultInjector), or put the "
                        "kit's loopback TCP proxy in front of the backend "
                        "(driver_conformance.proxy.proxied)"),
    ("cannot inject", "the adapter's FaultInjector must offer this fault kind"),
    ("--clause", "run without --clause to judge it"),
)


def hint_for(reason: str) -> str:
    """What would let the run judge a clause not run for ``reason`` ("" if nothing known)."""
    return next((hint for words, hint in HINTS if words in reason), "")


def _line(text: str) -> str:
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


class SummaryPlugin:
    """Writes the kit's section of the terminal summary (see the module docstring)."""

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config
                                 ) -> tuple[str, str, str] | None:
        """Show the kit's outcomes as themselves: U, A (not applicable), N (not run)."""
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
            kind = oc.classify_skip(reason)
            if kind == oc.UNSUPPORTED:
                return "unsupported", "U", "UNSUPPORTED"
            if kind == oc.NOT_APPLICABLE:
                return "not applicable", "A", "NOT APPLICABLE"
            if kind == oc.NOT_RUN:
                return "not run", "N", "NOT RUN"
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        config = terminalreporter.config
        if stash.is_worker(config) or stash.OUTCOME not in config.stash:
            return
        write_summary(terminalreporter, config)


def write_summary(tr: Any, config: pytest.Config) -> None:
    outcome = config.stash[stash.OUTCOME]
    run = config.stash[stash.RUN]
    results = config.stash[stash.RESULTS].clause_results(load_catalog())
    tr.section("driver-conformance")
    if outcome.backend_error:
        tr.write_line(f"driver-conformance: {outcome.backend_error}", red=True, bold=True)
    else:
        write_findings(tr, results)
    hangs = config.stash[stash.RESULTS].hangs()
    if hangs.calls:
        tr.write_line(hangs.describe(), yellow=True, bold=hangs.dominated)
    cleanups = {run.facts.get("cleanup")} | {
        (w.get("facts") or {}).get("cleanup") for w in config.stash[stash.RESULTS].workers}
    for cleanup in sorted(c for c in cleanups if c and c.startswith("NOT cleaned")):
        tr.write_line(f"backend {cleanup}", yellow=True)
    verdict = outcome.verdict.result
    said = outcome.profiles.describe() if outcome.profiles else verdict
    if outcome.profiles and len(outcome.profiles.profiles) > 1:
        tr.write_line("profiles: " + "; ".join(
            f"{name} {v.result}" + ("" if name in outcome.profiles.claimed else " (not claimed)")
            for name, v in outcome.profiles.profiles.items()))
    tr.write_line(f"verdict for {run.adapter.name} ({run.masked_url}): "
                  f"{verdict.upper()}{said[len(verdict):]}",
                  bold=True, red=verdict != "compliant", green=verdict == "compliant")
    expectations = outcome.expectations
    if expectations is not None:
        state = "matched" if expectations.matched else "NOT matched"
        tr.write_line(f"expectations {expectations.path}: {state} "
                      f"({expectations.listed} listed deviations, "
                      f"{len(expectations.unexpected)} scenarios unexpected or stale)",
                      red=not expectations.matched)
        for nodeid in expectations.unexpected[:10]:
            why = expectations.why.get(nodeid) or ["unexpected: failed, and no listed "
                                                   "deviation covers it"]
            for line in why:
                tr.write_line(f"  {nodeid}: {line}")
    if config.getoption("certify", default=False):
        for line in certify.describe(outcome):
            tr.write_line(line)
    written = config.stash.get(WRITTEN, None)
    if written is not None and written.path:
        tr.write_line(f"conformance report: {written.path}")
    if written is not None and written.error:
        tr.write_line(written.error, red=True)
    status = outcome.exit_status
    said = meaning(status, expectations=expectations is not None)
    line = f"exit status {status}" + (f": {said}" if said else "")
    if expectations is not None and status in (ExitCode.COMPLIANT, ExitCode.NON_COMPLIANT):
        line += (f" (the verdict, {verdict}, alone would exit {outcome.verdict_status})")
    tr.write_line(line, bold=True)


def write_findings(tr: Any, results: list[ClauseResult]) -> None:
    """Counts by level, failed clauses, required clauses not judged, clauses not applicable."""
    by_level: dict[str, collections.Counter[str]] = {lv: collections.Counter() for lv in LEVELS}
    for result in results:
        by_level[result.clause.level][result.outcome] += 1
    for level in LEVELS:
        counts = by_level[level]
        if counts:
            parts = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            tr.write_line(f"{level:<9} {sum(counts.values()):>3} clauses: {parts}")
    for result in results:
        if result.outcome in oc.FAILING:
            detail = f": {mask_url(result.reason)}" if result.reason else ""
            tr.write_line(_line(f"{result.outcome.upper():<5} {result.clause.level:<8} "
                                f"{result.clause.id}{detail}"))
    unjudged = [r for r in results if (r.clause.required and r.outcome in (oc.NOT_RUN,))
                or (r.clause.required and r.outcome == oc.UNSUPPORTED
                    and r.clause.level != "OPTIONAL")]
    if unjudged:
        tr.write_line(f"{len(unjudged)} required clause(s) not judged, and why:")
        by_reason: dict[str, list[ClauseResult]] = {}
        for result in unjudged:
            by_reason.setdefault(mask_url(result.reason or "no scenario reported"),
                                 []).append(result)
        for reason, group in by_reason.items():
            hint = hint_for(reason)
            tail = f" -- {hint}" if hint else ""
            if len(group) > GROUPED:
                tr.write_line(f"  {len(group)} clauses: {reason}{tail}")
                for line in textwrap.wrap(", ".join(r.clause.id for r in group), WIDTH - 4,
                                          break_on_hyphens=False, break_long_words=False):
                    tr.write_line(f"    {line}")
                continue
            for result in group:
                tr.write_line(f"  {result.clause.level:<8} {result.clause.id}: {reason}{tail}")
    not_applicable = [r for r in results if r.outcome == oc.NOT_APPLICABLE]
    if not_applicable:
        reasons = collections.Counter(r.reason for r in not_applicable)
        for reason, count in reasons.most_common():
            tr.write_line(f"{count} clause(s) not applicable: {reason}")
