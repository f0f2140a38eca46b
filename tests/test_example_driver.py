"""The out-of-tree maintainer's path, end to end, on ``examples/memqueue-driver``.

memqueue is a driver the kit did not write: its own option group registered
in ``__init__``, callback listeners only, a conftest adapter and an
entry-point adapter.  These tests use it the way its maintainer would: pytest
runs from the example's directory (a copy, so the source tree stays clean),
with the package installed the way ``tests/test_plugin.py`` fakes an
install: its source on ``PYTHONPATH`` beside a ``.dist-info`` whose entry
points are read from the example's own ``pyproject.toml``.  Nothing is
fetched and nothing is installed into the kit's environment, which would
change the adapters every other test sees.

The full runs take about a minute each; each test states what it proves,
and the wall time of the full run is printed and recorded
(``record_property``).  A test that finds the kit itself short of what the
maintainer's path needs raises :class:`KitShortfall`, naming it.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "memqueue-driver"
PYPROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
DIST = "memqueue_driver-0.1.0.dist-info"

EXIT_COMPLIANT, EXIT_NON_COMPLIANT, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 4, 7
#: Bound of one full conformance run in a subprocess (about a minute on two idle cores).
FULL_RUN_TIMEOUT = 420
#: The driver's default retry_interval is 1 s, so two retries take at least 2 s without
#: the adapter's override (0.02 s); a scenario this fast shows the override took effect.
RETRIES = "retry.py::test_bounded_retry_gives_up[2-cast]"
OVERRIDE_CEILING = 1.0

pytestmark = pytest.mark.timeout(FULL_RUN_TIMEOUT + 60)


class KitShortfall(AssertionError):
    """What the maintainer's path needs and the kit does not give."""


# -- installing and running the example ------------------------------------------------


def copy_example(pytester: pytest.Pytester) -> Path:
    """The example's files in the test's directory, which runs start from."""
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build",
                                                  ".pytest_cache", "*.json"))
    return pytester.path


def install_example(pytester: pytest.Pytester) -> Path:
    """The package as ``pip install`` leaves it: source plus dist-info with its entry points."""
    site = pytester.mkdir("site-packages")
    shutil.copytree(EXAMPLE / "memqueue", site / "memqueue",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist = site / DIST
    dist.mkdir()
    project = PYPROJECT["project"]
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project["entry-points"]
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items()) + "\n"
        for group, eps in groups.items()))
    (dist / "top_level.txt").write_text("memqueue\n")
    pytester._monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def run(pytester: pytest.Pytester, *args: str, timeout: float = 120) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


def load_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def clause_outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["outcome"] for c in report["clauses"]}


def scenario(report: dict[str, Any], nodeid: str) -> dict[str, Any]:
    for clause in report["clauses"]:
        for entry in clause["scenarios"]:
            if entry["nodeid"] == nodeid:
                return entry
    raise AssertionError(f"{nodeid} is not in the report")


def summary(result: pytest.RunResult) -> str:
    """The kit's section of the terminal summary."""
    out = result.stdout.str()
    assert "= driver-conformance =" in out, out[-3000:]
    return out.split("= driver-conformance =", 1)[1]


def assert_no_configuration_error(result: pytest.RunResult, report_path: Path) -> None:
    text = result.stdout.str() + result.stderr.str() + report_path.read_text()
    for error in ("NoSuchGroupError", "NoSuchOptError", "OverridesError"):
        assert error not in text, f"{error} in the run's output or report"


def assert_unjudged_listed(report: dict[str, Any], section: str) -> list[str]:
    """Every required clause that did not run is named in the summary, with its reason.

    Returns the clauses checked.  Raises :class:`KitShortfall` naming the ones
    the summary leaves out.
    """
    unjudged = [c for c in report["clauses"]
                if c["required"] and c["outcome"] in ("not-run", "unsupported")
                and not (c["outcome"] == "unsupported" and c["level"] == "OPTIONAL")]
    lines = section.splitlines()

    def named(clause: dict[str, Any]) -> bool:
        """On a line of its own with the reason, or in a group under a line giving it."""
        reason = clause["reason"][:60]
        if any(clause["id"] in line and reason in line for line in lines):
            return True
        under = False
        for line in lines:
            if line.startswith("  ") and not line.startswith("    "):
                under = reason in line and " clauses: " in line
            elif under and clause["id"] in line.replace(",", " ").split():
                return True
        return False

    missing = [c["id"] for c in unjudged if not named(c)]
    if missing:
        raise KitShortfall(f"required clauses not judged and not named in the summary with "
                           f"their reason: {missing}")
    return [c["id"] for c in unjudged]


