"""The pytest side of the results pipeline: feed the collector, settle the run's outcome.

Every report of a conformance run goes to the one
:class:`~driver_conformance.results.ResultCollector` in ``config.stash``.
Under pytest-xdist the reports reach the controller as usual, and what only
a worker knows (the backend's facts, the capabilities, what it collected and
deselected, why its backend could not start) comes back in its
``workeroutput``.

At the end, before anything records it, :func:`settle` decides the verdict
and the exit status once (:class:`~driver_conformance.results.RunOutcome`):
the report, the terminal summary and ``$?`` then all say the same.
"""

from __future__ import annotations

from typing import Any

import pytest

from driver_conformance import certify, stash
from driver_conformance.catalog import load_catalog
from driver_conformance.exitcodes import ExitCode, for_verdict
from driver_conformance.report.document import clause_entries
from driver_conformance.results import (
    ExpectationsResult,
    ResultCollector,
    RunOutcome,
    judge_profiles,
    outcomes_of,
)

#: The ``workeroutput`` key of what a worker sends back.
WORKER_KEY = "driver_conformance"


def register(config: pytest.Config) -> None:
    config.stash[stash.RESULTS] = ResultCollector()
    config.pluginmanager.register(ResultsPlugin(config), "driver-conformance-results")


class ResultsPlugin:
    """Feeds the run's collector and settles its outcome (see the module docstring)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collector = config.stash[stash.RESULTS]
        judged = config.stash.get(stash.JUDGED, None)
        if judged is not None:
            self.collector.unselected = frozenset(load_catalog().ids()) - judged

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        ids = stash.judged_clauses(item)
        if ids:
            item.user_properties.append(("clauses", ids))

    def pytest_deselected(self, items: list[Any]) -> None:
        for item in items:
            ids = stash.clause_ids(item)
            if ids:
                self.collector.note_deselected(item.nodeid, ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            ids = stash.judged_clauses(item)
            if ids:
                self.collector.note_collected(item.nodeid, ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if output:
            self.collector.merge_worker(output)

    # tryfirst: settled before the report is written and the summary printed.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        run = config.stash[stash.RUN]
        if stash.is_worker(config):
            config.workeroutput[WORKER_KEY] = {  # type: ignore[attr-defined]
                **self.collector.worker_output(),
                "capabilities": run.capabilities_dict() if run.backend else None,
                "facts": {str(k): str(v) for k, v in run.facts.items()},
                "observed": dict(run.observed),
                "configuration": run.configuration,
                "start_error": run.start_error,
            }
            return
        outcome = settle(config, int(session.exitstatus), self.collector)
        config.stash[stash.OUTCOME] = outcome
        session.exitstatus = outcome.exit_status


def claimed_profiles(config: pytest.Config, collector: ResultCollector) -> list[str] | None:
    """The profiles the driver claims (its declared capabilities); None when unknown."""
    run = config.stash[stash.RUN]
    caps = run.capabilities_dict() if run.backend is not None else next(
        (w["capabilities"] for w in collector.workers if w.get("capabilities")), None)
    if not caps:
        return None
    return [name for name in ("rpc", "notifications") if caps.get(name, True)]


def backend_error(config: pytest.Config, collector: ResultCollector) -> str | None:
    """Why the backend could not be prepared, here or in any worker; None if it was."""
    run = config.stash[stash.RUN]
    errors = [run.start_error] + [w.get("start_error") for w in collector.workers]
    return next((e for e in errors if e), None)


def settle(config: pytest.Config, pytest_status: int, collector: ResultCollector
           ) -> RunOutcome:
    """The run's verdict and exit status, decided once (see :mod:`driver_conformance.exitcodes`).

    * the backend unreachable: 8, whatever else happened;
    * pytest's own statuses other than "tests failed" (interrupted, usage,
      internal error) stand;
    * with ``--expectations``: 0 if every failure was a listed deviation and
      no listed one passed, else 1;
    * otherwise the verdict's: 0 compliant, 1 non-compliant, 7 unknown;
    * a ``--certify`` run that cannot certify: 4.
    """
    catalog = load_catalog()
    results = collector.clause_results(catalog)
    reported = any(s.reported for s in collector.scenarios.values())
    profiles = judge_profiles(outcomes_of(results, catalog), catalog.profiles,
                              claimed_profiles(config, collector), reported=reported)
    judged = profiles.overall
    verdict_status = for_verdict(judged.result)
    error = backend_error(config, collector)
    expectations = None
    status = pytest_status
    finished = pytest_status in (ExitCode.COMPLIANT, ExitCode.NON_COMPLIANT) or (
        pytest_status == ExitCode.NO_SCENARIOS and collector.scenarios)
    if error:
        status = ExitCode.BACKEND_UNAVAILABLE
    elif finished:
        status = verdict_status
        if stash.EXPECTATIONS in config.stash:
            listed = config.stash[stash.EXPECTATIONS]
            unexpected = collector.unexpected()
            expectations = ExpectationsResult(path=str(listed.path or ""),
                                              matched=not unexpected, unexpected=unexpected,
                                              listed=len(listed.deviations),
                                              why={n: collector.scenarios[n].mismatch
                                                   for n in unexpected
                                                   if n in collector.scenarios})
            status = ExitCode.COMPLIANT if not unexpected else ExitCode.NON_COMPLIANT
    problems: list[str] = []
    if config.getoption("certify", default=False):
        problems = certify.problems(clause_entries(results), collector.refusals)
        if problems and status in (ExitCode.COMPLIANT, ExitCode.NON_COMPLIANT,
                                   ExitCode.UNKNOWN, ExitCode.NO_SCENARIOS):
            status = ExitCode.USAGE_ERROR
    return RunOutcome(verdict=judged, exit_status=int(status), pytest_status=pytest_status,
                      verdict_status=int(verdict_status), profiles=profiles,
                      expectations=expectations,
                      backend_error=error, certification_problems=problems)
