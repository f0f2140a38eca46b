"""Run reports as data: verdict rules, merging, redaction, renderers and the CLI.

Documents here are built from the real catalog with made-up outcomes, so
that every rule (UNSUPPORTED is not a pass, a clause that never ran makes
the verdict unknown, the worst outcome wins a merge) is checked directly and
quickly; ``test_report_run.py`` checks the same on real runs.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import certify as certify_mod
from driver_conformance import exitcodes
from driver_conformance import report as report_mod
from driver_conformance.catalog import LEVELS, load_catalog
from driver_conformance.report import badge, document, merge, render_html, render_markdown
from driver_conformance.report import cli as report_cli
from driver_conformance.report import data as report_data
from driver_conformance.report.redact import Redactor, passwords_in
from driver_conformance.results import DESELECTED, ClauseResult, ScenarioResult

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the kit's test extra")

SCHEMA_PATH = Path(report_mod.__file__).parent.parent / "report_schema.json"
CATALOG = load_catalog()
MUST = next(c.id for c in CATALOG if c.level == "MUST")
OPTIONAL = next(c.id for c in CATALOG if c.level == "OPTIONAL")
SHOULD = next(c.id for c in CATALOG if c.level == "SHOULD")


def make_doc(outcomes: dict[str, str] | None = None, *, default: str = "pass",
             adapter: str = "mine", version: str = "1.0", certify: bool = False,
             url: str = "mine://user:hunter22@host/", message: str = "") -> dict[str, Any]:
    """A report of ``adapter`` where each clause has one scenario with the given outcome."""
    outcomes = outcomes or {}
    results = []
    for clause in CATALOG:
        outcome = outcomes.get(clause.id, default)
        said = message if outcome != "pass" else ""
        rs = [] if outcome == "none" else [ScenarioResult(
            f"test_{clause.id}", [clause.id], outcome, 0.01, said,
            judgments={clause.id: [outcome, said]})]
        results.append(ClauseResult.of(clause, rs))
    clauses = document.clause_entries(results)
    run = {
        **document.environment(),
        "adapter": adapter, "adapter_package": {"name": None, "version": None},
        "driver": adapter, "driver_package": {"name": adapter, "version": version},
        "broker_version": None, "transport_url": url, "time_scale": 1.0,
        "hypothesis_seed": None, "capabilities": None, "facts": {},
        "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00",
        "duration": 60.0, "workers": 1,
        "selection": {"clause_patterns": [], "keyword": None, "markexpr": None,
                      "deselected": 0},
        "error": None, "hung_calls": 0, "expectations": None, "observed": {},
        "exit_status": None,
    }
    problems = certify_mod.problems(clauses) if certify else []
    return document.build_document(clauses=clauses, run=run, certify=certify,
                                   problems=problems, secret_urls=[url])


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# -- verdict rules -----------------------------------------------------------------------
@pytest.mark.parametrize(("outcomes", "default", "expected"), [
    ({}, "pass", "compliant"),
    ({OPTIONAL: "unsupported"}, "pass", "compliant"),
    ({SHOULD: "fail"}, "pass", "compliant"),
    ({MUST: "unsupported"}, "pass", "unknown"),
    ({MUST: "not-run"}, "pass", "unknown"),
    ({MUST: "none"}, "pass", "unknown"),
    ({MUST: "fail"}, "pass", "non-compliant"),
    ({MUST: "error"}, "pass", "non-compliant"),
    ({MUST: "xfail"}, "pass", "non-compliant"),
    ({MUST: "xpass"}, "pass", "non-compliant"),
    ({MUST: "fail"}, "not-run", "non-compliant"),
    ({}, "none", "unknown"),
])
def test_verdict_rules(outcomes: dict[str, str], default: str, expected: str) -> None:
    doc = make_doc(outcomes, default=default)
    assert doc["verdict"] == expected
    # The renderers' verdict (from the JSON) is the plugin's (from the results).
    assert report_data.verdict_of(doc["clauses"]) == expected
    assert bool(doc["verdict_reasons"]) == (expected != "compliant")


def test_unsupported_is_counted_apart_and_never_in_the_pass_rate() -> None:
    doc = make_doc({OPTIONAL: "unsupported"})
    optional = doc["counts"]["OPTIONAL"]
    assert optional["outcomes"]["unsupported"] == 1
    assert optional["outcomes"]["pass"] == optional["clauses"] - 1
    assert optional["pass_rate"] == 1.0
    doc = make_doc({MUST: "not-run"})
    assert doc["counts"]["MUST"]["pass_rate"] < 1.0


def test_exit_codes_are_distinct_and_keep_pytests_meaning() -> None:
    codes = {exitcodes.for_verdict(v) for v in report_mod.VERDICTS}
    assert codes == {0, 1, 7}
    for code in pytest.ExitCode:
        assert exitcodes.ExitCode(int(code)).name.split("_")[0] in code.name or int(code) in (
            0, 1, 5), (code, exitcodes.ExitCode(int(code)))
    assert exitcodes.ExitCode.UNKNOWN not in set(map(int, pytest.ExitCode)) | {6}
    assert exitcodes.ExitCode.BACKEND_UNAVAILABLE not in set(map(int, pytest.ExitCode)) | {6}
    assert set(exitcodes.MEANINGS) == set(exitcodes.ExitCode)


# -- certification -----------------------------------------------------------------------
def test_certification_problems_are_per_required_clause() -> None:
    assert make_doc({OPTIONAL: "unsupported"}, certify=True)["certification"] == {
        "requested": True, "refused": False, "certified": True, "reasons": []}
    cert = make_doc({MUST: "xfail", SHOULD: "not-run"}, certify=True)["certification"]
    assert cert["refused"] and not cert["certified"]
    assert cert["reasons"] == [f"MUST clause {MUST} expected to fail"]
    cert = make_doc({MUST: "unsupported"}, certify=True)["certification"]
    assert cert["reasons"] == [f"MUST clause {MUST} skipped as unsupported"]
    assert not make_doc({MUST: "xfail"})["certification"]["refused"]  # not asked


def test_a_scenario_that_does_not_apply_does_not_refuse_certification() -> None:
    doc = make_doc(certify=True)
    target = next(c for c in doc["clauses"] if c["id"] == MUST)
    target["scenarios"].append(unreported("test_other", DESELECTED))
    target["scenarios"].append({**target["scenarios"][0], "nodeid": "t2", "outcome": "not-run"})
    assert certify_mod.problems(doc["clauses"]) == []
    target["outcome"] = "not-run"
    target["scenarios"] = [unreported("t", DESELECTED)]
    assert certify_mod.problems(doc["clauses"]) == [f"MUST clause {MUST} deselected"]


def unreported(nodeid: str, why: str) -> dict[str, Any]:
    """A scenario entry of a scenario that never reported, as a run's report has it."""
    return document.scenario_entry(
        ScenarioResult(nodeid, [MUST], "not-run", message=why, reported=False), MUST)


