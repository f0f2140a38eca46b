"""The pytest side of run reports: ``--report-json``, ``--certify`` and the verdict exit code.

Registered by :mod:`driver_conformance.plugin` for a conformance run only
(like :mod:`driver_conformance.fixtures`), so it adds nothing to other test
runs.  It watches the session (start time, collection, deselection, every
test report), and at the end writes the JSON document and replaces pytest's
exit status by the verdict's, so that CI can gate on ``$?`` alone.

Under pytest-xdist the controller writes the report: results reach it through
``pytest_runtest_logreport`` as usual, and what only workers know (the
backend's facts, the capabilities, what they collected and deselected) comes
back through xdist's ``workeroutput``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import report as report_mod
from driver_conformance.report import document

_STATE_KEY = pytest.StashKey["ReportState"]()
_WORKER_KEY = "driver_conformance_report"
#: Options that run a subset of the suite: a certification must run it all.
_SELECTING_OPTIONS = (
    ("clause", "--clause"),
    ("keyword", "-k"),
    ("markexpr", "-m"),
    ("deselect", "--deselect"),
    ("lf", "--last-failed"),
    ("stepwise", "--stepwise"),
    ("maxfail", "-x/--maxfail"),
)


def add_options(group: Any) -> None:
    """Add ``--report-json`` and ``--certify`` to the kit's option group."""
    group.addoption("--report-json", metavar="PATH", default=None,
                    help="write the run's conformance report (JSON) to PATH")
    group.addoption("--certify", action="store_true", default=False,
                    help="certification run: refuse any run that deselects, skips or "
                         "expects to fail a required clause, and mark the report as one")


@dataclasses.dataclass
class ReportState:
    """What the hooks gather during one session, in one process."""

    started_at: str = ""
    started: float = 0.0
    collected: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    deselected: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    reported: set[str] = dataclasses.field(default_factory=set)
    extras: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    refusals: list[str] = dataclasses.field(default_factory=list)
    workers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    document: dict[str, Any] | None = None
    written_to: str | None = None
    write_error: str | None = None
    exit_status: int | None = None


def _session(config: pytest.Config) -> Any:
    from driver_conformance.plugin import session_of

    try:
        return session_of(config)
    except KeyError:
        return None


def _state(config: pytest.Config) -> ReportState:
    if _STATE_KEY not in config.stash:
        config.stash[_STATE_KEY] = ReportState()
    return config.stash[_STATE_KEY]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _certify(config: pytest.Config) -> bool:
    return bool(config.getoption("certify", default=False))


def _required_ids(session: Any, item: Any) -> list[str]:
    from driver_conformance.plugin import clause_ids

    return [cid for cid in clause_ids(item)
            if cid in session.catalog and session.catalog[cid].required]


# -- configuration and collection -------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    """Refuse a ``--certify`` run that selects a subset, before anything starts."""
    if not _certify(config) or _is_worker(config):
        return
    used = [flag for dest, flag in _SELECTING_OPTIONS if config.getoption(dest, default=None)]
    if used:
        raise pytest.UsageError(
            "--certify runs the whole suite; it cannot be combined with " + ", ".join(used))


def pytest_sessionstart(session: pytest.Session) -> None:
    _EXTRAS.clear()
    state = _state(session.config)
    state.started_at = document.utc_now()
    state.started = time.monotonic()


def pytest_deselected(items: list[Any]) -> None:
    if not items:
        return
    config = items[0].config
    session = _session(config)
    if session is None:
        return
    from driver_conformance.plugin import clause_ids

    state = _state(config)
    for item in items:
        ids = clause_ids(item)
        if ids:
            state.deselected[item.nodeid] = ids


def pytest_collection_finish(session: pytest.Session) -> None:
    """Note what will run, and refuse a certification whose scenarios are marked to skip or fail.

    A ``skip`` or ``xfail`` mark on a scenario of a required clause is refused
    here, before running, when the run is in one process; under xdist the
    outcomes (skipped, xfailed) are refused when the run ends instead.
    """
    config = session.config
    conformance = _session(config)
    if conformance is None:
        return
    from driver_conformance.plugin import clause_ids

    state = _state(config)
    for item in session.items:
        ids = clause_ids(item)
        if ids:
            state.collected[item.nodeid] = ids
    if not _certify(config):
        return
    for nodeid, ids in state.deselected.items():
        required = [cid for cid in ids if conformance.catalog[cid].required]
        if required:
            state.refusals.append(f"{', '.join(required)}: {nodeid} deselected")
    for item in session.items:
        required = _required_ids(conformance, item)
        marks = [m.name for m in item.iter_markers() if m.name in ("skip", "skipif", "xfail")]
        if required and marks:
            state.refusals.append(f"{', '.join(required)}: {item.nodeid} marked "
                                  + "/".join(sorted(set(marks))))
    if state.refusals and not _is_worker(config):
        raise pytest.UsageError("--certify refuses this run: " + "; ".join(state.refusals[:5])
                                + (" ..." if len(state.refusals) > 5 else ""))


# -- results ----------------------------------------------------------------------------------
def pytest_runtest_logreport(report: Any) -> None:
    """Keep what :class:`~driver_conformance.results.ResultCollector` does not: seeds, details."""
    props = dict(getattr(report, "user_properties", ()))
    if "clauses" not in props:
        return
    extras = _EXTRAS.setdefault(report.nodeid, {})
    if props.get("hypothesis_seed") is not None:
        extras["hypothesis_seed"] = props["hypothesis_seed"]
    if report.failed and not extras.get("detail"):
        extras["detail"] = getattr(report, "longreprtext", "") or ""


