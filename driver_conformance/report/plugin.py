"""The pytest side of run reports: ``--report-json`` writes the run's document.

Registered for a conformance run only.  It reads what the other features
settled in ``config.stash`` -- the results (:data:`~driver_conformance.stash.RESULTS`),
the run's outcome with its exit status (:data:`~driver_conformance.stash.OUTCOME`,
final before this plugin runs) and the run itself -- and writes the JSON
document at the end.  Under pytest-xdist the controller writes it; what only
workers know reaches the collector through their ``workeroutput``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import stash
from driver_conformance.catalog import load_catalog
from driver_conformance.exitcodes import ExitCode
from driver_conformance.report import document
from driver_conformance.results import ResultCollector, RunOutcome
from driver_conformance.run import ConformanceRun
from driver_conformance.urls import scheme_of

#: Where the plugin keeps what it did (for the terminal summary).
WRITTEN = pytest.StashKey["Written"]()


@dataclasses.dataclass
class Written:
    """Where the report went, or why it did not."""

    path: str | None = None
    error: str | None = None


class ReportPlugin:
    """Writes ``--report-json`` (see the module docstring)."""

    def __init__(self, config: pytest.Config) -> None:
        self.started_at = document.utc_now()
        self.started = time.monotonic()
        config.stash[WRITTEN] = Written()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        path = config.getoption("report_json", default=None)
        if stash.is_worker(config) or not path or stash.OUTCOME not in config.stash:
            return
        outcome = config.stash[stash.OUTCOME]
        doc = build(config, outcome, self.started_at, time.monotonic() - self.started)
        written = config.stash[WRITTEN]
        try:
            write_document(doc, Path(path))
            written.path = str(path)
        except OSError as exc:
            written.error = f"cannot write the report to {path}: {exc.strerror or exc}"
            outcome.exit_status = ExitCode.INTERNAL_ERROR
            session.exitstatus = ExitCode.INTERNAL_ERROR


def build(config: pytest.Config, outcome: RunOutcome, started_at: str,
          duration: float) -> dict[str, Any]:
    """The run's document, from the results and the settled outcome."""
    collector = config.stash[stash.RESULTS]
    run = config.stash[stash.RUN]
    clauses = document.clause_entries(collector.clause_results(load_catalog()))
    return document.build_document(
        clauses=clauses,
        run=run_metadata(config, run, collector, outcome, started_at, duration),
        certify=bool(config.getoption("certify", default=False)),
        problems=outcome.certification_problems,
        secret_urls=[run.user_url, run.url])


def run_metadata(config: pytest.Config, run: ConformanceRun, collector: ResultCollector,
                 outcome: RunOutcome, started_at: str, duration: float) -> dict[str, Any]:
    capabilities = run.capabilities_dict() if run.backend is not None else None
    facts = dict(run.facts)
    observed = dict(run.observed)
    configuration = run.configuration
    for worker in collector.workers:
        capabilities = capabilities or worker.get("capabilities")
        configuration = configuration or worker.get("configuration")
        facts.update(worker.get("facts") or {})
        observed.update(worker.get("observed") or {})
    scheme = scheme_of(run.user_url)
    expectations = None
    if outcome.expectations is not None:
        expectations = {"file": outcome.expectations.path,
                        "matched": outcome.expectations.matched,
                        "listed": outcome.expectations.listed,
                        "unexpected": list(outcome.expectations.unexpected),
                        "why": dict(outcome.expectations.why),
                        "verdict_exit_status": outcome.verdict_status}
    return {
        **document.environment(),
        "adapter": run.adapter.name,
        "adapter_package": document.module_package(run.adapter),
        "driver": scheme,
        "driver_package": document.driver_package(scheme),
        "broker_version": facts.get("broker_version"),
        "transport_url": run.masked_url,
        "time_scale": run.timing.scale,
        "hypothesis_seed": document._seed(config.getoption("hypothesis_seed", default=None)),
        "capabilities": capabilities,
        "observed": {str(k): str(v) for k, v in observed.items()},
        "configuration": configuration,
        "facts": {str(k): str(v) for k, v in facts.items()},
        "started_at": started_at,
        "finished_at": document.utc_now(),
        "duration": round(duration, 3),
        "workers": max(1, len(collector.workers)),
        "selection": {
            "clause_patterns": list(config.getoption("clause", default=[]) or []),
            "keyword": config.getoption("keyword", default=None) or None,
            "markexpr": config.getoption("markexpr", default=None) or None,
            "deselected": len(collector.deselected),
        },
        "error": outcome.backend_error,
        "hung_calls": collector.hung_calls,
        "hung_seconds": round(collector.hangs().seconds, 3),
        "expectations": expectations,
        "exit_status": outcome.exit_status,
    }


def write_document(doc: dict[str, Any], path: Path) -> None:
    """Write ``doc`` atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)
