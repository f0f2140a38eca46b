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

The markup lives in Jinja2 templates under ``templates/`` (``page.html.j2``
and the macros it imports, the inline CSS and scripts beside them), so that
the page can be read and restyled without reading Python.  This module only
prepares the data: :func:`view_model` turns the documents into plain frozen
dataclasses of display-ready values, and :func:`render_html` hands them to
the template.  The template is autoescaped and strict (an attribute it names
that the view model lacks is an error, not an empty string), and it holds no
list of outcomes or levels: those come from :data:`driver_conformance.report.OUTCOMES`,
:data:`driver_conformance.catalog.LEVELS` and the documents themselves, so an
outcome added to the kit (or one from a newer kit's report) shows up in the
filters and the cards without touching the markup, in a neutral colour until
:data:`OUTCOME_COLOURS` gives it one.

The page records its own script errors, CSP violations and resource loads
in a hidden ``#dc-selfcheck`` element; the kit's tests read it from a
headless browser to prove the page is self-contained and error-free.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup

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
    "not-applicable": "#e3ecf5",
    "not-run": "#fff3a8",
}
#: The colour of an outcome :data:`OUTCOME_COLOURS` does not know (one added to
#: :data:`~driver_conformance.report.OUTCOMES` since, or one in a newer kit's
#: report): visibly a cell, but claiming neither success nor failure.
NEUTRAL_COLOUR = "#eeeeee"
#: The CSS class of such an outcome.  Only the keys of :data:`OUTCOME_COLOURS`
#: become class names of their own, so no string from a document ever reaches
#: the page's stylesheet or its class attributes.
NEUTRAL_CLASS = "o-neutral"
VERDICT_COLOURS = {"compliant": "#2e7d32", "non-compliant": "#c62828", "unknown": "#616161"}
NEUTRAL_VERDICT_COLOUR = "#616161"

#: The count columns of a driver's card, each adding up one or more outcomes:
#: a card answers "how many failed", the details tell a failure from an error.
#: An outcome none of these names gets a column of its own after them.
CARD_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pass", ("pass",)),
    ("fail", ("fail", "error")),
    ("xfail", ("xfail", "xpass")),
    ("not run", ("not-run",)),
    ("unsupported", ("unsupported",)),
    ("not applicable", ("not-applicable",)),
)
#: Scenario outcomes whose traceback is shown unfolded: the ones a reader came for.
UNFOLDED = ("fail", "error")
#: Reasons listed on a card before the rest are summed up as "... N more".
CARD_REASONS = 6


# -- the view model ----------------------------------------------------------------------
# Every value is display-ready (formatted, defaulted) and unescaped: escaping
# is the template's, so that nothing can be escaped twice or not at all.
@dataclass(frozen=True, slots=True)
class OutcomeStyle:
    """A CSS class of the page and its colour."""

    css: str
    colour: str


@dataclass(frozen=True, slots=True)
class Choice:
    """One checkbox of the outcome filter, in its outcome's colour."""

    value: str
    css: str


@dataclass(frozen=True, slots=True)
class CountRow:
    """A card's counts for one level: clauses, one number per count column, pass rate."""

    level: str
    clauses: int
    counts: tuple[int, ...]
    pass_rate: str | None


@dataclass(frozen=True, slots=True)
class Card:
    verdict_colour: str
    headline: str
    reasons: tuple[str, ...]
    more_reasons: int
    rows: tuple[CountRow, ...]
    meta: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Cell:
    """A matrix cell: one driver's outcome for one clause, linking to its detail."""

    outcome: str
    css: str
    href: str


@dataclass(frozen=True, slots=True)
class MatrixRow:
    id: str
    level: str
    text: str
    outcomes: str
    cells: tuple[Cell | None, ...]


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    rows: tuple[MatrixRow, ...]


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    nodeid: str
    outcome: str
    css: str
    runs: int | None
    duration: str
    message: str
    delivery: str
    seed: str
    leaked_threads: str | None


@dataclass(frozen=True, slots=True)
class Traceback:
    nodeid: str
    text: str
    unfolded: bool


@dataclass(frozen=True, slots=True)
class Detail:
    """The detail of one clause for one driver, the target of a matrix cell."""

    anchor: str
    clause_id: str
    outcome: str
    css: str
    level: str
    feature: str | None
    text: str
    method: str
    source: str
    scenarios: tuple[ScenarioRow, ...]
    tracebacks: tuple[Traceback, ...]


