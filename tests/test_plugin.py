"""The plugin as a user meets it: options, bad input, adapters from everywhere.

These run pytest on small throwaway projects (pytester), the way a driver
maintainer's repository would use the kit.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from driver_conformance.exitcodes import ExitCode
from driver_conformance.registry import AdapterRegistry, make_plugin_manager

EXIT_USAGE = ExitCode.USAGE_ERROR
EXIT_BACKEND_UNAVAILABLE = ExitCode.BACKEND_UNAVAILABLE
#: A run of a subset of the clauses cannot be judged compliant.
EXIT_UNKNOWN = ExitCode.UNKNOWN

ADAPTER_CONFTEST = """
from driver_conformance.plugins.reference import ReferenceAdapter

class MineAdapter(ReferenceAdapter):
    name = "mine"
    description = "a driver under development"

def conformance_adapters():
    return [MineAdapter()]
"""


def assert_all_passed(result: pytest.RunResult) -> None:
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and set(outcomes) <= {"passed", "deselected"}, outcomes


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_without_options_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_own():\n    assert True\n")
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "driver-conformance:" not in out and "verdict for" not in out


def test_unknown_driver_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--driver=nope")
    assert result.ret == EXIT_USAGE
    errors = [line for line in result.stderr.lines if line.strip()]
    available = ", ".join(AdapterRegistry(make_plugin_manager()).names())
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: unknown driver 'nope'; available: {available} (")
    assert "reference" in available


def test_scheme_without_driver_names_the_scheme(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--transport-url=nope://host/")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(
        ["ERROR: no oslo.messaging driver is installed for scheme 'nope'*"])


@pytest.mark.parametrize("url", ["garbage", "://nothing"])
def test_bad_transport_url(pytester: pytest.Pytester, url: str) -> None:
    result = run(pytester, f"--transport-url={url}")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["ERROR: *transport URL*"])


def test_bad_time_scale(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--driver=fake", "--time-scale=0")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["ERROR: --time-scale must be a positive number*"])


def test_unreachable_broker_fails_fast_without_the_password(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--transport-url=rabbit://user:s3cret@127.0.0.1:1/",
                 "--clause=send.fanout.all-subscribers")
    assert result.ret == EXIT_BACKEND_UNAVAILABLE
    out = result.stdout.str() + result.stderr.str()
    assert "cannot reach the backend of rabbit://user:***@127.0.0.1:1/" in out
    assert "s3cret" not in out
    assert result.duration < 30


def test_adapter_from_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ADAPTER_CONFTEST)
    result = run(pytester, "--driver=mine", "--clause=send.fanout.all-subscribers", "-v")
    assert result.ret == EXIT_UNKNOWN, result.stdout.str()
    assert_all_passed(result)
    result.stdout.fnmatch_lines(["*adapter 'mine'*", "*PASSED*", "*verdict for mine*UNKNOWN*"])


def test_clause_pattern_selects_a_subset(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--driver=reference", "--clause=send.fanout.*", "-q")
    assert result.ret == EXIT_UNKNOWN, result.stdout.str()
    assert_all_passed(result)
    result.stdout.fnmatch_lines(["*passed*deselected*"])


def test_clause_pattern_matching_nothing_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--driver=reference", "--clause=no.such.*")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["ERROR: --clause 'no.such.*' matches no clause*"])


def test_unknown_clause_id_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.clause("no.such.clause")
        def test_x():
            pass
    """)
    result = run(pytester, "--driver=reference", "test_mine.py",
                 "--clause=send.fanout.all-subscribers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*unknown clause id 'no.such.clause'*"])


def _install_entry_point_adapter(pytester: pytest.Pytester) -> None:
    """A package with an adapter registered in ``driver_conformance.adapters``."""
    site = pytester.mkdir("site")
    (site / "mine_adapter.py").write_text(textwrap.dedent(ADAPTER_CONFTEST))
    dist = site / "mine_adapter-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-adapter\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[driver_conformance.adapters]\nmine = mine_adapter\n")
    pytester._monkeypatch.setenv("PYTHONPATH", str(site))


def test_adapter_from_entry_point(pytester: pytest.Pytester) -> None:
    _install_entry_point_adapter(pytester)
    result = run(pytester, "--driver=mine", "--clause=send.fanout.all-subscribers", "-v")
    assert result.ret == EXIT_UNKNOWN, result.stdout.str() + result.stderr.str()
    assert_all_passed(result)
    result.stdout.fnmatch_lines(["*adapter 'mine'*", "*PASSED*"])


def test_kit_disabled_leaves_pytest_alone(pytester: pytest.Pytester) -> None:
    _install_entry_point_adapter(pytester)
    pytester.makepyfile("def test_own():\n    assert True\n")
    result = run(pytester, "-p", "no:driver_conformance")
    result.assert_outcomes(passed=1)
    result = run(pytester, "-p", "no:driver_conformance", "--driver=mine")
    assert result.ret == EXIT_USAGE  # the option is the kit's: gone with it
    result.stderr.fnmatch_lines(["*unrecognized arguments: --driver=mine*"])


def test_fake_driver_by_url_reports_per_scenario(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--transport-url=fake://", "--clause=send.fanout.all-subscribers",
                 "-v")
    result.stdout.fnmatch_lines(["*adapter 'url', url fake://*", "*::test_*", "*verdict for url*"])


def test_console_script_lists_adapters(pytester: pytest.Pytester) -> None:
    result = pytester.run(sys.executable, "-m", "driver_conformance.cli", "list",
                          "--no-capabilities")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["fake *", "*", "*reference *", "*", "url *", "*"])
    assert "guest:guest" not in result.stdout.str()


