"""Reading report documents: loading, counting, verdicts and grouping.

Every renderer works from a loaded document through these functions and
nothing else, so that a merged document (see :mod:`.merge`) and a document
straight from a run are rendered alike.  The verdict is recomputed here with
the one function the pytest plugin uses (:func:`driver_conformance.results.verdict`),
fed from the document, so that a merged report cannot disagree with the rule
the terminal summary applies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from driver_conformance import outcomes as oc
from driver_conformance.catalog import AREAS, LEVELS, REQUIRED_LEVELS
from driver_conformance.configuration import fingerprint
from driver_conformance.report import (
    COMPLIANT,
    KIND,
    NON_COMPLIANT,
    OUTCOMES,
    SCHEMA_VERSION,
    UNKNOWN,
)
from driver_conformance.results import ClauseOutcome, ProfileVerdicts, Verdict, judge_profiles

Document = dict[str, Any]

#: Outcomes of a required clause that make a driver non-compliant.
FAILING = oc.FAILING


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


def clause_outcomes(clauses: list[dict[str, Any]]) -> list[ClauseOutcome]:
    """What the verdict rule needs of a document's clauses."""
    return [ClauseOutcome(c["id"], c["level"], c["outcome"], c.get("reason", ""),
                          tuple(c.get("profiles") or ())) for c in clauses]


def claimed_profiles(run: dict[str, Any]) -> list[str] | None:
    """The profiles a report's driver claims (its declared capabilities), None if unknown."""
    caps = run.get("capabilities")
    if not caps:
        return None
    return [name for name in ("rpc", "notifications") if caps.get(name, True)]


def profile_names(clauses: list[dict[str, Any]]) -> list[str]:
    """The profiles a document's clauses belong to, in the catalog's order."""
    names: list[str] = []
    for clause in clauses:
        names += [p for p in clause.get("profiles") or () if p not in names]
    return names


def judge_doc(clauses: list[dict[str, Any]], run: dict[str, Any] | None = None
              ) -> ProfileVerdicts:
    """The verdict of each profile and the run's, by the rule of :func:`results.verdict`."""
    reported = any(s.get("reported", True) for c in clauses for s in c.get("scenarios", []))
    return judge_profiles(clause_outcomes(clauses), profile_names(clauses),
                          claimed_profiles(run or {}), reported=reported)


def judge(clauses: list[dict[str, Any]], run: dict[str, Any] | None = None) -> Verdict:
    """The run's verdict of a document's clauses (over the profiles its driver claims)."""
    return judge_doc(clauses, run).overall


def verdict_of(clauses: list[dict[str, Any]], run: dict[str, Any] | None = None) -> str:
    """``compliant``, ``non-compliant`` or ``unknown`` for a document's clauses."""
    return judge(clauses, run).result


def is_required(clause: dict[str, Any]) -> bool:
    return bool(clause.get("required", clause["level"] in REQUIRED_LEVELS))


def verdict_reasons(clauses: list[dict[str, Any]], run: dict[str, Any] | None = None
                    ) -> list[str]:
    """One line per reason the verdict is not ``compliant``, most serious first."""
    return judge(clauses, run).reasons()


def profiles_entry(clauses: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """The document's ``profiles``: per profile, whether claimed, its verdict and reasons."""
    judged = judge_doc(clauses, run)
    return {name: {"claimed": name in judged.claimed, "verdict": v.result,
                   "reasons": v.reasons()} for name, v in judged.profiles.items()}


def level_counts(clauses: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per level: clause total, count per outcome, and the pass rate.

    The pass rate is passed / (total - unsupported - not applicable): an
    UNSUPPORTED clause is an optional feature the driver does not offer, and a
    NOT APPLICABLE one is not asked of it (poll-style clauses of a driver
    whose listeners are callbacks); neither is a pass nor a miss, so both are
    left out of the rate.  NOT-RUN clauses stay in the denominator, so an
    incomplete run cannot look better than a full one.
    """
    counts: dict[str, dict[str, Any]] = {}
    for clause in clauses:
        level = clause["level"]
        entry = counts.setdefault(level, {"clauses": 0, "outcomes": dict.fromkeys(OUTCOMES, 0)})
        entry["clauses"] += 1
        entry["outcomes"][clause["outcome"]] = entry["outcomes"].get(clause["outcome"], 0) + 1
    for entry in counts.values():
        applicable = (entry["clauses"] - entry["outcomes"]["unsupported"]
                      - entry["outcomes"][oc.NOT_APPLICABLE])
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


def configuration_of(doc: Document) -> dict[str, str]:
    """The options a report's configuration sets (``group.option`` -> value), kit's own
    overrides left out (:func:`driver_conformance.configuration.fingerprint`)."""
    text = fingerprint(doc["run"].get("configuration"))
    return dict(part.split("=", 1) for part in text.split(", ")) if text else {}


def identity(doc: Document) -> tuple[str, ...]:
    """What makes two reports "the same run" to merge: the adapter, the driver and its
    package version, the oslo.messaging release, and the configuration judged.

    Reports that differ in any of these are columns of a matrix, never merged:
    a driver under quorum queues is compared with itself under classic ones.
    """
    run = doc["run"]
    package = run.get("driver_package") or {}
    return (str(run.get("adapter", "")), str(run.get("driver", "")),
            str(package.get("version") or ""), str(run.get("oslo_messaging_version") or ""),
            fingerprint(run.get("configuration")))


def label(doc: Document) -> str:
    """A short column title for a driver: ``adapter`` or ``adapter (driver)``, with version."""
    adapter, driver, version = identity(doc)[:3]
    name = adapter if not driver or driver == adapter else f"{adapter} ({driver})"
    return f"{name} {version}".strip()


def labels(docs: list[Document]) -> list[str]:
    """Column titles for ``docs``, each naming what tells it from the others.

    Beside the driver's :func:`label`: the oslo.messaging release when the
    columns differ in it, and every configuration option whose value differs
    between the columns (an option one column sets and another leaves at its
    default shows as ``default`` there).
    """
    configs = [configuration_of(d) for d in docs]
    keys = sorted({k for c in configs for k in c})
    differing = [k for k in keys if len({c.get(k, "default") for c in configs}) > 1]
    releases = {str(d["run"].get("oslo_messaging_version")) for d in docs}
    out = []
    for doc, config in zip(docs, configs, strict=True):
        parts = []
        if len(releases) > 1:
            parts.append(f"oslo.messaging {doc['run'].get('oslo_messaging_version')}")
        parts += [f"{k.split('.', 1)[-1]}={config.get(k, 'default')}" for k in differing]
        out.append(label(doc) + (f" [{', '.join(parts)}]" if parts else ""))
    return out


def scenario_lines(clause: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The clause's scenarios, the ones that explain its outcome first."""
    rank = {o: i for i, o in enumerate((oc.ERROR, oc.FAIL, oc.XPASS, oc.XFAIL, oc.NOT_RUN,
                                        oc.UNSUPPORTED, oc.NOT_APPLICABLE, oc.PASS))}
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
    "judge",
    "judge_doc",
    "label",
    "labels",
    "level_counts",
    "load",
    "matrix_rows",
    "profiles_entry",
    "scenario_lines",
    "verdict_of",
    "verdict_reasons",
]
