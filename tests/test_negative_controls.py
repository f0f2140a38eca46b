"""Negative controls: every broken variant of the reference driver is caught by its clause.

Each variant of :mod:`driver_conformance.broken` wraps the reference driver
and breaks one catalog clause.  For each, the conformance suite restricted
to that clause's scenarios is run in-process (pytester) against the
``broken-<variant>`` adapter, and the clause must be among those whose
scenarios failed.  A sanity run checks that the unbroken reference passes
the very same selection, so a variant is caught because of its breakage,
not because the scenarios fail anyway.

Like ``driver-conformance detect``, the runs leave out the model-based
scenario (slow to shrink), and read what failed from the run's one results
collector (:class:`driver_conformance.results.ResultCollector`): a clause is
caught when some scenario *judged it* failed, not when a scenario naming it
failed for another clause.  ``-x`` ends a run at its first failure, which
(the selection being the clause's scenarios) is already a detection.

Every run, the sanity run included, uses ``--time-scale`` :data:`TIME_SCALE`
(0.3 unless ``DRIVER_CONFORMANCE_NC_TIME_SCALE`` says otherwise): a variant
that loses messages is only seen once the kit's "eventually" ceiling has
passed, and at scale 1 those waits would be most of the module's time.  The
sanity run shows that the scenarios still pass on the reference at that scale,
so a variant failing them is failing because of its breakage.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import detect, stash
from driver_conformance.broken import VARIANTS, Variant, broken_adapters
from driver_conformance.catalog import load_catalog
from driver_conformance.registry import AdapterRegistry, make_plugin_manager

#: The issue asks for at least 20 deliberately broken variants.
MIN_VARIANTS = 20
#: Time scale of every run here (see the module docstring).
TIME_SCALE = float(os.environ.get("DRIVER_CONFORMANCE_NC_TIME_SCALE") or 0.3)


@pytest.fixture(scope="module", autouse=True)
def _preloaded() -> None:
    """Import the scenario modules and the driver once for all the in-process runs.

    ``pytester.inline_run`` forgets every module a run imported; without this,
    each run would import the scenarios, Hypothesis and the reference driver
    again, which costs more than most runs themselves.
    """
    import driver_conformance.scenarios as scenarios

    for name in ("driver_conformance.fixtures", "driver_conformance.kit",
                 "driver_conformance.reference", "driver_conformance.summary",
                 "driver_conformance.results", "driver_conformance.report.plugin"):
        importlib.import_module(name)
    for info in pkgutil.iter_modules(scenarios.__path__):
        importlib.import_module(f"{scenarios.__name__}.{info.name}")


def run_suite(pytester: pytest.Pytester, driver: str, clauses: list[str], *extra: str
              ) -> tuple[Any, list[str]]:
    """Run the suite in-process; return the hook recorder and the clauses judged failed."""
    pytester.makeconftest(detect.CONFTEST)
    args = ["-p", "no:cacheprovider", "-p", "no:randomly", f"--driver={driver}",
            f"--time-scale={TIME_SCALE:g}", "-m", detect.NOT_MODEL,
            *(f"--clause={c}" for c in clauses), *extra]
    rec = pytester.inline_run(*args)
    config = rec.getcalls("pytest_sessionfinish")[0].session.config
    return rec, config.stash[stash.RESULTS].failed_clauses(load_catalog())


def test_enough_variants_each_naming_a_catalog_clause() -> None:
    catalog = load_catalog()
    names = [v.name for v in VARIANTS]
    assert len(VARIANTS) >= MIN_VARIANTS, f"expected >= {MIN_VARIANTS} variants, got {names}"
    assert len(set(names)) == len(names), f"duplicate variant names in {names}"
    unknown = [(v.name, v.clause) for v in VARIANTS if v.clause not in catalog]
    assert not unknown, f"variants naming clauses not in the catalog: {unknown}"
    assert all(v.description and v.wrapper.__doc__ for v in VARIANTS), \
        "every variant needs a description and a docstring saying why it is faithful"
    assert [a.name for a in broken_adapters()] == [f"broken-{n}" for n in names]


def test_broken_adapters_are_not_registered_by_default() -> None:
    registry = AdapterRegistry(make_plugin_manager())
    leaked = [n for n in registry.names() if n.startswith("broken-")]
    assert not leaked, f"broken adapters must only come from a conftest; found {leaked}"


def test_unbroken_reference_passes_the_same_selection(pytester: pytest.Pytester) -> None:
    """The sanity baseline: every scenario a variant is judged by passes on the reference."""
    clauses = sorted({v.clause for v in VARIANTS})
    rec, failed = run_suite(pytester, "reference", clauses)
    passed, _, _ = rec.listoutcomes()
    assert not failed, f"expected the reference to pass these scenarios; failed: {failed}"
    assert passed, "expected some scenarios to run on the reference"


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_is_caught_by_its_clause(pytester: pytest.Pytester, variant: Variant) -> None:
    rec, caught = run_suite(pytester, variant.adapter_name, [variant.clause], "-x")
    assert rec.ret != pytest.ExitCode.USAGE_ERROR, "the run was a usage error"
    passed, skipped, _ = rec.listoutcomes()
    assert variant.clause in caught, (
        f"expected variant {variant.name!r} ({variant.description}) to fail clause "
        f"{variant.clause!r}; clauses failed: {caught or 'none'} (exit {rec.ret}, "
        f"{len(passed)} passed, {len(skipped)} skipped: {[r.nodeid for r in passed]})")


def test_a_hanging_poll_stop_fails_only_the_stop_clauses(pytester: pytest.Pytester) -> None:
    """Every poll scenario stops its own poller relying on the stop clauses: a driver whose
    stop() hangs fails those (``poll.stop.returns-without-poll`` too: it hangs with no poll
    running as well), and the other poll clauses are judged or left NOT RUN."""
    clauses = [c.id for c in load_catalog() if c.id.startswith("poll.")]
    _, failed = run_suite(pytester, "broken-poll-stop-hangs", clauses)
    assert set(failed) == {"poll.stop.unblocks", "poll.stop.thread-safe",
                           "poll.stop.returns-without-poll"}, failed


def test_a_stop_waiting_for_a_poll_fails_only_its_clauses(pytester: pytest.Pytester) -> None:
    """rabbit's stop(), which waits for a poll() to notice it, fails the clauses of a stop
    with no poll running (the poller's, and the never-started listener's through oslo's
    adapter), and no other poll or listener clause: each scenario bounds its own stop()
    and teardown does not hang on it."""
    clauses = [c.id for c in load_catalog() if c.id.startswith(("poll.", "listener."))]
    _, failed = run_suite(pytester, "broken-poll-stop-waits-for-poll", clauses)
    assert set(failed) == {"poll.stop.returns-without-poll",
                           "listener.stop.never-started"}, failed


def test_detect_command_prints_the_table(tmp_path: Path) -> None:
    """``driver-conformance detect`` end to end, on one fast variant (subprocess, baseline off)."""
    variant = next(v for v in VARIANTS if v.name == "msg-id-missing")
    out = tmp_path / "detect.json"
    proc = subprocess.run(
        [sys.executable, "-m", "driver_conformance.detect", "--variant", variant.name,
         "--no-baseline", "-x", f"--time-scale={TIME_SCALE:g}", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"expected exit 0, got {proc.returncode}: {proc.stdout}"
    row = next(line for line in proc.stdout.splitlines() if line.startswith(variant.name))
    assert row.split()[1:3] == [variant.clause, "yes"], f"unexpected table row: {row!r}"
    data = json.loads(out.read_text())
    assert data["variants"][0]["caught"] is True and data["baseline"] is None


def test_detection_table_reports_a_miss() -> None:
    """A variant whose clause did not fail is shown as NO, with what failed instead.

    What failed comes from the run's report: a clause failed when a scenario
    judged it so, whatever other clauses that scenario names.
    """
    doc = {"clauses": [
        {"id": "x.y", "scenarios": [
            {"nodeid": "a.py::t1", "outcome": "fail", "scenario_outcome": "fail"}]},
        {"id": VARIANTS[0].clause, "scenarios": [
            {"nodeid": "a.py::t1", "outcome": "not-run", "scenario_outcome": "fail"},
            {"nodeid": "a.py::t2", "outcome": "pass", "scenario_outcome": "pass"}]},
    ]}
    failed, failed_ids, ran = detect.read_report(doc)
    assert (failed, failed_ids, ran) == (["x.y"], ["a.py::t1"], 2)
    det = detect.Detection(VARIANTS[0], exit_code=1, failed=failed, ran=ran)
    table = detect.format_table([det])
    assert f"{VARIANTS[0].name}" in table and " NO " in table and "x.y" in table
    assert table.endswith("0/1 variants caught by their clause")
