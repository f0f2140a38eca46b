"""Expectations files: parsing and validation, writing from a report, and the pytest marking.

The pytest side is exercised with pytester on small test files that carry
clause markers, with the plugin registered the way the kit's plugin does it
(:func:`driver_conformance.expectations_plugin.register`), so these tests
need no driver and no broker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import expectations as exp
from driver_conformance.catalog import load_catalog

CATALOG = load_catalog().ids()
A, B = "poll.stop.unblocks", "send.retry.no-duplicates"
C = "listen.failover.restores-subscriptions"


def entry(clause: str, category: str = "bug", link: str = "https://bugs.example/1",
          reason: str = "because", scenarios: list[str] | None = None) -> str:
    lines = ["[[deviation]]", f'clause = "{clause}"', f'category = "{category}"',
             f'reason = "{reason}"']
    if link:
        lines.append(f'link = "{link}"')
    if scenarios is not None:
        lines.append("scenarios = " + json.dumps(scenarios))
    return "\n".join(lines) + "\n"


# -- parsing ------------------------------------------------------------------------------


def test_parse_valid_file() -> None:
    text = 'driver = "rabbit"\n' + entry(A, scenarios=["listeners::test_x"]) + entry(
        B, category="wont-fix", link="") + entry(C, category="unsupported", link="")
    e = exp.parse(text, known_clauses=CATALOG)
    assert e.driver == "rabbit"
    assert set(e.deviations) == {A, B, C}
    assert e.deviations[A].covers("listeners::test_x")
    assert not e.deviations[A].covers("listeners::test_y")
    assert e.deviations[B].covers("anything::at_all"), "no scenarios: the whole clause"


@pytest.mark.parametrize(("text", "complaint"), [
    (entry("no.such.clause"), "unknown clause ID 'no.such.clause'"),
    (entry(A, category="flaky"), "category must be one of"),
    (entry(A, link=""), "a bug needs a 'link'"),
    (entry(A, reason=""), "missing 'reason'"),
    (entry(A) + entry(A), "clause listed twice"),
    (entry(A) + 'colour = "red"\n', "unknown key 'colour'"),
    ('drivr = "x"\n', "unknown top-level key 'drivr'"),
    ("[[deviation]]\ncategory = 'bug'\n", "missing 'clause'"),
    ("this is = = not toml", "not valid TOML"),
])
def test_parse_rejects(text: str, complaint: str) -> None:
    with pytest.raises(exp.ExpectationsError, match=complaint.replace("(", r"\(")):
        exp.parse(text, known_clauses=CATALOG)


def test_every_problem_reported_at_once() -> None:
    text = entry("nope.one") + entry("nope.two", category="??")
    with pytest.raises(exp.ExpectationsError) as info:
        exp.parse(text, known_clauses=CATALOG)
    message = str(info.value)
    assert "nope.one" in message and "nope.two" in message and "category" in message


def test_dumps_round_trips_awkward_text() -> None:
    original = exp.Expectations(driver="rabbit", oslo_messaging="18.3.1", deviations={
        A: exp.Deviation(A, "bug", 'says "never" \\ returns\nüñí', "https://x/1",
                         ("listeners::test_b[1-x]", "listeners::test_a")),
        C: exp.Deviation(C, "unsupported", "no failover"),
    })
    again = exp.parse(exp.dumps(original), known_clauses=CATALOG)
    assert again.driver == "rabbit" and again.oslo_messaging == "18.3.1"
    assert again.deviations[A].reason == original.deviations[A].reason
    assert again.deviations[A].scenarios == ("listeners::test_a", "listeners::test_b[1-x]")
    assert again.deviations[C] == original.deviations[C]


def test_scenario_key_ignores_where_the_module_lives() -> None:
    assert exp.scenario_key("../../venv/lib/x/scenarios/retry.py::test_a[0-cast]") == \
        "retry::test_a[0-cast]"
    assert exp.scenario_key("retry.py::test_a") == "retry::test_a"


def test_resolve_finds_shipped_files_by_name(tmp_path: Path) -> None:
    own = tmp_path / "mine.toml"
    own.write_text("")
    assert exp.resolve(str(own)) == own
    with pytest.raises(exp.ExpectationsError, match="no shipped expectations"):
        exp.resolve("no-such-driver")
    for shipped in exp.SHIPPED_DIR.glob("*.toml"):
        assert exp.resolve(shipped.stem) == shipped


@pytest.mark.parametrize("path", sorted(exp.SHIPPED_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_files_are_valid(path: Path) -> None:
    e = exp.load(path, known_clauses=CATALOG)
    # Named after its adapter, or after the shipped configuration it judges the
    # adapter under (rabbit-quorum: --driver=rabbit --oslo-config-file=rabbit-quorum).
    configs = Path(exp.SHIPPED_DIR).parent / "configs"
    assert e.driver == path.stem or (
        path.stem.startswith(f"{e.driver}-") and (configs / f"{path.stem}.conf").exists()), (
        "a shipped file is named after its adapter, or after a shipped configuration")


# -- writing from a report ------------------------------------------------------------------


def report(*clauses: tuple[str, list[tuple[str, str, str]]]) -> dict:
    """A minimal report: (clause, [(nodeid, outcome, message)])."""
    out = []
    for cid, scenarios in clauses:
        outcomes = [o for _, o, _ in scenarios]
        out.append({"id": cid, "level": "MUST",
                    "outcome": "fail" if "fail" in outcomes else outcomes[0],
                    "scenarios": [{"nodeid": n, "outcome": o, "message": m}
                                  for n, o, m in scenarios]})
    return {"kind": "driver-conformance-report", "run": {"adapter": "rabbit",
            "oslo_messaging_version": "18.3.1"}, "clauses": out}


def test_from_report_adds_keeps_and_removes() -> None:
    previous = exp.Expectations(driver="rabbit", deviations={
        A: exp.Deviation(A, "bug", "hand-written reason", "https://bugs/1", ("old::x",)),
        C: exp.Deviation(C, "bug", "fixed since", "https://bugs/2"),
    })
    run = report(
        (A, [("s/listeners.py::test_a", "xfail", "DriverHung"),
             ("s/listeners.py::test_b", "pass", "")]),
        (B, [("s/retry.py::test_c[0]", "fail", "AssertionError: duplicated   twice"),
             ("s/retry.py::test_c[1]", "error", "")]),
        (C, [("s/retry.py::test_d", "xpass", "[XPASS(strict)] listed deviation passed")]),
    )
    update = exp.from_report(run, previous)
    got = update.expectations
    assert update.kept == [A] and update.added == [B] and update.removed == [C]
    assert got.deviations[A].reason == "hand-written reason"
    assert got.deviations[A].scenarios == ("listeners::test_a",)
    assert got.deviations[B].link == "TODO" and got.deviations[B].category == "bug"
    assert got.deviations[B].reason == "AssertionError: duplicated twice"
    assert got.deviations[B].scenarios == ("retry::test_c[0]", "retry::test_c[1]")
    assert got.driver == "rabbit" and got.oslo_messaging == "18.3.1"
    exp.parse(exp.dumps(got), known_clauses=CATALOG)  # what it writes loads again


def test_a_scenario_deviates_only_for_the_clauses_it_failed() -> None:
    """The report lists each scenario's judgment under each clause: one of several
    clauses failed is the only deviation the scenario shows."""
    model = "s/model.py::test_model[core]"
    run = report((A, [(model, "not-run", f"not judged: the scenario failed on clause {B}")]),
                 (B, [(model, "fail", "a fanout reached one listener")]),
                 (C, [(model, "not-run", "not judged"), ("s/x.py::test_c", "fail", "boom")]))
    found = exp.deviating_scenarios(run)
    assert sorted(found) == sorted([B, C])
    assert found[B] == [("model::test_model[core]", "a fanout reached one listener")]
    assert found[C] == [("x::test_c", "boom")]


def test_write_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_file = tmp_path / "report.json"
    report_file.write_text(json.dumps(report((B, [("retry.py::test_c", "fail", "boom")]))))
    target = tmp_path / "exp" / "rabbit.toml"
    assert exp.main(["expectations", "write", "--from", str(report_file),
                     "--file", str(target)]) == 0
    written = exp.load(target, known_clauses=CATALOG)
    assert list(written.deviations) == [B]
    text = target.read_text().replace('"boom"', '"duplicates on reconnect"')
    target.write_text(text.replace('"TODO"', '"https://bugs/9"'))
    assert exp.main(["expectations", "write", "--from", str(report_file),
                     "--file", str(target)]) == 0
    again = exp.load(target, known_clauses=CATALOG)
    assert again.deviations[B].reason == "duplicates on reconnect"
    assert again.deviations[B].link == "https://bugs/9"
    assert "1 kept" in capsys.readouterr().out
    assert exp.main(["expectations", "check", str(target)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(entry("no.such.clause"))
    assert exp.main(["expectations", "check", str(bad)]) == 4


def test_write_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({"kind": "something-else"}))
    assert exp.main(["expectations", "write", "--from", str(junk),
                     "--file", str(tmp_path / "x.toml")]) == 4


# -- the pytest plugin ------------------------------------------------------------------------

CONFTEST = """
from driver_conformance import expectations_plugin