# -- redaction ---------------------------------------------------------------------------
def test_passwords_in_urls() -> None:
    assert passwords_in("rabbit://u:p4ss@h1:5672,v:w0rd@h2/vh") == {"p4ss", "w0rd"}
    assert passwords_in("rabbit://u:p%40ss@h/") == {"p%40ss", "p@ss"}
    assert "p@ss" in passwords_in("rabbit://u:p@ss@h/")
    assert passwords_in("rabbit://h/") == set()


def test_redactor_masks_urls_and_literal_passwords_everywhere() -> None:
    red = Redactor(["rabbit://u:p@ssw0rd@h/", "amqp://x:ab@h/"])
    data = {"msg": "login failed (password p@ssw0rd) for rabbit://u:p@ssw0rd@h/",
            "list": ["amqp://x:ab@h/ cab"], "p@ssw0rd": 1}
    out = json.dumps(red.data(data))
    assert "ssw0rd" not in out
    assert "rabbit://u:***@h/" in out
    # Too short to replace everywhere: masked inside URLs, left alone elsewhere.
    assert "amqp://x:***@h/ cab" in out


def test_built_documents_hold_no_password() -> None:
    doc = make_doc({MUST: "fail"}, url="mine://user:hunter22@host/",
                   message="AuthError: bad password hunter22 for mine://user:hunter22@host/")
    text = json.dumps(doc)
    assert "hunter22" not in text and "mine://user:***@host/" in text


# -- merging -----------------------------------------------------------------------------
def test_merge_is_per_clause_worst_outcome_and_pass_only_if_ran() -> None:
    a = make_doc({MUST: "fail", OPTIONAL: "not-run", SHOULD: "unsupported"}, default="not-run")
    b = make_doc({MUST: "pass", OPTIONAL: "pass", SHOULD: "not-run"}, default="pass")
    [merged] = merge.merge_all([a, b])
    outcome = {c["id"]: c["outcome"] for c in merged["clauses"]}
    assert outcome[MUST] == "fail"
    assert outcome[OPTIONAL] == "pass"
    assert outcome[SHOULD] == "unsupported"
    assert all(len(c["scenarios"]) == 1 for c in merged["clauses"])
    assert merged["verdict"] == "non-compliant"
    assert len(merged["run"]["sources"]) == 2
    [merged] = merge.merge_all([make_doc({MUST: "none"}), make_doc({MUST: "none"})])
    assert merged["verdict"] == "unknown"


