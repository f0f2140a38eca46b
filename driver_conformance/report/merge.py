"""Merging reports of the same driver into one result per clause.

CI often splits a conformance run: shards of one job (``--clause`` per
area), or several jobs.  Each writes its own report; merging them clause by
clause gives the driver's full picture.  The rule is the one the plugin uses
for the scenarios of one clause (:func:`driver_conformance.results.worst`):
the worst outcome wins, a failure anywhere is a failure, and a clause is
``pass`` only if some run actually ran it; NOT-RUN in one shard does not hide
a result from another.

Reports of *different* drivers are never merged: they become the columns of
a matrix.  "The same driver" means the same adapter, driver and driver
package version (:func:`.data.identity`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from driver_conformance.certify import problems as certification_problems
from driver_conformance.outcomes import ORDER as OUTCOME_ORDER
from driver_conformance.report import KIND, SCHEMA_VERSION
from driver_conformance.report import data as report_data
from driver_conformance.report.data import Document
from driver_conformance.results import worst


def group_by_driver(docs: Iterable[Document]) -> list[list[Document]]:
    """Documents grouped by driver identity, groups in order of first appearance."""
    groups: dict[tuple[str, str, str], list[Document]] = {}
    for doc in docs:
        groups.setdefault(report_data.identity(doc), []).append(doc)
    return list(groups.values())


def merge_all(docs: Iterable[Document]) -> list[Document]:
    """One document per driver: each group of same-driver reports merged."""
    return [merge(group) for group in group_by_driver(docs)]


def _rank(scenario: dict[str, Any]) -> tuple[int, int]:
    """Sort key: reported before unreported, then worst outcome first."""
    outcome = scenario["outcome"]
    order = OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else len(OUTCOME_ORDER)
    return (0 if scenario.get("reported", True) else 1, order)


def _merge_scenarios(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_node: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_node.setdefault(entry["nodeid"], []).append(entry)
    merged = []
    for same in by_node.values():
        best = dict(min(same, key=_rank))
        reported = sum(1 for s in same if s.get("reported", True))
        if len(same) > 1:
            best["runs"] = max(1, reported)
        merged.append(best)
    return merged


def _merge_clauses(docs: list[Document]) -> list[dict[str, Any]]:
    order: list[str] = []
    by_id: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for clause in doc["clauses"]:
            if clause["id"] not in by_id:
                order.append(clause["id"])
            by_id.setdefault(clause["id"], []).append(clause)
    merged = []
    for cid in order:
        versions = by_id[cid]
        clause = copy.deepcopy(versions[0])
        clause["outcome"] = worst(c["outcome"] for c in versions)
        clause["reason"] = next((c.get("reason", "") for c in versions
                                 if c["outcome"] == clause["outcome"]), "")
        clause["scenarios"] = _merge_scenarios([s for c in versions for s in c["scenarios"]])
        merged.append(clause)
    return merged


def _same_or_none(values: list[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else None


def merge(docs: list[Document]) -> Document:
    """Merge reports of one driver; a single report is returned unchanged."""
    if len(docs) == 1:
        return docs[0]
    runs = [d["run"] for d in docs]
    clauses = _merge_clauses(docs)
    run = copy.deepcopy(runs[0])
    facts: dict[str, str] = {}
    for r in runs:
        facts.update(r.get("facts") or {})
    patterns = [p for r in runs for p in r["selection"]["clause_patterns"]]
    run.update(
        started_at=min(r["started_at"] for r in runs),
        finished_at=max(r["finished_at"] for r in runs),
        duration=round(sum(r["duration"] for r in runs), 3),
        workers=sum(r["workers"] for r in runs),
        hypothesis_seed=_same_or_none([r["hypothesis_seed"] for r in runs]),
        time_scale=max(r["time_scale"] for r in runs),
        capabilities=next((r["capabilities"] for r in runs if r["capabilities"]), None),
        broker_version=next((r["broker_version"] for r in runs if r["broker_version"]), None),
        facts=facts,
        certify=all(r["certify"] for r in runs),
        error=next((r["error"] for r in runs if r["error"]), None),
        exit_status=None,
        selection={
            "clause_patterns": list(dict.fromkeys(patterns)),
            "keyword": _same_or_none([r["selection"]["keyword"] for r in runs]),
            "markexpr": _same_or_none([r["selection"]["markexpr"] for r in runs]),
            "deselected": sum(1 for c in clauses for s in c["scenarios"]
                              if not s.get("reported", True)),
        },
        sources=[{
            "started_at": r["started_at"],
            "finished_at": r["finished_at"],
            "certify": r["certify"],
            "verdict": d["verdict"],
            "exit_status": r["exit_status"],
            "hypothesis_seed": r["hypothesis_seed"],
            "workers": r["workers"],
        } for d, r in zip(docs, runs, strict=True)],
    )
    verdict = report_data.verdict_of(clauses, run)
    requested = run["certify"]
    reasons: list[str] = []
    if requested:
        for doc in docs:
            reasons += [r for r in doc["certification"]["reasons"] if r not in reasons]
        reasons += [p for p in certification_problems(clauses) if p not in reasons]
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "verdict": verdict,
        "verdict_reasons": report_data.verdict_reasons(clauses, run),
        "profiles": report_data.profiles_entry(clauses, run),
        "certification": {
            "requested": requested,
            "refused": bool(requested and reasons),
            "certified": bool(requested and not reasons and verdict == "compliant"),
            "reasons": reasons,
        },
        "counts": report_data.level_counts(clauses),
        "clauses": clauses,
    }