def pytest_addoption(parser):
    parser.addoption("--test-expectations")

def pytest_configure(config):
    value = config.getoption("test_expectations")
    if value:
        expectations_plugin.register(config, value)
"""

SCENARIOS = f"""
import pytest

@pytest.mark.clause("{A}")
def test_listed_and_failing():
    assert False, "the driver hung"

@pytest.mark.clause("{A}")
def test_listed_clause_other_scenario_passing():
    pass

@pytest.mark.clause("{B}")
def test_listed_but_passing():
    pass

@pytest.mark.clause("{C}")
def test_not_listed_failing():
    assert False

@pytest.mark.clause("{C}")
def test_not_listed_passing():
    pass
"""


@pytest.fixture
def scenario_dir(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_scen=SCENARIOS)
    return pytester


def test_listed_failures_are_expected_and_passes_are_stale(scenario_dir: pytest.Pytester) -> None:
    scenario_dir.makefile(".toml", rabbit='driver = "rabbit"\n'
                          + entry(A, scenarios=["test_scen::test_listed_and_failing"])
                          + entry(B, category="wont-fix", link=""))
    result = scenario_dir.runpytest("--test-expectations=rabbit.toml", "-rxX")
    result.assert_outcomes(passed=2, failed=2, xfailed=1)
    result.stdout.fnmatch_lines(["*stale: send.retry.no-duplicates is listed*"])
    result.stdout.fnmatch_lines(
        ["*XFAIL*test_listed_and_failing*expected deviation [[]bug[]] poll.stop.unblocks*"])
    result.stdout.fnmatch_lines(["*XPASS(strict)*send.retry.no-duplicates*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_clause_wide_entry_covers_every_scenario(scenario_dir: pytest.Pytester) -> None:
    scenario_dir.makefile(".toml", exp=entry(C))
    result = scenario_dir.runpytest("--test-expectations=exp.toml")
    # Both scenarios of the clause are covered: the failing one is expected, the
    # passing one is stale; the unlisted failure of clause A still fails.
    result.assert_outcomes(passed=2, failed=2, xfailed=1)


def test_unknown_clause_is_a_usage_error(scenario_dir: pytest.Pytester) -> None:
    scenario_dir.makefile(".toml", exp=entry("send.retyr.no-duplicates"))
    result = scenario_dir.runpytest("--test-expectations=exp.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown clause ID 'send.retyr.no-duplicates'*"])


def test_missing_file_is_a_usage_error(scenario_dir: pytest.Pytester) -> None:
    result = scenario_dir.runpytest("--test-expectations=nowhere.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nowhere.toml*no such file*"])


def test_intermittent_entries_may_pass(scenario_dir: pytest.Pytester) -> None:
    scenario_dir.makefile(".toml", exp=entry(A) + "intermittent = true\n")
    result = scenario_dir.runpytest("--test-expectations=exp.toml")
    # A's failing scenario is expected, its passing one is not stale (XPASS).
    result.assert_outcomes(passed=2, failed=1, xfailed=1, xpassed=1)


def test_intermittent_scenarios_list(scenario_dir: pytest.Pytester) -> None:
    scenario_dir.makefile(".toml", exp=entry(A) + 'intermittent = ["test_scen::'
                          'test_listed_clause_other_scenario_passing"]\n')
    result = scenario_dir.runpytest("--test-expectations=exp.toml")
    result.assert_outcomes(passed=2, failed=1, xfailed=1, xpassed=1)
    e = exp.load(scenario_dir.path / "exp.toml", known_clauses=CATALOG)
    again = exp.parse(exp.dumps(e), known_clauses=CATALOG)
    assert again.deviations[A].intermittent_scenarios == (
        "test_scen::test_listed_clause_other_scenario_passing",)


def test_intermittent_entry_survives_a_run_where_it_passed() -> None:
    previous = exp.Expectations(deviations={
        A: exp.Deviation(A, "bug", "timing", "https://b/1", ("x::t1",), intermittent=True),
        B: exp.Deviation(B, "bug", "timing", "https://b/2", ("x::t2",), intermittent=True),
    })
    update = exp.from_report(report((A, [("x.py::t3", "fail", "")])), previous)
    assert update.removed == []
    assert update.expectations.deviations[A].scenarios == ("x::t1", "x::t3")
    assert update.expectations.deviations[B] == previous.deviations[B]
    again = exp.parse(exp.dumps(update.expectations), known_clauses=CATALOG)
    assert again.deviations[A].intermittent


def test_teardown_failure_of_a_listed_scenario_is_expected(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST + """
import pytest

