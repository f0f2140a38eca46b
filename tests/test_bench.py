"""``driver-conformance bench``: statistics, accounting, the JSON document and the report panel.

The runs are short (a fraction of a second per workload) against the
reference driver and against broken variants of it: the point is not the
figures but that every message is accounted for, so that a lossy or
duplicating driver shows its losses and duplicates instead of a good number.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from driver_conformance.bench import KIND, SCHEMA_VERSION
from driver_conformance.bench import cli as bench_cli
from driver_conformance.bench import render as bench_render
from driver_conformance.bench.settings import Settings
from driver_conformance.bench.stats import Accounting, percentile, summarize
from driver_conformance.broken import BrokenAdapter, Variant, WrappedDriver, select
from driver_conformance.plugins.reference import ReferenceAdapter
from driver_conformance.registry import AdapterRegistry, make_plugin_manager

#: Short runs: enough messages to see losses and copies, quick enough for the suite.
SHORT = Settings(duration=0.3, warmup=0.05, max_messages=300, concurrency=2, drain=0.5,
                 settle=0.1, call_timeout=1.0, call_bound=5.0)


def run(adapter: Any, label: str, workloads: list[str] | None = None,
        settings: Settings = SHORT) -> dict[str, Any]:
    from driver_conformance.bench.runner import Subject, run_bench

    registry = AdapterRegistry(make_plugin_manager())
    subject = Subject(label=label, adapter=adapter, url="reference://", registry=registry)
    return run_bench([subject], settings, only=workloads)


def result(doc: dict[str, Any], workload: str) -> dict[str, Any]:
    return next(r for r in doc["results"] if r["workload"] == workload)


def broken(name: str) -> BrokenAdapter:
    (variant,) = select([name])
    return BrokenAdapter(variant)


# -- statistics -------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.999) == 100.0
    assert percentile([7.0], 0.999) == 7.0
    summary = summarize([0.001, 0.002, 0.003])
    assert summary["count"] == 3 and summary["max"] == 3.0 and summary["p50"] == 2.0
    assert set(summary) == {"count", "mean", "p50", "p90", "p99", "p99_9", "max"}
    assert summarize([]) == {"count": 0, "mean": None, "p50": None, "p90": None,
                             "p99": None, "p99_9": None, "max": None}


def test_accounting_derives_lost_and_duplicated() -> None:
    acc = Accounting(sent=10, expected=20, received=18, unique=15)
    assert acc.lost == 5 and acc.duplicated == 3
    acc.add(Accounting(sent=1, expected=1, received=1, unique=1))
    assert acc.as_dict()["sent"] == 11 and acc.as_dict()["lost"] == 5


# -- runs ----------------------------------------------------------------------------------


def test_reference_accounts_for_every_message_and_the_document_has_its_shape() -> None:
    doc = run(ReferenceAdapter(), "reference")
    json.dumps(doc)  # serialisable as is
    assert doc["kind"] == KIND and doc["schema_version"] == SCHEMA_VERSION
    assert {"kit_version", "python", "platform", "started_at", "finished_at", "wall_s",
            "settings", "rounds"} <= set(doc["run"])
    assert [d["label"] for d in doc["drivers"]] == ["reference"]
    assert [r["workload"] for r in doc["results"]] == [
        "call", "call-concurrent", "call-monitor", "cast", "fanout", "notify", "notify-pools"]
    for r in doc["results"]:
        acc = r["accounting"]
        assert r["status"] == "ok", r
        assert acc["sent"] > 0 and acc["lost"] == 0 and acc["duplicated"] == 0, r
        assert acc["wrong_replies"] == 0 and acc["unexpected"] == 0, r
        assert r["throughput_per_s"] > 0 and r["latency_ms"]["count"] > 0
        lat = r["latency_ms"]
        assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
    fanout = result(doc, "fanout")["accounting"]
    assert fanout["expected"] == 2 * fanout["sent"]  # one copy per subscriber
    pools = result(doc, "notify-pools")["accounting"]
    assert pools["expected"] == 2 * pools["sent"]  # one copy per pool
    assert result(doc, "call-monitor")["params"]["call_monitor_timeout"] == 2.0
    ratios = doc["comparison"]["ratios"]
    assert doc["comparison"]["baseline"] == "reference"
    assert doc["comparison"]["yardstick"] is False
    assert all(r["throughput"] == 1.0 and r["p50"] == 1.0 for r in ratios)
    assert all(len(r["rounds"]) == 1 for r in doc["results"])


@pytest.mark.parametrize(("variant", "workload", "field"), [
    ("topic-to-all", "cast", "duplicated"),
    ("notify-to-every-listener", "notify", "duplicated"),
    ("fanout-to-one", "fanout", "lost"),
])
def test_a_broken_driver_shows_its_losses_and_copies(variant: str, workload: str,
                                                      field: str) -> None:
    doc = run(broken(variant), f"broken-{variant}", [workload])
    acc = result(doc, workload)["accounting"]
    assert acc["sent"] > 0
    assert acc[field] > 0, acc
    # about one per message sent (two subscribers): the count is not a rounding artefact
    assert acc[field] >= acc["sent"] // 2, acc
    from driver_conformance.bench.runner import has_problems, render_table

    assert has_problems(doc)
    row = next(line for line in render_table(doc).splitlines() if line.startswith(workload))
    assert f" {acc[field]} " in row


class HangingSend(WrappedDriver):
    """A driver whose send() never returns: the workload must end, with an error entry."""

    release = threading.Event()

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        self.release.wait(30)
        raise RuntimeError("released")


def test_a_hung_driver_ends_its_workload_with_an_error() -> None:
    adapter = BrokenAdapter(Variant("hang", "none", "send never returns", HangingSend))
    quick = Settings(duration=0.2, warmup=0.0, max_messages=50, concurrency=1, drain=0.3,
                     settle=0.05, call_timeout=0.2, call_bound=0.5)
    try:
        doc = run(adapter, "hang", ["call", "cast"], quick)
    finally:
        HangingSend.release.set()
    for workload in ("call", "cast"):
        r = result(doc, workload)
        assert r["status"] == "error", r
        assert any("did not return" in e for e in r["errors"]), r["errors"]


def test_an_unsupported_feature_is_reported_not_measured() -> None:
    from driver_conformance.adapter import Capabilities

    class NoPools(ReferenceAdapter):
        def get_capabilities(self, url: str) -> Capabilities:
            return Capabilities(pools=False)

    doc = run(NoPools(), "no-pools", ["notify-pools"])
    assert result(doc, "notify-pools")["status"] == "unsupported"


def test_the_memory_script_measures_queued_casts_and_large_calls() -> None:
    """bench/memory.py, tiny: it runs, and its figures have their shape (not their goals)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "bench" / "memory.py"
    proc = subprocess.run([sys.executable, str(script), "--casts", "300", "--calls", "3",
                           "--payload-mib", "0.01"], capture_output=True, text=True,
                          timeout=240, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    out = proc.stdout
    assert "300 queued casts:" in out and " B each" in out, out
    assert "3 calls of 0.01 MiB" in out and "after cleanup" in out, out
    assert "Python heap still held" in out and "threads left" not in out, out


# -- command line and report ---------------------------------------------------------------


# -- the yardstick and the ratios ----------------------------------------------------------


def test_ratios_are_per_round_medians_with_their_spread() -> None:
    from driver_conformance.bench.runner import comparison

    def entry(driver: str, thr: list[float], p50: list[float]) -> dict[str, Any]:
        return {"driver": driver, "workload": "call",
                "rounds": [{"throughput_per_s": t, "p50_ms": p, "p99_ms": None}
                           for t, p in zip(thr, p50, strict=True)]}

    # The machine got twice as fast after round 2; per-round ratios do not care.
    base = entry("ceiling", [100, 100, 200, 200, 200], [1.0, 1.0, 0.5, 0.5, 0.5])
    mine = entry("reference", [90, 80, 180, 190, 100], [1.1, 1.2, 0.55, 0.6, 0.5])
    cmp_ = comparison([base, mine], "ceiling", yardstick=True)
    assert cmp_["baseline"] == "ceiling" and cmp_["yardstick"] is True
    ratio = next(r for r in cmp_["ratios"] if r["driver"] == "reference")
    assert ratio["rounds"] == 5
    assert ratio["throughput"] == 0.9  # median of 0.9, 0.8, 0.9, 0.95, 0.5
    assert ratio["throughput_spread"] == [0.8, 0.9]  # nearest-rank p25 and p75
    assert ratio["p50"] == 1.1 and ratio["p50_spread"] == [1.1, 1.2]
    assert ratio["p99"] is None and ratio["p99_spread"] is None


def test_the_ceiling_is_the_baseline_wherever_it_stands() -> None:
    from driver_conformance.bench.runner import Subject, render_table, run_bench
    from driver_conformance.plugins.ceiling import CeilingAdapter

    registry = AdapterRegistry(make_plugin_manager())
    subjects = [Subject(label="reference", adapter=ReferenceAdapter(), url="reference://",
                        registry=registry),
                Subject(label="ceiling", adapter=CeilingAdapter(), url="ceiling://",
                        registry=registry)]
    doc = run_bench(subjects, SHORT, rounds=2, only=["call", "cast"])
    assert doc["comparison"]["baseline"] == "ceiling" and doc["comparison"]["yardstick"]
    assert [d["yardstick"] for d in doc["drivers"]] == [False, True]
    for r in doc["results"]:
        assert r["status"] == "ok" and r["accounting"]["lost"] == 0, r
        assert len(r["rounds"]) == 2 and all(x["throughput_per_s"] for x in r["rounds"])
    ratio = next(r for r in doc["comparison"]["ratios"]
                 if r["driver"] == "reference" and r["workload"] == "call")
    assert ratio["rounds"] == 2 and ratio["throughput"] > 0 and ratio["cpu"] > 0
    assert len(ratio["throughput_spread"]) == 2
    assert all(x["cpu_us_per_msg"] > 0 for r in doc["results"] for x in r["rounds"])
    table = render_table(doc)
    assert "ratios to ceiling (the yardstick" in table and "[" in table
    assert "add --driver=ceiling" not in table


def test_the_ceiling_is_loudly_not_a_conformant_driver() -> None:
    """It copies (the public API relies on it) but keeps nothing for absent listeners."""
    import oslo_messaging
    from oslo_config import cfg

    from driver_conformance.bench import ceiling
    from driver_conformance.plugins.ceiling import CeilingAdapter

    adapter = CeilingAdapter()
    assert "NOT a conformant driver" in adapter.description
    assert "not** a conformant driver" in (ceiling.__doc__ or "")
    conf = cfg.ConfigOpts()
    with adapter.backend(adapter.default_url, "bench-test") as backend:
        driver = adapter.make_driver(conf, backend.url, default_exchange="x",
                                     allowed_remote_exmods=[])
        bare = adapter.make_driver(conf, backend.url + "?copy=no", default_exchange="x",
                                   allowed_remote_exmods=[])
        try:
            tgt = oslo_messaging.Target(topic="t", server="s")
            driver.send_notification(oslo_messaging.Target(topic="n.info"), {}, {"early": 1},
                                     2.0)  # nobody listens yet: dropped, not stored
            got: list[Any] = []
            arrived = threading.Semaphore(0)
            driver.listen(tgt, 1, None).start(lambda batch: (got.extend(batch),
                                                             arrived.release()))
            driver.listen_for_notifications([(oslo_messaging.Target(topic="n"), "info")],
                                            None, 1, None).start(
                lambda batch: (got.extend(batch), arrived.release()))
            sent = {"args": {"n": [1]}}
            driver.send(oslo_messaging.Target(topic="t"), {}, sent)
            assert arrived.acquire(timeout=5)
            assert got[0].message == sent and got[0].message is not sent  # a copy
            bare.send(oslo_messaging.Target(topic="t"), {}, sent)
            assert arrived.acquire(timeout=5)
            assert got[1].message is sent  # ?copy=no: the very same dict
            assert not arrived.acquire(timeout=0.2)  # the early notification is gone
        finally:
            bare.cleanup()
            driver.cleanup()


def test_profile_is_off_unless_asked_and_groups_by_package() -> None:
    from driver_conformance.bench.profile import by_package, cpu_profile

    with cpu_profile(False) as report:
        pass
    assert report == []

    class Func:
        def __init__(self, module: str, tsub: float) -> None:
            self.module, self.tsub = module, tsub

    text = by_package([Func("/x/driver_conformance/reference/broker.py", 3.0),
                       Func("/x/oslo_messaging/rpc/server.py", 1.0), Func("", 0.0)])
    assert text.splitlines()[1].split()[:2] == ["reference", "driver"]
    assert "75.0%" in text


def test_cli_prints_the_table_and_writes_json(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    rc = bench_cli.main(["--driver=reference", "--driver=reference", "--workload=call",
                         "--duration=0.2", "--warmup=0", "--json", str(out), "--check"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "p99.9 ms" in table and "reference'" in table  # second subject kept apart
    doc = json.loads(out.read_text())
    assert doc["kind"] == KIND and len(doc["results"]) == 2
    assert bench_cli.main(["--driver=nope"]) == bench_cli.EXIT_USAGE
    assert bench_cli.main(["--workload=nope", "--driver=reference"]) == bench_cli.EXIT_USAGE
    assert bench_cli.main([]) == bench_cli.EXIT_USAGE


def test_add_parser_plugs_into_the_driver_conformance_command() -> None:
    parser = argparse.ArgumentParser(prog="driver-conformance")
    bench_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", "--driver=reference", "--driver=fake",
                              "--transport-url=rabbit://guest:guest@127.0.0.1:5672/"])
    assert args.driver == ["reference", "fake"] and args.func is bench_cli.cmd_bench


def minimal_run_report() -> dict[str, Any]:
    """A conformance report of one passing driver, as `pytest --report-json` writes it."""
    from driver_conformance.catalog import load_catalog
    from driver_conformance.report import document
    from driver_conformance.results import ClauseResult, ScenarioResult

    results = [ClauseResult.of(c, [ScenarioResult(f"t_{c.id}", [c.id], "pass", 0.01, "")])
               for c in load_catalog()]
    return document.build_document(
        clauses=document.clause_entries(results),
        certify=False, run={
            **document.environment(), "adapter": "reference",
            "adapter_package": {"name": None, "version": None}, "driver": "reference",
            "driver_package": {"name": "reference", "version": "1"}, "broker_version": None,
            "transport_url": "reference://", "time_scale": 1.0, "hypothesis_seed": None,
            "capabilities": None, "facts": {}, "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:01:00+00:00", "duration": 60.0, "workers": 1,
            "selection": {"clause_patterns": [], "keyword": None, "markexpr": None,
                          "deselected": 0},
            "error": None, "exit_status": None})


def fake_bench() -> dict[str, Any]:
    """A bench document with a lossy driver, without running anything."""
    def entry(driver: str, workload: str, thr: float, p99: float, lost: int) -> dict[str, Any]:
        acc = Accounting(sent=100, expected=100, received=100 - lost, unique=100 - lost)
        return {"driver": driver, "workload": workload, "status": "ok", "errors": [],
                "throughput_per_s": thr, "accounting": acc.as_dict(),
                "latency_ms": {**summarize([p99 / 1e3]), "p99": p99}}

    results = [entry("reference", "cast", 5000.0, 3.0, 0),
               entry("<lossy>", "cast", 9000.0, 1.0, 40)]
    return {"kind": KIND, "schema_version": SCHEMA_VERSION, "results": results,
            "run": {"finished_at": "2026-01-01T00:00:00+00:00", "wall_s": 1.0,
                    "settings": {"duration": 2.0}},
            "drivers": [], "comparison": {"baseline": "reference", "ratios": []}}


def test_report_accepts_bench_documents_beside_run_reports(tmp_path: Path) -> None:
    from driver_conformance.report import cli as report_cli

    run_doc = minimal_run_report()
    run_path = tmp_path / "run.json"
    run_path.write_text(json.dumps(run_doc))
    bench_path = tmp_path / "bench.json"
    bench_path.write_text(json.dumps(fake_bench()))
    html_path = tmp_path / "page.html"
    assert report_cli.main([str(run_path), str(bench_path), "--html", str(html_path)]) == 0
    page = html_path.read_text()
    assert 'id="performance"' in page and "<svg" in page and 'id="matrix"' in page
    assert "&lt;lossy&gt;" in page and "<lossy>" not in page  # escaped
    assert "40 lost" in page  # a fast lossy driver carries its losses next to its bar
    assert "http" not in page.split('id="performance"')[1].split("</section>")[0].replace(
        "http://www.w3.org/2000/svg", "")
    # bench documents alone: the Markdown table, no matrix
    md = tmp_path / "bench.md"
    assert report_cli.main([str(bench_path), "--markdown", str(md)]) == 0
    assert "| cast | <lossy> |" in md.read_text()
    assert report_cli.main([str(bench_path), "--check"]) == report_cli.EXIT_USAGE
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**fake_bench(), "schema_version": "2.0"}))
    assert report_cli.main([str(future)]) == report_cli.EXIT_USAGE
    assert bench_render.is_bench(fake_bench())


def test_progress_line_only_on_a_terminal() -> None:
    import io

    from driver_conformance.bench.runner import ProgressLine

    quiet = io.StringIO()
    ProgressLine(3, stream=quiet)("anything")  # StringIO is not a terminal
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    line = ProgressLine(4, stream=shown, enabled=True)
    line.step()
    line("reference cast measuring")
    line.close()
    text = shown.getvalue()
    assert text.startswith("\r[#####") and "1/4" in text and text.endswith("\r")
