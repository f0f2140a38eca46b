"""The terminal summary of a conformance run: a verdict and counts by level."""

from __future__ import annotations

import collections
from typing import Any

from driver_conformance.catalog import LEVELS
from driver_conformance.results import verdict
from driver_conformance.urls import mask_url


def write_summary(tr: Any, session: Any) -> None:
    catalog = session.catalog
    outcomes = session.results.clause_outcomes(catalog)
    tr.section("driver-conformance")
    by_level: dict[str, collections.Counter[str]] = {lv: collections.Counter() for lv in LEVELS}
    for clause in catalog:
        by_level[clause.level][outcomes[clause.id][0]] += 1
    for level in LEVELS:
        counts = by_level[level]
        if counts:
            parts = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            tr.write_line(f"{level:<9} {sum(counts.values()):>3} clauses: {parts}")
    failing = [(c, outcomes[c.id]) for c in catalog if outcomes[c.id][0] in ("fail", "error")]
    for clause, (outcome, results) in failing:
        first = next((r for r in results if r.outcome_for(clause.id) == outcome), None)
        detail = f": {mask_url(first.message)}" if first and first.message else ""
        tr.write_line(f"{outcome.upper():<5} {clause.level:<8} {clause.id}{detail}"[:200])
    run = session.run
    result = verdict(catalog, outcomes)
    tr.write_line(f"verdict for {run.adapter.name} ({run.masked_url}): {result.upper()}",
                  bold=True, red=result != "compliant", green=result == "compliant")
