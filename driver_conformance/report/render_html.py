"""A self-contained HTML page of one or more reports: the clause-by-driver matrix.

The page must open from a CI artefact, a mail attachment or a file share,
offline, and must not tell anyone it was opened: so there is no external
asset at all (styles and scripts are inline, no fonts, no images), and a
Content-Security-Policy forbids the page from loading anything should a
future edit slip a URL in.  It is a pure function of the documents, so the
same reports always give the same bytes.

Layout: a card per driver (verdict, counts by level, run metadata), then the
matrix (clauses grouped by contract area, one column per driver, filters by
level and outcome), then the detail of every cell (each matrix cell links to
its detail: the clause's sentence, and each scenario's outcome, duration,
message, delivery counts and traceback tail).

The page records its own script errors, CSP violations and resource loads
in a hidden ``#dc-selfcheck`` element; the kit's tests read it from a
headless browser to prove the page is self-contained and error-free.
"""

from __future__ import annotations

import html
import json
from typing import Any

from driver_conformance.catalog import LEVELS
from driver_conformance.report import OUTCOMES
from driver_conformance.report import data as report_data
from driver_conformance.report.data import Document

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; base-uri 'none'; form-action 'none'")

#: Cell backgrounds per outcome; the tests look for these colours in a screenshot.
OUTCOME_COLOURS = {
    "pass": "#b7e4c0",
    "fail": "#f4a6a6",
    "error": "#e98ad0",
    "xfail": "#ffd59e",
    "xpass": "#ffd59e",
    "unsupported": "#d9d9d9",
    "not-run": "#fff3a8",
}
VERDICT_COLOURS = {"compliant": "#2e7d32", "non-compliant": "#c62828", "unknown": "#616161"}

_SELFCHECK_JS = """
(function () {
  var d = {errors: [], violations: [], resources: []};
  function dump() {
    d.resources = performance.getEntriesByType("resource").map(function (r) { return r.name; });
    var el = document.getElementById("dc-selfcheck");
    if (el) { el.textContent = JSON.stringify(d); }
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window) { d.errors.push("failed to load " + (t.src || t.href || t.tagName)); }
    else { d.errors.push(String(e.message) + " at " + e.filename + ":" + e.lineno); }
    dump();
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    d.errors.push("unhandled rejection: " + String(e.reason)); dump();
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    d.violations.push(e.violatedDirective + " " + e.blockedURI); dump();
  });
  var original = console.error;
  console.error = function () {
    d.errors.push(Array.prototype.join.call(arguments, " ")); dump();
    return original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", dump);
  window.addEventListener("load", function () { dump(); setTimeout(dump, 0); });
})();
"""

_FILTER_JS = """
(function () {
  var form = document.getElementById("filters");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#matrix tr.clause"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("#matrix tbody"));
  function checked(name) {
    var on = {};
    form.querySelectorAll("input[name=" + name + "]").forEach(function (box) {
      if (box.checked) { on[box.value] = true; }
    });
    return on;
  }
  function apply() {
    var levels = checked("level"), outcomes = checked("outcome"), shown = 0;
    rows.forEach(function (row) {
      var visible = levels[row.dataset.level] === true &&
        row.dataset.outcomes.split(" ").some(function (o) { return outcomes[o] === true; });
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    groups.forEach(function (body) {
      body.hidden = body.querySelector("tr.clause:not([hidden])") === null;
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " clauses shown";
  }
  // "?level=MUST,DERIVED&outcome=fail,error" presets the filters, so that a
  // CI link can open the page on the failures alone.
  var query = new URLSearchParams(window.location.search);
  ["level", "outcome"].forEach(function (name) {
    if (!query.has(name)) { return; }
    var wanted = query.get(name).split(",");
    form.querySelectorAll("input[name=" + name + "]").forEach(function (box) {
      box.checked = wanted.indexOf(box.value) >= 0;
    });
  });
  form.addEventListener("change", apply);
  form.hidden = false;
  apply();
})();
"""

_CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; }
body { margin: 1.5rem; max-width: 110rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85em; }
.muted { color: #555; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .75rem 1rem; min-width: 22rem; }
.card h2 { margin: 0 0 .5rem; font-size: 1.1rem; }
.verdict { display: inline-block; color: #fff; border-radius: 4px; padding: .1rem .5rem;
           font-weight: 600; }
.card table { border-collapse: collapse; margin: .5rem 0; }
.card td, .card th { padding: .1rem .5rem; text-align: right; border-bottom: 1px solid #eee; }
.card td:first-child, .card th:first-child { text-align: left; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0 .75rem; margin: .5rem 0 0;
          font-size: .85rem; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
ul.reasons { margin: .25rem 0; padding-left: 1.2rem; font-size: .85rem; }
#filters { margin: 1rem 0; display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; }
#filters fieldset { border: 1px solid #ccc; border-radius: 4px; padding: .25rem .75rem; }
#filters label { margin-right: .6rem; white-space: nowrap; }
table.matrix { border-collapse: collapse; }
table.matrix th, table.matrix td { border: 1px solid #ccc; padding: .2rem .5rem; }
table.matrix thead th { position: sticky; top: 0; background: #f5f5f5; }
table.matrix tr.area th { background: #eceff1; text-align: left; text-transform: capitalize; }
table.matrix td.cell { text-align: center; min-width: 7rem; padding: 0; }
table.matrix td.cell a { display: block; padding: .2rem .5rem; color: #1b1b1b;
                         text-decoration: none; }
table.matrix td.cell a:hover { text-decoration: underline; }
.lv { font-size: .75rem; font-weight: 600; }
article.detail { border-left: 4px solid #ccc; padding: .25rem .75rem; margin: .75rem 0; }
article.detail:target { outline: 2px solid #1565c0; }
article.detail h4 { margin: .2rem 0; font-size: 1rem; }
article.detail p { margin: .2rem 0; }
table.scen { border-collapse: collapse; font-size: .85rem; margin: .3rem 0; }
table.scen th, table.scen td { border: 1px solid #ddd; padding: .15rem .4rem; text-align: left;
                               vertical-align: top; }
pre.tb { background: #f7f7f7; padding: .5rem; overflow-x: auto; max-height: 24rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _outcome_css() -> str:
    rules = [f".o-{o} {{ background: {c}; }}" for o, c in OUTCOME_COLOURS.items()]
    rules += [f"article.detail.o-{o} {{ border-left-color: {c}; background: none; }}"
              for o, c in OUTCOME_COLOURS.items()]
    return "\n".join(rules)


def detail_id(column: int, clause_id: str) -> str:
    """The HTML id of the detail of ``clause_id`` for the driver in ``column``."""
    return f"d{column}-{clause_id}"


def render_html(docs: list[Document], *, title: str = "oslo.messaging driver conformance",
                bench: list[dict[str, Any]] | None = None) -> str:
    """The HTML page for ``docs`` (already merged, one per driver: the matrix columns).

    ``bench`` documents (``driver-conformance bench --json``), when given, add
    a performance panel after the driver cards.
    """
    from driver_conformance.bench.render import render_panel

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title>",
        f"<script>{_SELFCHECK_JS}</script>",
        f"<style>{_CSS}\n{_outcome_css()}</style>",
        "</head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="muted">{len(docs)} driver(s); '
        + "; ".join(f"{_e(report_data.label(d))}: run finished {_e(d['run']['finished_at'])}"
                    for d in docs)
        + "</p></header>",
        '<section class="cards" id="drivers">',
        *(_card(i, doc) for i, doc in enumerate(docs)),
        "</section>",
        render_panel(bench or []),
        '<p class="muted">Pass rate: passed / (clauses &minus; unsupported); UNSUPPORTED optional '
        "features are shown on their own and never counted as passed.</p>",
        "<h2>Clauses</h2>",
        _filters(docs),
        _matrix(docs),
        '<section id="details"><h2>Details</h2>',
        *(_details(i, doc) for i, doc in enumerate(docs)),
        "</section>",
        '<pre id="dc-selfcheck" hidden></pre>',
        f"<script>{_FILTER_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _card(column: int, doc: Document) -> str:
    run = doc["run"]
    verdict = doc["verdict"]
    rows = []
    for level, entry in doc["counts"].items():
        o = entry["outcomes"]
        rate = entry["pass_rate"]
        rows.append(
            f"<tr><td>{_e(level)}</td><td>{entry['clauses']}</td><td>{o.get('pass', 0)}</td>"
            f"<td>{o.get('fail', 0) + o.get('error', 0)}</td>"
            f"<td>{o.get('xfail', 0) + o.get('xpass', 0)}</td><td>{o.get('not-run', 0)}</td>"
            f"<td>{o.get('unsupported', 0)}</td>"
            f"<td>{'&ndash;' if rate is None else f'{rate:.0%}'}</td></tr>")
    meta: list[tuple[str, Any]] = [
        ("adapter", f"{run['adapter']} ({(run.get('adapter_package') or {}).get('name') or '?'})"),
        ("driver", f"{run['driver']} {(run.get('driver_package') or {}).get('version') or ''}"),
        ("transport URL", run["transport_url"]),
        ("oslo.messaging", run["oslo_messaging_version"]),
        ("broker", run.get("broker_version") or "-"),
        ("kit", run["kit_version"]),
        ("Python", f"{run['python']['implementation']} {run['python']['version']}"),
        ("platform", run["platform"]),
        ("time scale", f"{run['time_scale']:g}"),
        ("Hypothesis seed", "-" if run["hypothesis_seed"] is None else run["hypothesis_seed"]),
        ("started", run["started_at"]),
        ("finished", run["finished_at"]),
        ("workers", run["workers"]),
    ]
    if run.get("sources"):
        meta.append(("merged from", f"{len(run['sources'])} runs"))
    if run.get("capabilities"):
        caps = run["capabilities"]
        meta.append(("capabilities", ", ".join(
            k if v is True else f"{k}={','.join(v) if isinstance(v, list) else v}"
            for k, v in caps.items() if v not in (False, [], None))))
        absent = [k for k, v in caps.items() if v is False]
        if absent:
            meta.append(("declared unsupported", ", ".join(absent)))
    if run.get("error"):
        meta.append(("run error", run["error"]))
    cert = doc["certification"]
    if cert["requested"]:
        meta.append(("certification", "certified" if cert["certified"]
                     else "refused" if cert["refused"] else "not certified"))
    reasons = doc.get("verdict_reasons", []) + (cert["reasons"] if cert["refused"] else [])
    return (
        f'<div class="card" id="driver-{column}"><h2>{_e(report_data.label(doc))}</h2>'
        f'<span class="verdict" style="background:{VERDICT_COLOURS.get(verdict, "#616161")}">'
        f"{_e(report_data.headline(doc))}</span>"
        + (f'<ul class="reasons">{"".join(f"<li>{_e(r)}</li>" for r in reasons[:6])}'
           + (f"<li>… {len(reasons) - 6} more</li>" if len(reasons) > 6 else "") + "</ul>"
           if reasons else "")
        + "<table><tr><th>level</th><th>clauses</th><th>pass</th><th>fail</th>"
        "<th>xfail</th><th>not run</th><th>unsupported</th><th>pass rate</th></tr>"
        + "".join(rows) + "</table>"
        + '<details><summary>run</summary><dl class="meta">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta)
        + "</dl></details></div>"
    )


def _filters(docs: list[Document]) -> str:
    levels = [lv for lv in LEVELS if any(lv in d["counts"] for d in docs)]
    boxes_l = "".join(f'<label><input type="checkbox" name="level" value="{_e(lv)}" checked> '
                      f"{_e(lv)}</label>" for lv in levels)
    boxes_o = "".join(f'<label class="o-{o}"><input type="checkbox" name="outcome" '
                      f'value="{o}" checked> {o}</label>' for o in OUTCOMES)
    return (f'<form id="filters" hidden><fieldset><legend>Level</legend>{boxes_l}</fieldset>'
            f"<fieldset><legend>Outcome</legend>{boxes_o}</fieldset>"
            '<span id="shown" class="muted"></span></form>')


def _matrix(docs: list[Document]) -> str:
    by_doc = [{c["id"]: c for c in d["clauses"]} for d in docs]
    head = "".join(f'<th scope="col"><a href="#driver-{i}">{_e(report_data.label(d))}</a></th>'
                   for i, d in enumerate(docs))
    out = ['<table class="matrix" id="matrix"><thead><tr><th scope="col">clause</th>'
           f'<th scope="col">level</th>{head}</tr></thead>']
    for area, clauses in report_data.matrix_rows(docs):
        out.append(f'<tbody data-area="{_e(area)}"><tr class="area">'
                   f'<th colspan="{2 + len(docs)}">{_e(area)}</th></tr>')
        for clause in clauses:
            cells, outcomes = [], []
            for column, lookup in enumerate(by_doc):
                entry = lookup.get(clause["id"])
                if entry is None:
                    cells.append('<td class="cell">&ndash;</td>')
                    continue
                outcome = entry["outcome"]
                outcomes.append(outcome)
                cells.append(f'<td class="cell o-{outcome}"><a href="#'
                             f'{_e(detail_id(column, clause["id"]))}">{outcome}</a></td>')
            out.append(
                f'<tr class="clause" data-level="{_e(clause["level"])}" '
                f'data-outcomes="{_e(" ".join(sorted(set(outcomes))))}">'
                f'<td><code title="{_e(clause.get("text", ""))}">{_e(clause["id"])}</code></td>'
                f'<td class="lv">{_e(clause["level"])}</td>{"".join(cells)}</tr>')
        out.append("</tbody>")
    out.append("</table>")
    return "\n".join(out)


def _delivery(counts: dict[str, int] | None) -> str:
    if not counts:
        return ""
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _details(column: int, doc: Document) -> str:
    out = [f"<h3>{_e(report_data.label(doc))}</h3>"]
    for clause in doc["clauses"]:
        outcome = clause["outcome"]
        scen_rows = []
        tracebacks = []
        for s in report_data.scenario_lines(clause):
            seed = "" if s.get("hypothesis_seed") is None else s["hypothesis_seed"]
            runs = f" &times;{s['runs']}" if s.get("runs") else ""
            scen_rows.append(
                f'<tr><td><code>{_e(s["nodeid"])}</code></td>'
                f'<td class="o-{_e(s["outcome"])}">{_e(s["outcome"])}{runs}</td>'
                f'<td>{s["duration"]:.2f}s</td><td>{_e(s["message"])}</td>'
                f"<td>{_e(_delivery(s.get('delivery')))}</td><td>{_e(seed)}</td></tr>")
            if s.get("leaked_threads"):
                scen_rows.append(f'<tr><td colspan="6">leaked threads: '
                                 f'{_e(", ".join(s["leaked_threads"]))}</td></tr>')
            if s.get("detail"):
                opened = " open" if s["outcome"] in ("fail", "error") else ""
                tracebacks.append(f"<details{opened}><summary>{_e(s['nodeid'])}</summary>"
                                  f'<pre class="tb">{_e(s["detail"])}</pre></details>')
        table = ('<table class="scen"><tr><th>scenario</th><th>outcome</th><th>duration</th>'
                 "<th>message</th><th>delivery</th><th>seed</th></tr>"
                 + "".join(scen_rows) + "</table>") if scen_rows else \
            '<p class="muted">No scenario checks this clause.</p>'
        feature = f", feature {_e(clause['feature'])}" if clause.get("feature") else ""
        out.append(
            f'<article class="detail o-{_e(outcome)}" id="{_e(detail_id(column, clause["id"]))}">'
            f'<h4><code>{_e(clause["id"])}</code>: {_e(outcome)} '
            f'<span class="lv">{_e(clause["level"])}{feature}</span></h4>'
            f"<p>{_e(clause.get('text', ''))}</p>"
            f'<p class="muted">{_e(clause.get("method", ""))} ({_e(clause.get("source", ""))})'
            f"</p>{table}{''.join(tracebacks)}</article>")
    return "\n".join(out)


def selfcheck(dom: str) -> dict[str, Any] | None:
    """The page's self-check record, read from a browser's dump of the DOM."""
    start = dom.find('id="dc-selfcheck"')
    if start < 0:
        return None
    start = dom.find(">", start) + 1
    end = dom.find("</pre>", start)
    text = html.unescape(dom[start:end]).strip()
    return json.loads(text) if text else None