# -- the package as declared -------------------------------------------------------------


@pytest.fixture
def forget_memqueue() -> Iterator[None]:
    """The example's modules imported into this process are forgotten after the test."""
    yield
    for name in [m for m in sys.modules if m == "memqueue" or m.startswith("memqueue.")]:
        del sys.modules[name]


@pytest.mark.usefixtures("forget_memqueue")
def test_declared_entry_points_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every entry point the example's pyproject declares names an importable object."""
    from driver_conformance.drivers import quiet_import_oslo_messaging

    quiet_import_oslo_messaging()
    from oslo_messaging._drivers import base

    monkeypatch.syspath_prepend(str(EXAMPLE))
    groups = PYPROJECT["project"]["entry-points"]
    assert set(groups) >= {"oslo.messaging.drivers", "driver_conformance.adapters"}
    for eps in groups.values():
        for value in eps.values():
            module, _, attr = value.partition(":")
            obj = importlib.import_module(module)
            if attr:
                obj = getattr(obj, attr)
            assert obj is not None
    driver = importlib.import_module("memqueue.driver").MemqueueDriver
    assert issubclass(driver, base.BaseDriver)
    adapters = importlib.import_module("memqueue.conformance").conformance_adapters()
    assert [a.name for a in adapters] == ["memqueue"]


# -- the maintainer's full run -------------------------------------------------------------


def test_conftest_adapter_full_run(pytester: pytest.Pytester,
                                   record_property: Any) -> None:
    """``pytest --driver=memqueue-dev`` in the example's directory: nothing fails, and it shows.

    * no scenario errors on configuration, though the adapter overrides an
      option of a group that exists only once the driver's ``__init__`` ran;
    * the override took effect: the conftest reports the settings the drivers
      read, and a retry scenario runs in a fraction of the default interval;
    * the poll-style clauses are not applicable (callback listeners) and
      count for nothing; no clause fails;
    * every required clause is judged but those of the network faults the
      example's injector does not offer (freeze, delay, a host's outage): the
      verdict is UNKNOWN, and the summary names each with the fault it needs.
    """
    copy_example(pytester)
    report_path = pytester.path / "report.json"
    result = run(pytester, "--driver=memqueue-dev", f"--report-json={report_path}", "-q",
                 timeout=FULL_RUN_TIMEOUT)
    record_property("full_run_wall_time_s", round(result.duration, 1))
    print(f"full conformance run of memqueue-dev: {result.duration:.1f}s wall time")
    out = result.stdout.str()
    assert result.ret == EXIT_UNKNOWN, out[-4000:] + result.stderr.str()[-2000:]
    assert_no_configuration_error(result, report_path)
    report = load_report(report_path)
    outcomes = clause_outcomes(report)

    assert report["verdict"] == "unknown"
    assert not [c for c, o in outcomes.items() if o in ("fail", "error", "xfail", "xpass")]
    scenarios = [s for c in report["clauses"] for s in c["scenarios"]]
    assert not [s["nodeid"] for s in scenarios if s["outcome"] == "error"]
    assert report["run"]["observed"].get("listener style") == "callback"

    # The overrides took effect: what the drivers read, and what that makes them do.
    result.stdout.re_match_lines([r"memqueue-dev: \d+ driver\(s\) built with \[memqueue\] "
                                  r"retry_interval=0\.02, .*\(overridden: retry_interval\)"])
    retries = scenario(report, RETRIES)
    assert retries["outcome"] == "pass"
    assert retries["duration"] < OVERRIDE_CEILING, (
        f"{RETRIES} took {retries['duration']}s: the 1 s default retry_interval looks in "
        "force, not the adapter's override")

    # Poll clauses do not apply to callback listeners and are not held against them.
    poll = {c: o for c, o in outcomes.items() if c.startswith("poll.")}
    assert poll and set(poll.values()) == {"not-applicable"}, poll
    assert report["counts"]["OPTIONAL"]["pass_rate"] == 1.0, report["counts"]["OPTIONAL"]
    section = summary(result)
    assert f"{len(poll)} clause(s) not applicable" in section
    assert "FAIL" not in section

    # Every required clause is judged but the network-fault ones, each named with its fault.
    unjudged = assert_unjudged_listed(report, section)
    offered = {"freeze", "delay", "host-outage"}
    assert unjudged and {c["area"] for c in report["clauses"] if c["id"] in unjudged} == {
        "partitions"}, unjudged
    reasons = {c["reason"] for c in report["clauses"] if c["id"] in unjudged}
    assert all(any(f"cannot inject {kind}" in r for kind in offered) for r in reasons), reasons