#: Per-nodeid extras of the current process's reports.  ``pytest_runtest_logreport``
#: has no config argument, and a module-level dict is reset at each session start.
_EXTRAS: dict[str, dict[str, Any]] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: keep what each worker sent back in its ``workeroutput``."""
    output = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if output:
        _state(node.config).workers.append(output)


# -- the end: the document, the exit status ---------------------------------------------------
def _run_metadata(config: pytest.Config, conformance: Any, state: ReportState) -> dict[str, Any]:
    from driver_conformance.urls import scheme_of

    run = conformance.run
    capabilities = run.capabilities.as_dict() if run.backend is not None else None
    facts = dict(run.facts)
    for worker in state.workers:
        capabilities = capabilities or worker.get("capabilities")
        facts.update(worker.get("facts") or {})
    scheme = scheme_of(run.user_url)
    started_at = state.started_at or document.utc_now()
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
        "facts": {str(k): str(v) for k, v in facts.items()},
        "started_at": started_at,
        "finished_at": document.utc_now(),
        "duration": round(time.monotonic() - state.started, 3) if state.started else 0.0,
        "workers": max(1, len(state.workers)),
        "selection": {
            "clause_patterns": list(config.getoption("clause", default=[]) or []),
            "keyword": config.getoption("keyword", default=None) or None,
            "markexpr": config.getoption("markexpr", default=None) or None,
            "deselected": len(state.deselected),
        },
        "error": getattr(conformance, "start_error", None),
        "exit_status": None,
    }


def _worker_output(conformance: Any, state: ReportState) -> dict[str, Any]:
    run = conformance.run
    return {
        "capabilities": run.capabilities.as_dict() if run.backend is not None else None,
        "facts": {str(k): str(v) for k, v in run.facts.items()},
        "collected": state.collected,
        "deselected": state.deselected,
        "refusals": state.refusals,
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the report (``--report-json``) and set the exit status from the verdict."""
    config = session.config
    conformance = _session(config)
    if conformance is None:
        return
    state = _state(config)
    if _is_worker(config):
        config.workeroutput[_WORKER_KEY] = _worker_output(conformance, state)  # type: ignore[attr-defined]
        return
    collected = dict(state.collected)
    deselected = dict(state.deselected)
    refusals = list(state.refusals)
    for worker in state.workers:
        collected.update(worker.get("collected") or {})
        deselected.update(worker.get("deselected") or {})
        refusals += [r for r in worker.get("refusals") or [] if r not in refusals]
    for nodeid in conformance.results.scenarios:
        collected.pop(nodeid, None)
    for nodeid in deselected:
        collected.pop(nodeid, None)

    from driver_conformance.results import verdict

    catalog = conformance.catalog
    outcomes = conformance.results.clause_outcomes(catalog)
    result = verdict(catalog, outcomes)
    clauses = document.clause_entries(catalog, outcomes, extras=_EXTRAS, collected=collected,
                                      deselected=deselected)
    run = _run_metadata(config, conformance, state)
    doc = document.build_document(
        clauses=clauses, verdict=result, run=run, certify=_certify(config), refusals=refusals,
        secret_urls=[conformance.run.user_url, conformance.run.url])

    status = int(session.exitstatus)
    has_results = bool(conformance.results.scenarios)
    if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or (
            status == pytest.ExitCode.NO_TESTS_COLLECTED and has_results):
        status = report_mod.exit_code_for(result)
    if doc["certification"]["refused"] and status in (
            report_mod.EXIT_COMPLIANT, report_mod.EXIT_NON_COMPLIANT, report_mod.EXIT_UNKNOWN,
            pytest.ExitCode.NO_TESTS_COLLECTED):
        status = report_mod.EXIT_CERTIFY_REFUSED
    session.exitstatus = status
    doc["run"]["exit_status"] = status
    state.document = doc
    state.exit_status = status

    path = config.getoption("report_json", default=None)
    if path:
        try:
            write_document(doc, Path(path))
            state.written_to = str(path)
        except OSError as exc:
            state.write_error = f"cannot write the report to {path}: {exc.strerror or exc}"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            state.exit_status = int(session.exitstatus)


def write_document(doc: dict[str, Any], path: Path) -> None:
    """Write ``doc`` atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)


_EXIT_MEANING = {
    0: "compliant",
    1: "non-compliant",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no scenarios collected",
    6: "too many warnings (pytest --max-warnings)",
    7: "verdict unknown: required clauses did not run",
    8: "backend unavailable",
}


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After the kit's verdict: certification, where the report went, and the exit status."""
    state = _state(terminalreporter.config)
    doc = state.document
    if doc is None:
        return
    tr = terminalreporter
    cert = doc["certification"]
    if cert["requested"]:
        if cert["refused"]:
            tr.write_line(f"certification REFUSED ({len(cert['reasons'])} problem(s)):",
                          red=True, bold=True)
            for reason in cert["reasons"][:10]:
                tr.write_line(f"  {reason}")
        elif cert["certified"]:
            tr.write_line("certification run: CERTIFIED compliant", green=True, bold=True)
        else:
            tr.write_line(f"certification run: not certified ({doc['verdict']})", red=True)
    if state.written_to:
        tr.write_line(f"conformance report: {state.written_to}")
    if state.write_error:
        tr.write_line(state.write_error, red=True)
    if state.exit_status is not None:
        meaning = _EXIT_MEANING.get(state.exit_status, "")
        tr.write_line(f"exit status {state.exit_status}" + (f" ({meaning})" if meaning else ""))


def pytest_unconfigure(config: pytest.Config) -> None:
    _EXTRAS.clear()
