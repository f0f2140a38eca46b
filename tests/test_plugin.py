"""The plugin as a user meets it: options, bad input, adapters from everywhere.

These run pytest on small throwaway projects (pytester), the way a driver
maintainer's repository would use the kit.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

EXIT_USAGE = 4
EXIT_BACKEND_UNAVAILABLE = 8
#: A run of a subset of the clauses cannot be judged compliant.
EXIT_UNKNOWN = 7

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
    assert errors == ["ERROR: unknown driver 'nope'; available: fake, kafka, kombu-memory, "
                      "rabbit, reference, url"]


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