def test_broken_variant_fails_fanout_only(pytester: pytest.Pytester) -> None:
    """Fanout to one listener fails ``send.fanout.all-subscribers`` and no other clause.

    The scenario route that relies on fanout is not judged, and says so naming
    the clause it relies on; the clause is still judged through its other route.
    """
    copy_example(pytester)
    report_path = pytester.path / "report.json"
    result = run(pytester, "--driver=memqueue-fanout-to-one", f"--report-json={report_path}",
                 "-q", timeout=FULL_RUN_TIMEOUT)
    print(f"full conformance run of memqueue-fanout-to-one: {result.duration:.1f}s")
    assert result.ret == EXIT_NON_COMPLIANT, result.stdout.str()[-4000:]
    assert_no_configuration_error(result, report_path)
    report = load_report(report_path)
    failed = {c: o for c, o in clause_outcomes(report).items()
              if o in ("fail", "error", "xfail", "xpass")}
    assert failed == {"send.fanout.all-subscribers": "fail"}
    scenarios = [s for c in report["clauses"] for s in c["scenarios"]]
    assert not [s["nodeid"] for s in scenarios if s["outcome"] == "error"]
    section = summary(result)
    assert "FAIL  MUST     send.fanout.all-subscribers" in section
    assert_unjudged_listed(report, section)
    routes = {s["nodeid"]: s for c in report["clauses"] for s in c["scenarios"]
              if c["id"] == "incoming.content.copied-not-shared"}
    fanout = routes["incoming.py::test_content_copied_not_shared[fanout]"]
    assert fanout["outcome"] == "not-run"
    assert "relies on send.fanout.all-subscribers" in fanout["message"]
    assert routes["incoming.py::test_content_copied_not_shared[pools]"]["outcome"] == "pass"


def test_without_fault_injection_unjudged_clauses_are_named(pytester: pytest.Pytester) -> None:
    """An adapter without a FaultInjector: the fault clauses are NOT RUN, verdict UNKNOWN.

    Each required clause that did not run should be named in the summary with
    its reason; the kit groups more than four with one reason into one line.
    """
    copy_example(pytester)
    report_path = pytester.path / "report.json"
    result = run(pytester, "--driver=memqueue-dev-no-faults", f"--report-json={report_path}",
                 "-q", timeout=FULL_RUN_TIMEOUT)
    assert result.ret == EXIT_UNKNOWN, result.stdout.str()[-4000:]
    report = load_report(report_path)
    outcomes = clause_outcomes(report)
    assert not [c for c, o in outcomes.items() if o in ("fail", "error")]
    not_run = {c["id"]: c["reason"] for c in report["clauses"]
               if c["required"] and c["outcome"] == "not-run"}
    assert "send.retry.no-duplicates" in not_run
    assert all("no fault injection" in reason for reason in not_run.values()), not_run
    assert_unjudged_listed(report, summary(result))


# -- both adapter paths ---------------------------------------------------------------------


