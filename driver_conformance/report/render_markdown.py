"""Markdown summary of one or more reports, for CI job summaries and pull requests.

GitHub-flavoured Markdown, because that is what ``$GITHUB_STEP_SUMMARY``,
GitLab and Gitea comments render: a verdict table (one row per driver,
counts by level), the clauses that stop each driver from being compliant,
with their first failure message, and the full matrix folded in a
``<details>`` block so that a pull request comment stays short.
"""

from __future__ import annotations

from typing import Any

from driver_conformance.catalog import LEVELS
from driver_conformance.report import COMPLIANT, NON_COMPLIANT
from driver_conformance.report import data as report_data
from driver_conformance.report.data import Document

_ICON = {
    "pass": "✅", "fail": "❌", "error": "💥", "xfail": "⚠️", "xpass": "⚠️",
    "unsupported": "⚪", "not-applicable": "🔘", "not-run": "⏸️",
}
_VERDICT_ICON = {COMPLIANT: "✅", NON_COMPLIANT: "❌"}
#: Failing clauses listed per driver before "... and N more".
MAX_LISTED = 25
MESSAGE_WIDTH = 160


def cell(text: Any) -> str:
    """``text`` made safe for one table cell: one line, pipes escaped, HTML-inert."""
    value = " ".join(str(text).split())
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    value = value.replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("`", "'")


def _short(text: str, width: int = MESSAGE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _level_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "&ndash;"
    outcomes = entry["outcomes"]
    applicable = (entry["clauses"] - outcomes.get("unsupported", 0)
                  - outcomes.get("not-applicable", 0))
    text = f"{outcomes.get('pass', 0)}/{applicable}"
    extra = [f"{outcomes[o]} {o}" for o in ("fail", "error", "xfail", "xpass", "not-run")
             if outcomes.get(o)]
    for outcome in ("unsupported", "not-applicable"):
        if outcomes.get(outcome):
            extra.append(f"{outcomes[outcome]} {outcome}")
    return text + (f" ({', '.join(extra)})" if extra else "")


def render_markdown(docs: list[Document], *, title: str = "oslo.messaging driver conformance"
                    ) -> str:
    """The Markdown summary of ``docs`` (already merged, one per driver)."""
    levels: list[str] = []
    for doc in docs:
        levels += [lv for lv in doc["counts"] if lv not in levels]
    lines = [f"## {cell(title)}", ""]
    lines.append("| Driver | Verdict | " + " | ".join(levels) + " |")
    lines.append("|---|---|" + "---|" * len(levels))
    titles = report_data.labels(docs)
    for doc, column in zip(docs, titles, strict=True):
        icon = _VERDICT_ICON.get(doc["verdict"], "❔")
        lines.append(f"| {cell(column)} | {icon} "
                     f"**{report_data.headline(doc)}** | "
                     + " | ".join(_level_cell(doc["counts"].get(lv)) for lv in levels) + " |")
    lines += ["", "Per level: clauses passed / clauses that apply (UNSUPPORTED optional "
              "features and NOT APPLICABLE clauses are not counted)."]
    for doc, column in zip(docs, titles, strict=True):
        lines += ["", *_driver_section(doc, column)]
    lines += ["", *_matrix(docs)]
    return "\n".join(lines) + "\n"


def _driver_section(doc: Document, column: str) -> list[str]:
    run = doc["run"]
    out = [f"### {cell(column)}: {report_data.headline(doc)}", ""]
    judged = report_data.configuration_of(doc)
    if judged:
        out += ["Configuration judged: " + ", ".join(
            f"`{cell(k)}={cell(v)}`" for k, v in judged.items()), ""]
    meta = [
        f"kit {run['kit_version']}",
        f"oslo.messaging {run['oslo_messaging_version']}",
        f"Python {run['python']['version']}",
        f"URL `{cell(run['transport_url'])}`",
        f"time scale {run['time_scale']:g}",
    ]
    if run.get("broker_version"):
        meta.append(f"broker {cell(run['broker_version'])}")
    if run.get("hypothesis_seed") is not None:
        meta.append(f"Hypothesis seed {cell(run['hypothesis_seed'])}")
    if run.get("sources"):
        meta.append(f"merged from {len(run['sources'])} runs")
    out += [", ".join(meta), ""]
    if run.get("error"):
        out += [f"> **Run error:** {cell(run['error'])}", ""]
    cert = doc["certification"]
    if cert["requested"]:
        if cert["refused"]:
            out += ["**Certification refused:**", ""]
            out += [f"- {cell(r)}" for r in cert["reasons"][:MAX_LISTED]]
            out.append("")
        elif cert["certified"]:
            out += ["Certification run: **certified**.", ""]
    reasons = doc.get("verdict_reasons") or []
    blocking = [c for c in doc["clauses"] if report_data.is_required(c)
                and c["outcome"] in report_data.FAILING]
    if blocking:
        out += ["| Clause | Level | Outcome | Scenario | Message |", "|---|---|---|---|---|"]
        for clause in blocking[:MAX_LISTED]:
            first = next(iter(report_data.scenario_lines(clause)), None)
            out.append(
                f"| `{clause['id']}` | {clause['level']} | {_ICON[clause['outcome']]} "
                f"{clause['outcome']} | {cell(first['nodeid']) if first else ''} | "
                f"{cell(_short(first['message'])) if first else ''} |")
        if len(blocking) > MAX_LISTED:
            out.append(f"\n… and {len(blocking) - MAX_LISTED} more.")
        out.append("")
    # The per-clause reasons are the table above; the rest (clauses that did
    # not run, no results at all) are listed as they are.
    other = [r for r in reasons if r.split(" ", 1)[0] not in LEVELS]
    out += [f"- {cell(r)}" for r in other]
    should = [c for c in doc["clauses"] if not report_data.is_required(c)
              and c["outcome"] in report_data.FAILING]
    if should:
        out += ["", f"{len(should)} SHOULD/MAY clause(s) did not pass (warnings, not counted "
                    "against the verdict): " + ", ".join(f"`{c['id']}`" for c in should[:10])]
    return out


def _matrix(docs: list[Document]) -> list[str]:
    outcome = [{c["id"]: c["outcome"] for c in doc["clauses"]} for doc in docs]
    out = ["<details><summary>All clauses</summary>", "",
           "| Area | Clause | Level | " + " | ".join(cell(t) for t in report_data.labels(docs))
           + " |",
           "|---|---|---|" + "---|" * len(docs)]
    for area, clauses in report_data.matrix_rows(docs):
        for clause in clauses:
            cells = []
            for per_doc in outcome:
                o = per_doc.get(clause["id"])
                cells.append(f"{_ICON[o]} {o}" if o else "")
            out.append(f"| {cell(area)} | `{clause['id']}` | {clause['level']} | "
                       + " | ".join(cells) + " |")
    out += ["", "</details>"]
    return out