def test_merge_keeps_different_drivers_apart() -> None:
    docs = [make_doc(adapter="one"), make_doc(adapter="two"), make_doc(adapter="one"),
            make_doc(adapter="one", version="2.0")]
    merged = merge.merge_all(docs)
    assert [report_data.label(d) for d in merged] == ["one 1.0", "two 1.0", "one 2.0"]
    assert len(merged[0]["run"]["sources"]) == 2
    assert "sources" not in merged[1]["run"]


def test_merged_documents_are_schema_valid(validator: Any) -> None:
    docs = [make_doc({MUST: "fail"}, certify=True), make_doc(certify=True),
            make_doc(adapter="other")]
    for doc in docs + merge.merge_all(docs):
        assert not list(validator.iter_errors(doc))


# -- the schema --------------------------------------------------------------------------
def test_schema_rejects_what_a_report_must_not_be(validator: Any) -> None:
    doc = make_doc()
    assert not list(validator.iter_errors(doc))
    bad = json.loads(json.dumps(doc))
    bad["run"]["transport_url"] = "rabbit://u:plain@h/"
    assert list(validator.iter_errors(bad)), "an unmasked password must not validate"
    bad = json.loads(json.dumps(doc))
    bad["clauses"][0]["outcome"] = "skipped"
    assert list(validator.iter_errors(bad))
    bad = json.loads(json.dumps(doc))
    del bad["clauses"][0]["level"]
    assert list(validator.iter_errors(bad))


# -- renderers ---------------------------------------------------------------------------
HOSTILE = "<script>alert(1)</script> | `x` \n next line"


def test_markdown_summary() -> None:
    docs = [make_doc(), make_doc({MUST: "fail"}, adapter="bad", message=HOSTILE)]
    md = render_markdown.render_markdown(docs)
    assert md.startswith("## oslo.messaging driver conformance")
    assert "| mine 1.0 | ✅ **COMPLIANT** |" in md
    assert "| bad 1.0 | ❌ **NON-COMPLIANT** |" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    failing = next(line for line in md.splitlines() if line.startswith(f"| `{MUST}` |"))
    assert failing.count(" | ") == 4, "a message broke the table row"
    assert md.count(f"`{MUST}`") == 2  # the failure table and the matrix


def test_html_page_is_self_contained_and_escaped() -> None:
    docs = [make_doc(), make_doc({MUST: "fail"}, adapter="bad", message=HOSTILE)]
    page = render_html.render_html(docs)
    assert page == render_html.render_html(docs), "not a pure function"
    assert 'http-equiv="Content-Security-Policy"' in page
    assert "default-src 'none'" in html.unescape(page)
    assert "<script>alert(1)" not in page
    for attr in ("src=", "href=\"http", "url(http", "@import"):
        assert attr not in page
    for column in (0, 1):
        for clause in CATALOG:
            anchor = render_html.detail_id(column, clause.id)
            assert f'href="#{anchor}"' in page and f'id="{anchor}"' in page


def test_html_autoescapes_what_a_report_says() -> None:
    """A message, a clause sentence (an attribute too) and a title cannot inject markup."""
    doc = make_doc({MUST: "fail"}, adapter="bad", message=HOSTILE)
    entry = next(c for c in doc["clauses"] if c["id"] == MUST)
    entry["text"] = '"><script>alert(2)</script>'
    page = render_html.render_html([doc], title="<script>alert(3)</script>")
    assert page.count("<script>") == 2, "only the page's own two inline scripts"
    for n in (1, 2, 3):
        assert f"<script>alert({n})" not in page
        assert f"&lt;script&gt;alert({n})&lt;/script&gt;" in page
    title = re.search(f'<code title="([^"]*)">{re.escape(MUST)}</code>', page)
    assert title and html.unescape(title.group(1)) == entry["text"]
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt; | `x` \n next line</td>" in page


def test_an_unknown_outcome_renders_neutral(monkeypatch: pytest.MonkeyPatch) -> None:
    """An outcome with no colour (new to the kit, or from a newer kit) is shown, not an error.

    ``newly-added`` stands for one added to OUTCOMES without a colour;
    ``from-the-future`` for one that only a document holds.  Both get the
    neutral style, a filter checkbox (a row without one would be hidden for
    good) and a count column on the card; neither becomes a CSS class.
    """
    monkeypatch.setattr(render_html, "OUTCOMES", (*report_mod.OUTCOMES, "newly-added"))
    doc = make_doc({MUST: "fail"})
    entry = next(c for c in doc["clauses"] if c["id"] == MUST)
    entry["outcome"] = entry["scenarios"][0]["outcome"] = "from-the-future"
    doc["counts"] = report_data.level_counts(doc["clauses"])
    page = render_html.render_html([doc])
    neutral = render_html.NEUTRAL_CLASS
    assert f".{neutral} {{ background: {render_html.NEUTRAL_COLOUR}; }}" in page
    assert f'<td class="cell {neutral}"><a href="#{render_html.detail_id(0, MUST)}">' \
           "from-the-future</a></td>" in page
    assert f'<article class="detail {neutral}" id="{render_html.detail_id(0, MUST)}">' in page
    assert f'<td class="{neutral}">from-the-future</td>' in page
    for outcome in ("newly-added", "from-the-future"):
        assert f'<label class="{neutral}"><input type="checkbox" name="outcome" ' \
               f'value="{outcome}" checked> {outcome}</label>' in page
        assert f"o-{outcome}" not in page
    headings = re.search(r"<tr><th>level</th>(.*?)</tr>", page)
    assert headings and headings.group(1).endswith(
        "<th>not applicable</th><th>newly added</th><th>from the future</th>"
        "<th>pass rate</th>")
    assert 'data-outcomes="from-the-future"' in page
    assert '<label class="o-pass"><input type="checkbox" name="outcome" value="pass" checked>' \
           in page, "known outcomes keep their own colour"