@dataclass(frozen=True, slots=True)
class Column:
    """One driver: a card, a matrix column and a block of details."""

    anchor: str
    label: str
    finished_at: str
    card: Card
    details: tuple[Detail, ...]


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    csp: str
    outcome_styles: tuple[OutcomeStyle, ...]
    count_headings: tuple[str, ...]
    columns: tuple[Column, ...]
    panel: Markup
    levels: tuple[str, ...]
    outcomes: tuple[Choice, ...]
    areas: tuple[Area, ...]


def detail_id(column: int, clause_id: str) -> str:
    """The HTML id of the detail of ``clause_id`` for the driver in ``column``."""
    return f"d{column}-{clause_id}"


def outcome_class(outcome: str) -> str:
    """The CSS class that colours ``outcome``: its own if it has a colour, else the neutral one."""
    return f"o-{outcome}" if outcome in OUTCOME_COLOURS else NEUTRAL_CLASS


def _ordered(known: Iterable[str], found: Iterable[str]) -> list[str]:
    """``known`` in its order, then whatever else was ``found``, in first-seen order.

    The page lists what the kit knows and what the documents hold: a level or
    outcome missing from a filter would hide its rows for good.
    """
    return list(dict.fromkeys([*known, *found]))


def _page_outcomes(docs: Sequence[Document]) -> list[str]:
    return _ordered(OUTCOMES, (
        o for d in docs for c in d["clauses"]
        for o in (c["outcome"], *(s["outcome"] for s in c.get("scenarios", [])))))


