"""Building the report document of a run from what the pytest plugin gathered.

:func:`build_document` is deliberately a function of plain inputs (the
catalog, the collected scenario results, a metadata dict) rather than of the
pytest session, so that the document's shape is decided in one place and can
be exercised without running pytest.  :func:`run_metadata` is the part that
looks at the environment (package versions, platform).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from driver_conformance.catalog import Catalog
from driver_conformance.report import KIND, OUTCOMES, SCHEMA_VERSION
from driver_conformance.report import data as report_data
from driver_conformance.report.redact import Redactor
from driver_conformance.results import ScenarioResult

#: Longest failure detail kept per scenario; the end of a traceback says the most.
DETAIL_LIMIT = 6000

DESELECTED = "deselected"
NOT_REACHED = "never ran: the session ended before this scenario"


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def driver_package(scheme: str) -> dict[str, str | None]:
    """The distribution that registers the oslo.messaging driver for ``scheme``."""
    for ep in importlib.metadata.entry_points(group="oslo.messaging.drivers", name=scheme):
        dist = getattr(ep, "dist", None)
        if dist is not None:
            return {"name": dist.metadata["Name"], "version": dist.version}
    return {"name": None, "version": None}


def module_package(obj: object) -> dict[str, str | None]:
    """The distribution an object's module comes from (an adapter's package), if installed."""
    top = (getattr(type(obj), "__module__", "") or "").split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    if not names:
        return {"name": None, "version": None}
    return {"name": names[0], "version": dist_version(names[0])}


def environment() -> dict[str, Any]:
    """Versions of the kit, oslo.messaging, Python and the platform."""
    import pytest

    from driver_conformance import __version__

    return {
        "kit_version": __version__,
        "oslo_messaging_version": dist_version("oslo.messaging"),
        "pytest_version": pytest.__version__,
        "python": {"implementation": platform.python_implementation(),
                   "version": platform.python_version()},
        "platform": platform.platform(),
    }


def scenario_entry(result: ScenarioResult, extras: Mapping[str, Any] | None) -> dict[str, Any]:
    extras = extras or {}
    return {
        "nodeid": result.nodeid,
        "outcome": result.outcome,
        "reported": True,
        "duration": round(float(result.duration or 0.0), 4),
        "message": result.message or "",
        "detail": str(extras.get("detail") or "")[-DETAIL_LIMIT:],
        "delivery": dict(result.delivery) if result.delivery else None,
        "leaked_threads": list(result.leaked_threads),
        "hypothesis_seed": _seed(extras.get("hypothesis_seed")),
    }


def _seed(value: Any) -> int | str | None:
    if value is None or isinstance(value, int | str):
        return value
    return str(value)


def unreported_entry(nodeid: str, message: str) -> dict[str, Any]:
    return {"nodeid": nodeid, "outcome": "not-run", "reported": False, "duration": 0.0,
            "message": message, "detail": "", "delivery": None, "leaked_threads": [],
            "hypothesis_seed": None}


def clause_entries(
    catalog: Catalog,
    outcomes: Mapping[str, tuple[str, list[ScenarioResult]]],
    *,
    extras: Mapping[str, Mapping[str, Any]] | None = None,
    collected: Mapping[str, Iterable[str]] | None = None,
    deselected: Mapping[str, Iterable[str]] | None = None,
) -> list[dict[str, Any]]:
    """One entry per catalog clause, with its scenarios.

    Scenarios that were deselected, or collected but never reported (the
    session stopped early), are listed with ``reported: false``, so that a
    reader sees *why* a required clause did not run rather than a bare NOT-RUN.
    """
    extras = extras or {}
    unreported: dict[str, list[tuple[str, str]]] = {}
    for source, message in ((deselected or {}, DESELECTED), (collected or {}, NOT_REACHED)):
        for nodeid, clause_ids in source.items():
            for cid in clause_ids:
                unreported.setdefault(cid, []).append((nodeid, message))
    entries = []
    for clause in catalog:
        outcome, results = outcomes.get(clause.id, ("not-run", []))
        scenarios = [scenario_entry(r, extras.get(r.nodeid)) for r in results]
        seen = {s["nodeid"] for s in scenarios}
        for nodeid, message in unreported.get(clause.id, []):
            if nodeid not in seen:
                seen.add(nodeid)
                scenarios.append(unreported_entry(nodeid, message))
        entries.append({
            "id": clause.id,
            "level": clause.level,
            "required": clause.required,
            "area": clause.area,
            "method": clause.method,
            "source": clause.source,
            "feature": clause.feature,
            "text": clause.text,
            "check": clause.check,
            "outcome": outcome if outcome in OUTCOMES else "not-run",
            "scenarios": scenarios,
        })
    return entries


def certification_problems(clauses: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why a run cannot certify: required clauses deselected, skipped or expected to fail.

    Judged per clause, as the verdict is: a scenario that does not apply (a
    refusal check for a feature the driver declares supported ends NOT RUN)
    is fine as long as the clause's other scenarios ran and passed.  An
    OPTIONAL clause reported UNSUPPORTED is the one allowed way for a required
    clause not to pass: the driver declared the feature absent.
    """
    problems = []
    for clause in clauses:
        if not clause.get("required"):
            continue
        outcome = clause["outcome"]
        what = None
        if outcome in ("xfail", "xpass"):
            what = "expected to fail"
        elif outcome == "not-run":
            # A clause no scenario checks yet is a gap in the kit, not in the
            # run: the verdict (unknown) says so already.
            scenarios = clause.get("scenarios", [])
            if not scenarios:
                continue
            if all(s.get("message") == DESELECTED for s in scenarios):
                what = DESELECTED
            else:
                what = "skipped or not run"
        elif outcome == "unsupported" and clause["level"] != "OPTIONAL":
            what = "skipped as unsupported"
        if what:
            problems.append(f"{clause['level']} clause {clause['id']} {what}")
    return problems


def build_document(
    *,
    clauses: list[dict[str, Any]],
    verdict: str,
    run: dict[str, Any],
    certify: bool,
    refusals: Iterable[str] = (),
    secret_urls: Iterable[str] = (),
) -> dict[str, Any]:
    """The report document, redacted of every password in ``secret_urls``.

    ``refusals`` are certification problems found before the run's results
    (deselection, markers); the ones visible in the results are added here.
    """
    problems = list(refusals)
    if certify:
        problems += [p for p in certification_problems(clauses) if p not in problems]
    doc = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "run": dict(run, certify=certify),
        "verdict": verdict,
        "verdict_reasons": report_data.verdict_reasons(clauses, verdict),
        "certification": {
            "requested": certify,
            "refused": bool(certify and problems),
            "certified": bool(certify and not problems and verdict == "compliant"),
            "reasons": problems if certify else [],
        },
        "counts": report_data.level_counts(clauses),
        "clauses": clauses,
    }
    return Redactor(secret_urls).data(doc)