def test_installed_adapter_runs_anywhere(pytester: pytest.Pytester) -> None:
    """Installed, the package's own adapter runs from a directory with no conftest.

    The driver is then loaded by its URL scheme (``oslo.messaging.drivers``),
    and the adapter's overrides take effect on that path too.
    """
    install_example(pytester)
    elsewhere = pytester.mkdir("elsewhere")
    report_path = elsewhere / "report.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        result = run(pytester, "--driver=memqueue", f"--report-json={report_path}",
                     "--clause=send.retry.bounded-delivery-failure",
                     "--clause=send.fanout.all-subscribers", "-q")
    assert result.ret == EXIT_UNKNOWN, result.stdout.str()[-4000:] + result.stderr.str()
    assert_no_configuration_error(result, report_path)
    report = load_report(report_path)
    assert report["run"]["adapter"] == "memqueue"
    assert report["run"]["driver_package"]["name"] == "memqueue-driver"
    outcomes = clause_outcomes(report)
    assert outcomes["send.retry.bounded-delivery-failure"] == "pass"
    assert outcomes["send.fanout.all-subscribers"] == "pass"
    assert scenario(report, RETRIES)["duration"] < OVERRIDE_CEILING


def test_conftest_and_installed_adapters_side_by_side(pytester: pytest.Pytester) -> None:
    """In the checkout with the package installed, each ``--driver`` name runs its adapter."""
    copy_example(pytester)
    install_example(pytester)
    for name in ("memqueue", "memqueue-dev"):
        result = run(pytester, f"--driver={name}", "--clause=send.fanout.all-subscribers",
                     "-q")
        assert result.ret == EXIT_UNKNOWN, result.stdout.str()[-3000:] + result.stderr.str()
        result.stdout.fnmatch_lines([f"verdict for {name} (memqueue://): UNKNOWN*"])


def test_same_name_twice_is_a_conflict(pytester: pytest.Pytester) -> None:
    """Neither path wins: a conftest adapter named like the installed one stops the run."""
    install_example(pytester)
    pytester.makeconftest("""
        from memqueue.conformance import MemqueueAdapter

        def conformance_adapters():
            return [MemqueueAdapter()]
    """)
    result = run(pytester, "--driver=memqueue")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["ERROR: adapter name 'memqueue' is offered by both *"])


def test_override_of_an_unregistered_option_is_one_line(pytester: pytest.Pytester) -> None:
    """A typo in an override is a usage error naming it, not a failure in every scenario."""
    conftest = copy_example(pytester) / "conftest.py"
    conftest.write_text(conftest.read_text() + (
        "\n\ndef conformance_option_overrides(adapter, overrides):\n"
        "    overrides['memqueue']['retry_intervall'] = 0.02\n"))
    result = run(pytester, "--driver=memqueue-dev", "--clause=send.fanout.all-subscribers")
    assert result.ret == EXIT_USAGE, result.stdout.str()[-3000:]
    result.stderr.fnmatch_lines(["ERROR: adapter 'memqueue-dev' overrides options the driver "
                                 "never registered: [[]memqueue[]] retry_intervall*"])


def cli_list(pytester: pytest.Pytester) -> pytest.RunResult:
    result = pytester.run(sys.executable, "-m", "driver_conformance.cli", "list",
                          "--no-capabilities", timeout=120)
    assert result.ret == 0, result.stderr.str()
    return result


def test_list_shows_the_installed_adapter(pytester: pytest.Pytester) -> None:
    """``driver-conformance list`` names the entry-point adapter and where it comes from."""
    copy_example(pytester)
    install_example(pytester)
    result = cli_list(pytester)
    result.stdout.fnmatch_lines(["memqueue *memqueue, the example out-of-tree driver*",
                                 "*default url: memqueue://; from memqueue"])


def test_list_in_the_checkout_shows_the_conftest_adapter(pytester: pytest.Pytester) -> None:
    """Run in the example's directory, ``driver-conformance list`` should show memqueue-dev."""
    copy_example(pytester)
    result = cli_list(pytester)
    if "memqueue-dev" not in result.stdout.str():
        raise KitShortfall("`driver-conformance list` in the example's directory does not "
                           "show the conftest adapter memqueue-dev:\n" + result.stdout.str())