def _count_columns(outcomes: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    grouped = {o for _, members in CARD_COLUMNS for o in members}
    extra = [(o.replace("-", " "), (o,)) for o in outcomes if o not in grouped]
    return [*CARD_COLUMNS, *extra]


def _card(doc: Document, columns: Sequence[tuple[str, tuple[str, ...]]]) -> Card:
    run = doc["run"]
    rows = []
    for level, entry in doc["counts"].items():
        o = entry["outcomes"]
        rate = entry["pass_rate"]
        rows.append(CountRow(
            level=str(level), clauses=entry["clauses"],
            counts=tuple(sum(o.get(m, 0) for m in members) for _, members in columns),
            pass_rate=None if rate is None else f"{rate:.0%}"))
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
    configuration = run.get("configuration") or {}
    if configuration.get("files"):
        meta.append(("configuration files", ", ".join(configuration["files"])))
    judged = report_data.configuration_of(doc)
    if judged:
        meta.append(("configuration judged", ", ".join(f"{k}={v}" for k, v in judged.items())))
    overridden = [o for o in configuration.get("overrides", []) if o.get("over_user_value")]
    if overridden:
        meta.append(("overridden by the kit", "; ".join(
            f"[{o['group']}] {o['option']}={o['value']} ({o['reason']})" for o in overridden)))
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
    return Card(
        verdict_colour=VERDICT_COLOURS.get(doc["verdict"], NEUTRAL_VERDICT_COLOUR),
        headline=report_data.headline(doc),
        reasons=tuple(str(r) for r in reasons[:CARD_REASONS]),
        more_reasons=max(0, len(reasons) - CARD_REASONS),
        rows=tuple(rows),
        meta=tuple((k, str(v)) for k, v in meta),
    )


def _scenario(s: dict[str, Any]) -> ScenarioRow:
    delivery = s.get("delivery")
    return ScenarioRow(
        nodeid=str(s["nodeid"]), outcome=str(s["outcome"]), css=outcome_class(s["outcome"]),
        runs=s.get("runs") or None,
        duration=f"{s['duration']:.2f}s",
        message=str(s["message"]),
        delivery=", ".join(f"{k} {v}" for k, v in delivery.items()) if delivery else "",
        seed="" if s.get("hypothesis_seed") is None else str(s["hypothesis_seed"]),
        leaked_threads=", ".join(s["leaked_threads"]) if s.get("leaked_threads") else None,
    )


def _detail(column: int, clause: dict[str, Any]) -> Detail:
    lines = list(report_data.scenario_lines(clause))
    return Detail(
        anchor=detail_id(column, clause["id"]), clause_id=clause["id"],
        outcome=clause["outcome"], css=outcome_class(clause["outcome"]),
        level=clause["level"], feature=clause.get("feature") or None,
        text=clause.get("text", ""), method=clause.get("method", ""),
        source=clause.get("source", ""),
        scenarios=tuple(_scenario(s) for s in lines),
        tracebacks=tuple(Traceback(nodeid=str(s["nodeid"]), text=str(s["detail"]),
                                   unfolded=s["outcome"] in UNFOLDED)
                         for s in lines if s.get("detail")),
    )


def _areas(docs: Sequence[Document]) -> list[Area]:
    by_doc = [{c["id"]: c for c in d["clauses"]} for d in docs]
    areas = []
    for area, clauses in report_data.matrix_rows(list(docs)):
        rows = []
        for clause in clauses:
            cells: list[Cell | None] = []
            for column, lookup in enumerate(by_doc):
                entry = lookup.get(clause["id"])
                cells.append(None if entry is None else Cell(
                    outcome=entry["outcome"], css=outcome_class(entry["outcome"]),
                    href=f"#{detail_id(column, clause['id'])}"))
            outcomes = sorted({c.outcome for c in cells if c is not None})
            rows.append(MatrixRow(id=clause["id"], level=clause["level"],
                                  text=clause.get("text", ""), outcomes=" ".join(outcomes),
                                  cells=tuple(cells)))
        areas.append(Area(name=area, rows=tuple(rows)))
    return areas


def view_model(docs: Sequence[Document], *, title: str, panel: str = "") -> Page:
    """What the template shows, from ``docs`` (one per driver) and a rendered bench ``panel``.

    ``panel`` is HTML that :mod:`driver_conformance.bench.render` built and
    escaped itself; it is the one value the template does not escape.
    """
    outcomes = _page_outcomes(docs)
    count_columns = _count_columns(outcomes)
    levels = _ordered((lv for lv in LEVELS if any(lv in d["counts"] for d in docs)),
                      (str(lv) for d in docs for lv in d["counts"]))
    return Page(
        title=title,
        csp=CSP,
        outcome_styles=(*(OutcomeStyle(f"o-{o}", c) for o, c in OUTCOME_COLOURS.items()),
                        OutcomeStyle(NEUTRAL_CLASS, NEUTRAL_COLOUR)),
        count_headings=tuple(heading for heading, _ in count_columns),
        columns=tuple(Column(anchor=f"driver-{i}", label=title_,
                             finished_at=str(doc["run"]["finished_at"]),
                             card=_card(doc, count_columns),
                             details=tuple(_detail(i, c) for c in doc["clauses"]))
                      for i, (doc, title_) in enumerate(
                          zip(docs, report_data.labels(list(docs)), strict=True))),
        panel=Markup(panel),
        levels=tuple(levels),
        outcomes=tuple(Choice(o, outcome_class(o)) for o in outcomes),
        areas=tuple(_areas(docs)),
    )


# -- rendering ---------------------------------------------------------------------------
@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the page's templates (made once; templates are cached).

    ``PackageLoader`` reads the templates through the package's resources, so
    an installed (non-editable, even zipped) kit finds them as a checkout does.
    ``StrictUndefined`` turns a misspelt field into an error at render time
    rather than a silently blank cell; autoescaping covers every value.
    """
    return jinja2.Environment(
        loader=jinja2.PackageLoader("driver_conformance.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(docs: list[Document], *, title: str = "oslo.messaging driver conformance",
                bench: list[dict[str, Any]] | None = None) -> str:
    """The HTML page for ``docs`` (already merged, one per driver: the matrix columns).

    ``bench`` documents (``driver-conformance bench --json``), when given, add
    a performance panel after the driver cards.
    """
    from driver_conformance.bench.render import render_panel

    page = view_model(docs, title=title, panel=render_panel(bench or []))
    return environment().get_template("page.html.j2").render(page=page)


def selfcheck(dom: str) -> dict[str, Any] | None:
    """The page's self-check record, read from a browser's dump of the DOM."""
    start = dom.find('id="dc-selfcheck"')
    if start < 0:
        return None
    start = dom.find(">", start) + 1
    end = dom.find("</pre>", start)
    text = html.unescape(dom[start:end]).strip()
    return json.loads(text) if text else None
