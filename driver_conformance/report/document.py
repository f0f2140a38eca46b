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
from collections.abc import Iterable
from typing import Any

from driver_conformance import outcomes as oc
from driver_conformance.catalog import Catalog, load_catalog
from driver_conformance.report import KIND, OUTCOMES, SCHEMA_VERSION
from driver_conformance.report import data as report_data
from driver_conformance.report.redact import Redactor
from driver_conformance.results import ClauseResult, ScenarioResult

#: Longest failure detail kept per scenario; the end of a traceback says the most.
DETAIL_LIMIT = 6000



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


def scenario_entry(result: ScenarioResult, clause_id: str) -> dict[str, Any]:
    """One scenario of one clause: how it judged the clause, and how it ended overall."""
    outcome, message = result.outcome_for(clause_id)
    return {
        "nodeid": result.nodeid,
        "outcome": outcome if outcome in OUTCOMES else oc.NOT_RUN,
        "scenario_outcome": result.outcome if result.outcome in OUTCOMES else oc.NOT_RUN,
        "reported": result.reported,
        "duration": round(float(result.duration or 0.0), 4),
        "message": message or "",
        "detail": (result.detail or "")[-DETAIL_LIMIT:],
        "delivery": dict(result.delivery) if result.delivery else None,
        "leaked_threads": list(result.leaked_threads),
        "hung": list(result.hung),
        "teardown_error": result.teardown_error,
        "hypothesis_seed": _seed(result.hypothesis_seed),
    }


def _seed(value: Any) -> int | str | None:
    if value is None or isinstance(value, int | str):
        return value
    return str(value)


def clause_entries(results: Iterable[ClauseResult], catalog: Catalog | None = None
                   ) -> list[dict[str, Any]]:
    """One entry per catalog clause, with its scenarios and, if it did not pass, why.

    Scenarios that were deselected, or collected but never reported (the
    session stopped early), are listed with ``reported: false``, so that a
    reader sees *why* a required clause was not judged rather than a bare NOT-RUN.
    """
    entries = []
    for result in results:
        clause = result.clause
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
            "profiles": (catalog or load_catalog()).profiles_of(clause.id),
            "outcome": result.outcome if result.outcome in OUTCOMES else oc.NOT_RUN,
            "reason": result.reason,
            "scenarios": [scenario_entry(s, clause.id) for s in result.scenarios],
        })
    return entries


def build_document(
    *,
    clauses: list[dict[str, Any]],
    run: dict[str, Any],
    certify: bool,
    problems: Iterable[str] = (),
    secret_urls: Iterable[str] = (),
) -> dict[str, Any]:
    """The report document, redacted of every password in ``secret_urls``.

    The verdict is computed from ``clauses`` by the one rule
    (:func:`driver_conformance.results.verdict`); ``problems`` are why a
    ``--certify`` run cannot certify (:func:`driver_conformance.certify.problems`).
    """
    problems = list(problems)
    judged = report_data.judge(clauses, run)
    verdict = judged.result
    doc = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "run": dict(run, certify=certify),
        "verdict": verdict,
        "verdict_reasons": judged.reasons(),
        "profiles": report_data.profiles_entry(clauses, run),
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
