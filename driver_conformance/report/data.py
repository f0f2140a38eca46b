"""Reading report documents: loading, counting, verdicts and grouping.

Every renderer works from a loaded document through these functions and
nothing else, so that a merged document (see :mod:`.merge`) and a document
straight from a run are rendered alike.  The verdict is recomputed here with
the same function the pytest plugin uses (:func:`driver_conformance.results.verdict`),
fed from the document, so that a merged report cannot disagree with the rule
the terminal summary applies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from driver_conformance.catalog import AREAS, LEVELS, Catalog, Clause
from driver_conformance.report import (
    COMPLIANT,
    KIND,
    NON_COMPLIANT,
    OUTCOMES,
    SCHEMA_VERSION,
    UNKNOWN,
)
from driver_conformance.results import ScenarioResult, verdict

Document = dict[str, Any]

#: Outcomes of a required clause that make a driver non-compliant.
FAILING = ("fail", "error", "xpass", "xfail")


class BadReport(ValueError):
    """A file is not a report document this kit can read; the message says why, in one line."""


def check_document(doc: Any, where: str = "report") -> Document:
    """Raise :class:`BadReport` unless ``doc`` looks like a report of a readable version.

    This is a cheap structural check (the full JSON Schema is validated in the
    kit's tests, with ``jsonschema``, which is not a runtime dependency): it
    catches the wrong file and a report from an incompatible future kit.
    """
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise BadReport(f"{where}: not a driver-conformance report (no kind={KIND!r})")
    version = str(doc.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise BadReport(f"{where}: report format {version!r} is not readable by this kit "
                        f"(reads {SCHEMA_VERSION.split('.')[0]}.x)")
    if not isinstance(doc.get("clauses"), list) or not isinstance(doc.get("run"), dict):
        raise BadReport(f"{where}: report has no 'run' object or no 'clauses' list")
    return doc


def load(path: str | Path) -> Document:
    """Read and check one report file."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadReport(f"{path}: cannot read report: {exc}") from None
    return check_document(doc, str(path))


def verdict_of(clauses: list[dict[str, Any]]) -> str:
    """The verdict for a document's clauses, by the rule of :func:`results.verdict`."""
    catalog = [Clause(id=c["id"], level=c["level"], method=c.get("method", ""),
                      area=c.get("area", ""), source=c.get("source", ""),
                      text=c.get("text", ""), check=c.get("check", ""),
                      feature=c.get("feature")) for c in clauses]
    outcomes = {
        c["id"]: (c["outcome"], [ScenarioResult(s["nodeid"], [c["id"]], s["outcome"])
                                 for s in c.get("scenarios", []) if s.get("reported", True)])
        for c in clauses
    }
    return verdict(cast(Catalog, catalog), outcomes)


def is_required(clause: dict[str, Any]) -> bool:
    return bool(clause.get("required", clause["level"] in ("MUST", "DERIVED", "OPTIONAL")))


def verdict_reasons(clauses: list[dict[str, Any]], result: str) -> list[str]:
    """One line per reason the verdict is not ``compliant``, most serious first."""
    if result == COMPLIANT:
        return []
    if not any(s.get("reported", True) for c in clauses for s in c.get("scenarios", [])):
        return ["no scenario reported a result"]
    failing = [c for c in clauses if is_required(c) and c["outcome"] in FAILING]
    missing = [c for c in clauses if is_required(c) and c["outcome"] not in FAILING
               and c["outcome"] != "pass"
               and not (c["outcome"] == "unsupported" and c["level"] == "OPTIONAL")]
    reasons = [f"{c['level']} clause {c['id']}: {c['outcome']}" for c in failing]
    if missing:
        ids = ", ".join(c["id"] for c in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        reasons.append(f"{len(missing)} required clause(s) did not pass or run: {ids}{more}")
    return reasons


def level_counts(clauses: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per level: clause total, count per outcome, and the pass rate.

    The pass rate is passed / (total - unsupported): an UNSUPPORTED clause is
    an optional feature the driver does not offer, neither a pass nor a miss,
    so it is left out of the rate altogether.  NOT-RUN clauses stay in the
    denominator, so an incomplete run cannot look better than a full one.
    """
    counts: dict[str, dict[str, Any]] = {}
    for clause in clauses:
        level = clause["level"]
        entry = counts.setdefault(level, {"clauses": 0, "outcomes": dict.fromkeys(OUTCOMES, 0)})
        entry["clauses"] += 1
        entry["outcomes"][clause["outcome"]] = entry["outcomes"].get(clause["outcome"], 0) + 1
    for entry in counts.values():
        applicable = entry["clauses"] - entry["outcomes"]["unsupported"]
        entry["pass_rate"] = (round(entry["outcomes"]["pass"] / applicable, 4)
                              if applicable else None)
    order = {lv: i for i, lv in enumerate(LEVELS)}
    return dict(sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order))))


def areas(doc: Document) -> list[tuple[str, list[dict[str, Any]]]]:
    """The document's clauses grouped by contract area.

    Areas come in the catalog's order of areas (addressing first, as the
    contract reads), any area this kit does not know after them.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for clause in doc["clauses"]:
        groups.setdefault(clause.get("area") or "other", []).append(clause)
    rank = {area: i for i, area in enumerate(AREAS)}
    return sorted(groups.items(), key=lambda kv: rank.get(kv[0], len(rank)))


def matrix_rows(docs: list[Document]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The union of several documents' clauses, grouped by area as :func:`areas` does."""
    merged: Document = {"clauses": []}
    seen: set[str] = set()
    for doc in docs:
        for clause in doc["clauses"]:
            if clause["id"] not in seen:
                seen.add(clause["id"])
                merged["clauses"].append(clause)
    return areas(merged)


def identity(doc: Document) -> tuple[str, str, str]:
    """What makes two reports "the same driver": adapter, driver, driver package version."""
    run = doc["run"]
    package = run.get("driver_package") or {}
    return (str(run.get("adapter", "")), str(run.get("driver", "")),
            str(package.get("version") or ""))


def label(doc: Document) -> str:
    """A short column title for a driver: ``adapter`` or ``adapter (driver)``, with version."""
    adapter, driver, version = identity(doc)
    name = adapter if not driver or driver == adapter else f"{adapter} ({driver})"
    return f"{name} {version}".strip()


def scenario_lines(clause: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The clause's scenarios, the ones that explain its outcome first."""
    rank = {o: i for i, o in enumerate(("error", "fail", "xpass", "xfail", "not-run",
                                        "unsupported", "pass"))}
    yield from sorted(clause.get("scenarios", []),
                      key=lambda s: (rank.get(s["outcome"], 99), s["nodeid"]))


def headline(doc: Document) -> str:
    """``COMPLIANT``, ``NON-COMPLIANT`` or ``UNKNOWN``, with ``(certified)`` when it is."""
    text = doc["verdict"].upper()
    if (doc.get("certification") or {}).get("certified"):
        text += " (certified)"
    return text


__all__ = [
    "COMPLIANT",
    "NON_COMPLIANT",
    "UNKNOWN",
    "BadReport",
    "Document",
    "areas",
    "check_document",
    "headline",
    "identity",
    "label",
    "level_counts",
    "load",
    "matrix_rows",
    "scenario_lines",
    "verdict_of",
    "verdict_reasons",
]