@pytest.fixture
def hangs_in_cleanup():
    yield
    raise AssertionError("teardown: listener.stop() did not return")
""")
    pytester.makepyfile(test_scen=f"""
import pytest

@pytest.mark.clause("{A}")
def test_hangs(hangs_in_cleanup):
    assert False, "stop() hung"
""")
    pytester.makefile(".toml", exp=entry(A))
    result = pytester.runpytest("--test-expectations=exp.toml")
    # pytest reports the call and the teardown, both expected.
    result.assert_outcomes(xfailed=2)
    assert result.ret == pytest.ExitCode.OK


def test_conformance_run_exits_0_when_it_matches_its_expectations(
        pytester: pytest.Pytester) -> None:
    """A fake-driver run whose one deviation is listed exits 0; unlisted, 1 (the verdict)."""
    pytester.makeconftest(CONFTEST)
    clause = "incoming.content.copied-not-shared"  # the fake hands over the sender's objects
    args = ["--driver=fake", f"--clause={clause}", "-p", "no:randomly", "-p", "no:cacheprovider"]
    plain = pytester.runpytest_subprocess(*args)
    assert plain.ret == 1, plain.stdout.str()[-1500:]
    pytester.makefile(".toml", fake=entry(clause))
    matched = pytester.runpytest_subprocess(*args, "--test-expectations=fake.toml")
    assert matched.ret == 0, matched.stdout.str()[-1500:]
    matched.stdout.fnmatch_lines(["*exit status 0: the run matched its expectations*"])


# -- by clause, end to end through the kit's judging ------------------------------------------

JUDGED = f'''
import os
import pytest

@pytest.mark.clause("{A}", "{B}")
def test_probe_two_clauses(kit):
    with kit.clause("{A}", soft=True):
        assert os.environ.get("PROBE_A") != "fail", "listener.stop() hung"
    with kit.clause("{B}", soft=True):
        assert os.environ.get("PROBE_B") != "fail", "a retried send was delivered twice"
'''


def run_probe(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
              **fail: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    for name in ("PROBE_A", "PROBE_B"):
        monkeypatch.delenv(name, raising=False)
    for name, value in fail.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess(
        "test_probe.py", "-k", "probe", "-p", "no:cacheprovider", "--driver=reference",
        "--expectations=exp.toml", "--report-json=r.json", timeout=120)
    return result, json.loads((pytester.path / "r.json").read_text())


def test_a_listed_scenario_failing_another_clause_is_unexpected(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_probe=JUDGED)
    pytester.makefile(".toml", exp=entry(A, scenarios=["test_probe::test_probe_two_clauses"]))
    matched, doc = run_probe(pytester, monkeypatch, PROBE_A="fail")
    assert matched.ret == 0, matched.stdout.str()[-2000:]
    assert doc["run"]["exit_status"] == 0 and doc["run"]["expectations"]["matched"] is True
    assert doc["verdict"] == "non-compliant"
    matched.stdout.fnmatch_lines([
        "*expectations exp.toml: matched*",
        "exit status 0: the run matched its expectations (the verdict, non-compliant, "
        "alone would exit 1)"])
    assert matched.stdout.str().count("exit status") == 1

    new_bug, doc = run_probe(pytester, monkeypatch, PROBE_A="fail", PROBE_B="fail")
    assert new_bug.ret == 1, new_bug.stdout.str()[-2000:]
    assert doc["run"]["exit_status"] == 1 and doc["run"]["expectations"]["matched"] is False
    new_bug.stdout.fnmatch_lines([
        f"*unexpected: {B} failed, and is not listed for this scenario*",
        "exit status 1: the run did not match its expectations*"])


def test_a_reason_pattern_narrows_an_entry(pytester: pytest.Pytester,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_probe=JUDGED)
    pytester.makefile(".toml", exp=entry(B) + 'match = "delivered (twice|more than once)"\n')
    as_listed, _ = run_probe(pytester, monkeypatch, PROBE_B="fail")
    assert as_listed.ret == 0, as_listed.stdout.str()[-2000:]
    pytester.makefile(".toml", exp=entry(B) + 'match = "never delivered"\n')
    otherwise, doc = run_probe(pytester, monkeypatch, PROBE_B="fail")
    assert otherwise.ret == 1
    otherwise.stdout.fnmatch_lines([f"*unexpected: {B} failed otherwise than listed*"])
    judged = next(s for c in doc["clauses"] if c["id"] == B for s in c["scenarios"])
    assert judged["outcome"] == "fail"


def test_a_bad_reason_pattern_is_a_usage_error() -> None:
    with pytest.raises(exp.ExpectationsError, match="'match' is not a regular expression"):
        exp.parse(entry(A) + 'match = "(unclosed"\n', known_clauses=CATALOG)