def _install_driver_that_does_not_import(pytester: pytest.Pytester) -> None:
    """An oslo.messaging driver entry point whose module is missing (kafka without its client)."""
    site = pytester.mkdir("site")
    dist = site / "ghost_driver-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ghost-driver\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[oslo.messaging.drivers]\nghost = no_such_module_here:GhostDriver\n")
    pytester._monkeypatch.setenv("PYTHONPATH", str(site))


def test_a_driver_that_does_not_import_is_quiet_until_asked_for(
        pytester: pytest.Pytester) -> None:
    """It is listed as installed, logs nothing into other runs, and is one line when used."""
    _install_driver_that_does_not_import(pytester)
    result = run(pytester, "--driver=reference", "--clause=send.fanout.all-subscribers",
                 "-o", "log_level=DEBUG", "-rA")
    out = result.stdout.str() + result.stderr.str()
    # stevedore may still say at DEBUG level that it found the entry point; it must
    # not try to import it, nor log its failure.
    assert "Could not load" not in out and "ModuleNotFoundError" not in out, out[-2000:]
    used = run(pytester, "--transport-url=ghost://")
    assert used.ret == EXIT_USAGE
    errors = [line for line in used.stderr.lines if line.strip()]
    assert errors == ["ERROR: the oslo.messaging driver for scheme 'ghost' is installed but "
                      "does not import: ModuleNotFoundError: No module named "
                      "'no_such_module_here'"], errors


def test_output_opens_without_import_time_warnings(pytester: pytest.Pytester) -> None:
    """oslo.messaging's eventlet-era dependencies warn when imported; a run shows none,
    even when a driver's conftest imports oslo.messaging itself."""
    pytester.makeconftest("import oslo_messaging  # noqa: F401\n")
    result = run(pytester, "--driver=reference", "--clause=send.fanout.all-subscribers",
                 "-W", "default")
    out = result.stdout.str() + result.stderr.str()
    assert "Eventlet is deprecated" not in out, out[:2000]


def test_list_shows_the_adapters_a_run_from_here_sees(pytester: pytest.Pytester) -> None:
    """`driver-conformance list` in a driver's repository shows its conftest adapter, and
    one in a directory it is given, the way `pytest --driver=...` would find them."""
    pytester.makeconftest(ADAPTER_CONFTEST)
    sub = pytester.mkdir("conformance")
    (sub / "conftest.py").write_text(textwrap.dedent(
        ADAPTER_CONFTEST.replace('"mine"', '"deeper"')))

    def listing(*paths: str) -> str:
        result = pytester.run(sys.executable, "-m", "driver_conformance.cli", "list",
                              "--no-capabilities", *paths, timeout=120)
        assert result.ret == 0, result.stderr.str()
        return result.stdout.str()

    here = listing()
    assert "mine           a driver under development" in here
    assert f"from {pytester.path / 'conftest.py'}" in here
    assert "deeper" not in here
    assert "deeper         a driver under development" in listing("conformance")


def test_an_adapter_in_a_subdirectory_conftest_needs_its_directory(
        pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("conformance")
    (sub / "conftest.py").write_text(textwrap.dedent(ADAPTER_CONFTEST))
    missing = run(pytester, "--driver=mine")
    assert missing.ret == EXIT_USAGE
    missing.stderr.fnmatch_lines(["ERROR: unknown driver 'mine'*a directory given on the "
                                  "command line)"])
    found = run(pytester, "--driver=mine", "conformance", "--clause=send.fanout.all-subscribers")
    assert found.ret == EXIT_UNKNOWN, found.stdout.str()[-2000:]


def test_a_conftest_loaded_during_collection_still_joins_the_run(
        pytester: pytest.Pytester) -> None:
    """A conftest below the given directory, loaded lazily, adds its facts to the run."""
    deep = pytester.mkdir("tests") / "conformance"
    deep.mkdir()
    (deep / "conftest.py").write_text(
        "def conformance_run_facts(adapter, url):\n    return {'lazily': 'loaded'}\n")
    (deep / "test_own.py").write_text("def test_own():\n    pass\n")
    result = run(pytester, "--driver=reference", "tests", "--clause=send.fanout.all-subscribers",
                 "--report-json=r.json")
    assert result.ret == EXIT_UNKNOWN, result.stdout.str()[-2000:]
    doc = __import__("json").loads((pytester.path / "r.json").read_text())
    assert doc["run"]["facts"].get("lazily") == "loaded"


def test_a_run_dominated_by_hangs_says_so(pytester: pytest.Pytester) -> None:
    """A driver whose ``stop()`` hangs makes its scenarios wait out their bounds; the
    summary says the run's time went to hangs, and names the first hung call."""
    import json

    from driver_conformance import detect

    pytester.makeconftest(detect.CONFTEST)
    result = run(pytester, "--driver=broken-poll-stop-hangs", "--clause=poll.stop.unblocks",
                 "--time-scale=0.2", "-p", "no:randomly", "--report-json=r.json")
    result.stdout.fnmatch_lines([
        "the run was dominated by hangs: * driver call(s) did not return within their bound,"
        " in * scenario(s), which took * s of the scenarios' * s"
        " (first: PollStyleListener.stop() in listeners.py::*)"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["run"]["hung_calls"] >= 1 and report["run"]["hung_seconds"] > 0


def test_a_run_without_hangs_prints_no_hang_line(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--driver=reference", "--clause=poll.stop.unblocks", "-q")
    assert_all_passed(result)
    assert "hangs" not in result.stdout.str()
