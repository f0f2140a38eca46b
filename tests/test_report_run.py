"""Run reports end to end: real conformance runs, their JSON, and what is rendered from it.

The suite is run in subprocesses against the reference driver (all of it,
under pytest-xdist, and two shards of it) and against a broken variant that
delivers a fanout to one subscriber only.  Every run is given a transport URL
with a password, and the password is then looked for everywhere the run left
text: the terminal, the log file, the JSON, and every rendered report.

The runs are slow (seconds each), so they are made once, concurrently, by a
module-scoped fixture, and each test reads their results.
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import exitcodes
from driver_conformance import report as report_mod
from driver_conformance.catalog import load_catalog
from driver_conformance.report import cli as report_cli
from driver_conformance.report import data as report_data
from driver_conformance.report import render_html

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the kit's test extra")

SECRET = "s3cret-Pa55"
REF_URL = f"reference://conformance:{SECRET}@localhost/"
FANOUT = "send.fanout.all-subscribers"
REPLY = "send.wait-for-reply.returns-reply"
#: The Hypothesis model test names many clauses and is slow against a broken
#: driver; the shards and the broken run leave it out.
NOT_MODEL = "not random_topologies"
SCHEMA_PATH = Path(report_mod.__file__).parent.parent / "report_schema.json"
RUN_TIMEOUT = 300

#: Offers the broken variants as adapters.
SHIM_CONFTEST = '''
from driver_conformance.broken import conformance_adapters  # noqa: F401
'''


class Run:
    """One ``pytest --driver=...`` subprocess and what it left behind."""

    def __init__(self, workdir: Path, name: str, args: list[str]) -> None:
        self.name = name
        self.json_path = workdir / f"{name}.json"
        self.log_path = workdir / f"{name}.log"
        self.args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE",
                     f"--report-json={self.json_path}", f"--log-file={self.log_path}",
                     "--log-file-level=DEBUG", *args]
        self.proc = subprocess.Popen(self.args, cwd=workdir, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        self.ret: int | None = None
        self.stdout = self.stderr = ""

    def wait(self) -> Run:
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, self.stderr = self.proc.communicate()
            raise
        self.ret = self.proc.returncode
        return self

    @property
    def doc(self) -> dict[str, Any]:
        assert self.json_path.exists(), f"{self.name}: no report\n{self.stdout[-3000:]}"
        return json.loads(self.json_path.read_text("utf-8"))

    def texts(self) -> dict[str, str]:
        """Everything the run printed or wrote, by where."""
        out = {"stdout": self.stdout, "stderr": self.stderr}
        for path in (self.json_path, self.log_path):
            if path.exists():
                out[path.name] = path.read_text("utf-8", errors="replace")
        return out

    def explain(self) -> str:
        return f"{self.name}: exit {self.ret}\n{self.stdout[-4000:]}\n{self.stderr[-2000:]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report-runs")
    (path / "conftest.py").write_text(SHIM_CONFTEST)
    return path


@pytest.fixture(scope="module")
def runs(workdir: Path) -> dict[str, Run]:
    """The conformance runs every test here reads, made concurrently."""
    started = [
        Run(workdir, "reference", ["--driver=reference", f"--transport-url={REF_URL}",
                                   "-n", "2"]),
        Run(workdir, "broken", ["--driver=broken-fanout-to-one", f"--transport-url={REF_URL}",
                                f"--clause={FANOUT}", "-k", NOT_MODEL]),
        Run(workdir, "shard-a", ["--driver=reference", f"--transport-url={REF_URL}",
                                 f"--clause={FANOUT}", "-k", NOT_MODEL]),
        Run(workdir, "shard-b", ["--driver=reference", f"--transport-url={REF_URL}",
                                 f"--clause={REPLY}", "-k", NOT_MODEL]),
    ]
    return {run.name: run.wait() for run in started}


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def render(*args: str | Path) -> int:
    """``driver-conformance report ARGS...``, in this process."""
    return report_cli.main([str(a) for a in args])


def clause(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in doc["clauses"] if c["id"] == cid)


# -- the JSON ----------------------------------------------------------------------------
def test_every_report_is_schema_valid_and_lists_every_clause(
        runs: dict[str, Run], validator: Any) -> None:
    catalog_ids = load_catalog().ids()
    for run in runs.values():
        doc = run.doc
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, f"{run.name}: {errors[:5]}"
        assert [c["id"] for c in doc["clauses"]] == catalog_ids
        assert all({"id", "level", "outcome"} <= set(c) for c in doc["clauses"])


def test_run_metadata(runs: dict[str, Run]) -> None:
    from driver_conformance import __version__

    run = runs["reference"].doc["run"]
    assert run["kit_version"] == __version__
    assert run["adapter"] == "reference" and run["driver"] == "reference"
    assert run["driver_package"] == {"name": "driver-conformance", "version": __version__}
    assert run["oslo_messaging_version"] == importlib.metadata.version("oslo.messaging")
    assert run["python"]["version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert run["time_scale"] == 1.0
    assert run["transport_url"] == "reference://conformance:***@localhost/"
    assert run["started_at"] < run["finished_at"]
    assert run["certify"] is False
    # Under xdist the backend runs in the workers only; the controller's report
    # still has what they declared.
    assert run["workers"] == 2
    assert run["capabilities"]["requeue"] is True
    assert run["observed"]["listener style"] in ("poll", "callback")
    assert "outage" in run["capabilities"]["faults"]
    assert run["facts"].get("broker")


def test_scenarios_carry_outcome_duration_and_delivery_counts(runs: dict[str, Run]) -> None:
    doc = runs["reference"].doc
    scenarios = [s for c in doc["clauses"] for s in c["scenarios"]]
    assert scenarios and all(s["reported"] for s in scenarios)
    assert any(s["duration"] > 0 for s in scenarios)
    assert any(s["delivery"] and s["delivery"]["sent"] > 0 for s in scenarios), \
        "no scenario recorded delivery-history counts"
    fanout = runs["broken"].doc
    failed = [s for s in clause(fanout, FANOUT)["scenarios"] if s["outcome"] == "fail"]
    assert failed and all(s["message"] for s in failed)
    assert any("Error" in s["detail"] for s in failed)


def test_exit_status_is_the_verdicts(runs: dict[str, Run]) -> None:
    for run in runs.values():
        doc = run.doc
        assert doc["verdict"] == report_data.verdict_of(doc["clauses"]), run.name
        assert run.ret == exitcodes.for_verdict(doc["verdict"]), run.explain()
        assert doc["run"]["exit_status"] == run.ret
        assert f"exit status {run.ret}: " in run.stdout, run.explain()


def test_terminal_summary_gives_verdict_and_counts_by_level(runs: dict[str, Run]) -> None:
    out = runs["broken"].stdout
    assert "verdict for broken-fanout-to-one" in out and "NON-COMPLIANT" in out
    assert any(line.startswith("MUST") and "clauses:" in line for line in out.splitlines())
    assert f"conformance report: {runs['broken'].json_path}" in out


def test_broken_variant_is_non_compliant(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    doc = run.doc
    assert doc["verdict"] == report_mod.NON_COMPLIANT, run.explain()
    assert run.ret == exitcodes.ExitCode.NON_COMPLIANT
    assert clause(doc, FANOUT)["outcome"] == "fail"
    assert any(FANOUT in reason for reason in doc["verdict_reasons"])


def test_a_partial_run_is_unknown_never_compliant(runs: dict[str, Run]) -> None:
    run = runs["shard-a"]
    doc = run.doc
    assert clause(doc, FANOUT)["outcome"] == "pass", run.explain()
    assert doc["verdict"] == report_mod.UNKNOWN
    assert run.ret == exitcodes.ExitCode.UNKNOWN
    # What did not run is shown as not run, and says why for deselected scenarios.
    not_run = clause(doc, REPLY)
    assert not_run["outcome"] == "not-run"
    assert all(not s["reported"] and s["message"] == "deselected"
               for s in not_run["scenarios"])
    assert doc["run"]["selection"]["clause_patterns"] == [FANOUT]


def test_reference_driver_is_compliant(runs: dict[str, Run]) -> None:
    """The baseline: the whole suite against the reference driver passes."""
    run = runs["reference"]
    doc = run.doc
    assert doc["verdict"] == report_mod.COMPLIANT, \
        f"reference driver not compliant: {doc['verdict_reasons']}"
    assert run.ret == exitcodes.ExitCode.COMPLIANT


# -- passwords ---------------------------------------------------------------------------
def test_the_password_appears_nowhere(runs: dict[str, Run], workdir: Path) -> None:
    assert all(run.log_path.exists() for run in runs.values())
    outputs = {f"{run.name} {where}": text
               for run in runs.values() for where, text in run.texts().items()}
    out = workdir / "rendered"
    paths = [runs[name].json_path for name in runs]
    assert render(*paths, "--html", out / "all.html", "--markdown",
                  out / "all.md") == 0
    for name in ("broken", "reference"):
        assert render(runs[name].json_path, "--badge", out / f"{name}.svg",
                      "--shields", out / f"{name}.json", "--json", out / f"{name}-m.json") == 0
    outputs.update({p.name: p.read_text("utf-8") for p in out.iterdir()})
    leaks = [where for where, text in outputs.items() if SECRET in text]
    assert not leaks, f"password found in {leaks}"
    assert any("conformance:***@localhost" in text for text in outputs.values())


# -- rendering and merging ---------------------------------------------------------------
def test_shards_of_one_driver_merge_into_one_result_per_clause(
        runs: dict[str, Run], workdir: Path, validator: Any) -> None:
    merged_path = workdir / "merged-shards.json"
    shards = [runs["shard-a"].json_path, runs["shard-b"].json_path]
    assert render(*shards, "--json", merged_path) == 0
    merged = json.loads(merged_path.read_text("utf-8"))
    assert not list(validator.iter_errors(merged))
    assert [c["id"] for c in merged["clauses"]] == load_catalog().ids()
    assert clause(merged, FANOUT)["outcome"] == "pass"
    assert clause(merged, REPLY)["outcome"] == "pass"
    for cid in (FANOUT, REPLY):
        nodeids = [s["nodeid"] for s in clause(merged, cid)["scenarios"]]
        assert len(nodeids) == len(set(nodeids)), "a scenario appears twice after merging"
        # A scenario deselected in one shard and run in the other counts as run.
        ran = {s["nodeid"] for r in ("shard-a", "shard-b")
               for s in clause(runs[r].doc, cid)["scenarios"] if s["reported"]}
        assert ran and {s["nodeid"] for s in clause(merged, cid)["scenarios"]
                        if s["reported"]} == ran
    assert len(merged["run"]["sources"]) == 2
    assert merged["verdict"] == report_mod.UNKNOWN  # two shards are not the whole suite
    assert report_cli.main([str(p) for p in shards] + ["--check", "--markdown", "-"]) == 7


def test_matrix_of_reference_and_broken(runs: dict[str, Run], workdir: Path) -> None:
    out = workdir / "matrix"
    ref, broken = runs["reference"], runs["broken"]
    assert render(ref.json_path, broken.json_path, "--html", out / "m.html",
                  "--markdown", out / "m.md") == 0
    md = (out / "m.md").read_text("utf-8")
    assert "| reference " in md and "| broken-fanout-to-one (reference) " in md
    matrix = md[md.index("<details>"):]
    row = next(line for line in matrix.splitlines() if f"| `{FANOUT}` |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2].endswith("pass") and cells[-1].endswith("fail"), row
    assert "NON-COMPLIANT" in md
    html = (out / "m.html").read_text("utf-8")
    for column in (0, 1):
        target = render_html.detail_id(column, FANOUT)
        assert f'href="#{target}"' in html and f'id="{target}"' in html
    assert html.count('class="clause"') == len(load_catalog())
    assert "<script src" not in html and "<link rel=\"stylesheet\"" not in html
    assert "http://" not in html and "https://" not in html


def test_badge_and_shields_endpoint(runs: dict[str, Run], workdir: Path) -> None:
    out = workdir / "badge"
    assert render(runs["broken"].json_path, "--badge", out / "b.svg",
                  "--shields", out / "b.json") == 0
    svg = ET.fromstring((out / "b.svg").read_text("utf-8"))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "non-compliant" in texts
    assert json.loads((out / "b.json").read_text("utf-8")) == {
        "schemaVersion": 1, "label": "oslo.messaging conformance",
        "message": "non-compliant", "color": "red"}
    # One badge is one driver.
    assert render(runs["broken"].json_path, runs["reference"].json_path,
                  "--badge", out / "two.svg") == report_cli.EXIT_USAGE


# -- certification -----------------------------------------------------------------------
def test_certify_refuses_a_selected_subset(workdir: Path) -> None:
    run = Run(workdir, "certify-subset", ["--driver=reference", "--certify",
                                          f"--clause={FANOUT}"]).wait()
    assert run.ret == exitcodes.ExitCode.USAGE_ERROR, run.explain()
    assert "--certify runs the whole suite" in run.stderr


XFAIL_SCENARIO = f'''
import pytest

@pytest.mark.clause("{FANOUT}")
@pytest.mark.xfail(reason="known broken")
def test_excused():
    assert False
'''


def test_certify_refuses_an_expected_failure_and_marks_the_report(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(SHIM_CONFTEST)
    (tmp_path / "test_excuse.py").write_text(XFAIL_SCENARIO)
    run = Run(tmp_path, "certify-xfail", ["--driver=reference", "--certify", "test_excuse.py"]
              ).wait()
    assert run.ret == exitcodes.ExitCode.USAGE_ERROR, run.explain()
    assert "--certify refuses this run" in run.stdout + run.stderr
    doc = run.doc
    cert = doc["certification"]
    assert cert["requested"] and cert["refused"] and not cert["certified"]
    assert any("test_excuse.py::test_excused" in r and "xfail" in r for r in cert["reasons"])
    assert doc["run"]["certify"] is True
    assert doc["verdict"] != report_mod.COMPLIANT


def test_a_run_with_no_results_is_unknown(workdir: Path) -> None:
    run = Run(workdir, "nothing", ["--driver=reference", "-k", "no_scenario_has_this_name"]
              ).wait()
    assert run.ret == pytest.ExitCode.NO_TESTS_COLLECTED, run.explain()
    doc = run.doc
    assert doc["verdict"] == report_mod.UNKNOWN
    assert doc["verdict_reasons"] == ["no scenario reported a result"]


def test_backend_unavailable_keeps_its_exit_code_and_reports_unknown(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(SHIM_CONFTEST)
    run = Run(tmp_path, "unreachable", [f"--transport-url=rabbit://user:{SECRET}@127.0.0.1:1/",
                                        f"--clause={FANOUT}"]).wait()
    assert run.ret == 8, run.explain()
    doc = run.doc
    assert doc["verdict"] == report_mod.UNKNOWN
    assert doc["run"]["error"] and "127.0.0.1:1" in doc["run"]["error"]
    assert not [w for w, text in run.texts().items() if SECRET in text]


# -- the HTML page in a real browser -----------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--no-pings", "--hide-scrollbars",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
]


def chromium(page: Path, *args: str, query: str = "") -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    with tempfile.TemporaryDirectory(prefix="dc-chromium-") as profile:
        return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                               page.as_uri() + query], capture_output=True, text=True,
                              timeout=120)


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked the network stack for, from Chromium's NetLog.

    The browser's own background requests (update checks and the like) have
    no page origin ("not an origin"); a page's requests carry its file:// site.
    """
    log = json.loads(netlog.read_text("utf-8"))
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) == "URL_REQUEST_START_JOB" and "url" in params and (
                params.get("initiator") != "not an origin"
                or "file://" in str(params.get("network_isolation_key", ""))):
            urls.append(params.get("url", "?"))
    return urls


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def open_in_browser(page: Path, tmp: Path) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """Load ``page``: its self-check record, its console messages, its network requests."""
    netlog = tmp / f"{page.stem}.netlog.json"
    result = chromium(page, f"--log-net-log={netlog}", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return (render_html.selfcheck(result.stdout), console_lines(result.stderr),
            page_requests(netlog))


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 0:
            pass
        elif ftype == 2:
            line = bytearray((x + u) & 0xFF for x, u in zip(line, prev, strict=True))
        else:
            line = _unfilter(ftype, line, prev, bpp)
        rows.append(bytes(line) if bpp == 3 else bytes(
            line[j] for j in range(stride) if j % 4 != 3))
        prev = line
    return width, height, rows


def _unfilter(ftype: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    """Undo PNG filter 1 (sub), 3 (average) or 4 (Paeth) on one scanline."""
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        if ftype == 1:
            line[i] = (line[i] + a) & 0xFF
        elif ftype == 3:
            line[i] = (line[i] + (a + b) // 2) & 0xFF
        elif ftype == 4:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + pred) & 0xFF
    return line


def colour_counts(rows: list[bytes]) -> collections.Counter[str]:
    """Pixels per colour, as ``#rrggbb``."""
    counts: collections.Counter[bytes] = collections.Counter()
    for row in rows:
        counts.update(row[i:i + 3] for i in range(0, len(row), 3))
    return collections.Counter({"#" + k.hex(): n for k, n in counts.items()})


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")


@needs_chromium
def test_html_matrix_in_a_headless_browser(runs: dict[str, Run], workdir: Path) -> None:
    out = workdir / "browser"
    page = out / "matrix.html"
    assert render(runs["reference"].json_path, runs["broken"].json_path,
                  "--html", page) == 0
    record, console, requests = open_in_browser(page, out)
    assert record is not None, "the page's self-check never ran (script blocked or broken?)"
    assert record == {"errors": [], "violations": [], "resources": []}
    assert console == []
    assert requests == []

    shot = out / "matrix.png"
    result = chromium(page, "--window-size=1280,2400", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    kept = Path(os.environ.get("DC_REPORT_SCREENSHOT", tempfile.gettempdir())) \
        / "driver-conformance-matrix.png"
    shutil.copyfile(shot, kept)
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1280, 2400)
    assert len(set(rows)) > 100, "the screenshot is (nearly) uniform"
    # The matrix is on screen: cells of both columns, in the outcome colours.
    colours = colour_counts(rows)
    assert len(colours) > 20, "the screenshot has almost no colours"
    passed = colours[render_html.OUTCOME_COLOURS["pass"]]
    failed = colours[render_html.OUTCOME_COLOURS["fail"]]
    not_run = colours[render_html.OUTCOME_COLOURS["not-run"]]
    assert passed > 20_000, f"pass cells not visible ({passed} px), see {kept}"
    assert failed > 1_000 and not_run > 20_000, f"broken column not visible, see {kept}"


@needs_chromium
def test_html_filters_by_level_and_outcome(runs: dict[str, Run], workdir: Path) -> None:
    out = workdir / "browser-filters"
    page = out / "matrix.html"
    assert render(runs["reference"].json_path, runs["broken"].json_path, "--html", page) == 0
    shown = re.compile(r'<tr class="clause"(?![^>]*hidden)[^>]*>')
    everything = chromium(page, "--dump-dom").stdout
    assert len(shown.findall(everything)) == len(load_catalog())
    failures = chromium(page, "--dump-dom", query="?outcome=fail,error").stdout
    rows = shown.findall(failures)
    assert 0 < len(rows) < len(load_catalog()), rows
    assert rows and all(re.search(r'data-outcomes="[^"]*\b(fail|error)\b', r) for r in rows)
    should_only = chromium(page, "--dump-dom", query="?level=SHOULD").stdout
    assert all('data-level="SHOULD"' in r for r in shown.findall(should_only))
    assert f"{len(shown.findall(should_only))} of {len(load_catalog())} clauses shown" \
        in should_only


@needs_chromium
def test_browser_check_catches_network_and_script_errors(
        runs: dict[str, Run], workdir: Path) -> None:
    """Negative control: the checks above do see a leaking, broken page."""
    out = workdir / "browser-control"
    page = out / "bad.html"
    assert render(runs["broken"].json_path, "--html", page) == 0
    text = page.read_text("utf-8").replace(
        "</body>", '<img src="http://127.0.0.1:9/x.png"><script>noSuchFunction();</script>'
        "</body>")
    page.write_text(text.replace('http-equiv="Content-Security-Policy"', 'name="no-csp"'))
    record, console, requests = open_in_browser(page, out)
    assert record is not None
    assert any("noSuchFunction" in e for e in record["errors"])
    assert record["resources"] == ["http://127.0.0.1:9/x.png"]
    assert any("noSuchFunction" in line for line in console)
    assert requests == ["http://127.0.0.1:9/x.png"]


@needs_chromium
def test_configuration_matrix_in_a_headless_browser(tmp_path: Path) -> None:
    """Runs of one driver under two configurations are two columns, not merged, each
    headed by the option that tells it from the other; the page loads clean."""
    (tmp_path / "patient.conf").write_text("[DEFAULT]\nrpc_response_timeout = 30\n")
    (tmp_path / "default.conf").write_text("# the defaults\n")
    reports = []
    for name in ("patient", "default"):
        run = Run(tmp_path, name, ["--driver=reference", f"--oslo-config-file={name}.conf",
                                   f"--clause={FANOUT}", "-k", NOT_MODEL]).wait()
        assert run.ret == exitcodes.ExitCode.UNKNOWN, run.explain()
        reports.append(run.json_path)
    docs = [report_data.load(p) for p in reports]
    assert report_data.labels(docs) == ["reference 0.1.0 [rpc_response_timeout=30]",
                                        "reference 0.1.0 [rpc_response_timeout=default]"], \
        report_data.labels(docs)
    page = tmp_path / "configs.html"
    assert render(*reports, "--html", page) == 0
    html_text = page.read_text("utf-8")
    assert "reference 0.1.0 [rpc_response_timeout=30]" in html_text
    assert "DEFAULT.rpc_response_timeout=30" in html_text  # the card's configuration
    record, console, requests = open_in_browser(page, tmp_path)
    assert record == {"errors": [], "violations": [], "resources": []}
    assert console == [] and requests == []