def test_html_filters_list_the_levels_the_documents_have() -> None:
    """Levels come from the catalog's order, then any other a document holds."""
    doc = make_doc()
    entry = next(c for c in doc["clauses"] if c["id"] == SHOULD)
    entry["level"] = "RECOMMENDED"
    doc["counts"] = report_data.level_counts(doc["clauses"])
    page = render_html.render_html([doc])
    levels = re.findall(r'name="level" value="([^"]+)"', page)
    assert levels == [*(lv for lv in LEVELS if lv in doc["counts"]), "RECOMMENDED"]
    assert '<tr class="clause" data-level="RECOMMENDED" data-outcomes="pass">' \
           '<td><code title="' in page


def test_badge_svg_and_shields() -> None:
    for outcomes, message, colour in (({}, "compliant", "brightgreen"),
                                      ({MUST: "fail"}, "non-compliant", "red"),
                                      ({MUST: "not-run"}, "unknown", "lightgrey")):
        doc = make_doc(outcomes)
        svg = ET.fromstring(badge.render_badge(doc))
        texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
        assert message in texts
        assert badge.shields_endpoint(doc) == {"schemaVersion": 1,
                                               "label": badge.DEFAULT_LABEL,
                                               "message": message, "color": colour}
    assert badge.badge_message(make_doc(certify=True)) == "certified compliant"


# -- the command -------------------------------------------------------------------------
def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), "utf-8")
    return path


def test_cli_renders_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path, "a.json", make_doc())
    b = write(tmp_path, "b.json", make_doc({MUST: "fail"}, adapter="bad"))
    assert report_cli.main([str(a), str(b)]) == 0
    assert "| bad 1.0 |" in capsys.readouterr().out  # Markdown on stdout by default
    out = tmp_path / "out"
    assert report_cli.main([str(a), "--html", str(out / "r.html"), "--markdown",
                            str(out / "r.md"), "--badge", str(out / "b.svg"), "--shields",
                            str(out / "s.json"), "--json", str(out / "m.json")]) == 0
    assert {p.name for p in out.iterdir()} == {"r.html", "r.md", "b.svg", "s.json", "m.json"}


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", make_doc())
    bad = write(tmp_path, "bad.json", make_doc({MUST: "fail"}, adapter="bad"))
    partial = write(tmp_path, "partial.json", make_doc({MUST: "not-run"}, adapter="p"))
    quiet = ["--markdown", str(tmp_path / "x.md"), "--check"]
    assert report_cli.main([str(good), *quiet]) == 0
    assert report_cli.main([str(good), str(bad), *quiet]) == 1
    assert report_cli.main([str(good), str(partial), *quiet]) == 7


def test_cli_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write(tmp_path, "other.json", {"hello": 1})
    future = write(tmp_path, "future.json", {**make_doc(), "schema_version": "2.0"})
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    for path in (other, future, garbage, tmp_path / "missing.json"):
        assert report_cli.main([str(path)]) == report_cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    a = write(tmp_path, "a.json", make_doc())
    b = write(tmp_path, "b.json", make_doc(adapter="b"))
    assert report_cli.main([str(a), str(b), "--badge", str(tmp_path / "x.svg")]) == 4
    assert report_cli.main([]) == 4


def test_add_parser_plugs_into_the_driver_conformance_command(tmp_path: Path) -> None:
    """What cli.build_parser() does with it: one sub-command among the others."""
    parser = argparse.ArgumentParser(prog="driver-conformance")
    sub = parser.add_subparsers(dest="command", required=True)
    report_cli.add_parser(sub)
    path = write(tmp_path, "a.json", make_doc())
    args = parser.parse_args(["report", str(path), "--markdown", str(tmp_path / "a.md")])
    assert args.func(args) == 0 and (tmp_path / "a.md").exists()
