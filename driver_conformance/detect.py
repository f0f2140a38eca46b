"""``driver-conformance detect``: run the suite against every broken variant.

A negative control is only worth something if the suite catches it *by the
right clause*.  For each variant of :mod:`driver_conformance.broken` this
runs pytest in a subprocess (``--driver=broken-<variant>``), by default
restricted to the clause the variant breaks (``--full`` runs the whole
suite), and prints the detection table: variant, expected clause, caught or
not, clauses failed.  Alongside, the same selection runs on the unbroken
reference (the baseline): it must pass, or a variant failing a scenario
proves nothing.  The exit status is 0 when the baseline passed and every
variant was caught, 1 otherwise, 4 for a bad option
(:class:`~driver_conformance.exitcodes.ExitCode`).

What failed is read from each run's ``--report-json`` document, the same
results pipeline the terminal summary and the report use: a clause failed
when some scenario judged it failed (:mod:`driver_conformance.judging`).

In clause mode the model-based scenario (marked ``model``) is left out:
shrinking a failing example takes most of a minute; ``--full`` keeps it.

The subprocesses run in a scratch directory holding a ``conftest.py`` that
registers the broken adapters with the kit.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver_conformance.exitcodes import ExitCode
from driver_conformance.outcomes import FAILING

if TYPE_CHECKING:  # the variants import oslo.messaging: only when a run needs them
    from driver_conformance.broken.variants import Variant

#: Exit statuses of a run that finished normally: compliant, non-compliant, too many
#: warnings, and "verdict unknown" (the usual one when only some clauses ran).
FINISHED_EXITS = frozenset({0, 1, 6, 7})
#: Longest a single variant's run may take before it counts as hung, in seconds.
RUN_TIMEOUT = 300.0
#: Selects all but the model-based scenario (see the module docstring).
NOT_MODEL = "not model"

CONFTEST = '''\
"""Written by `driver-conformance detect`: the broken variants, as adapters."""

from driver_conformance.broken import conformance_adapters  # noqa: F401  (kit hook)
'''


@dataclasses.dataclass
class Detection:
    """What one variant's run showed."""

    variant: Variant
    exit_code: int | None = None
    #: Clauses with at least one failed (or erroring) scenario, sorted.
    failed: list[str] = dataclasses.field(default_factory=list)
    #: Failed scenarios, by node id.
    failed_scenarios: list[str] = dataclasses.field(default_factory=list)
    #: Scenarios that ran (any outcome of their call phase).
    ran: int = 0
    duration: float = 0.0
    #: Why the run itself went wrong (usage error, hang), if it did.
    problem: str = ""

    @property
    def caught(self) -> bool:
        return self.variant.clause in self.failed

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant.name, "adapter": self.variant.adapter_name,
                "expected_clause": self.variant.clause, "caught": self.caught,
                "clauses_failed": self.failed, "failed_scenarios": self.failed_scenarios,
                "scenarios_run": self.ran, "exit_code": self.exit_code,
                "duration": round(self.duration, 2), "problem": self.problem}


def write_workdir(path: Path) -> Path:
    """Put the conftest that registers the broken adapters (and the recorder) in ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    return path


def pytest_command(adapter: str, clauses: Sequence[str] | None, *, time_scale: float = 1.0,
                   extra: Sequence[str] = ()) -> list[str]:
    """The pytest command line that judges ``clauses`` (all when None) on ``adapter``."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
           "-q", "--no-header", "-rN", f"--driver={adapter}", f"--time-scale={time_scale:g}"]
    cmd.extend(f"--clause={c}" for c in clauses or ())
    if clauses is not None:
        cmd.extend(["-m", NOT_MODEL])
    cmd.extend(extra)
    return cmd


def read_report(doc: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """(failed clauses, failed scenario ids, scenarios run) from a run's report document."""
    failed: list[str] = []
    failed_ids: list[str] = []
    ran: set[str] = set()
    for clause in doc.get("clauses", []):
        for scenario in clause.get("scenarios", []):
            if scenario.get("scenario_outcome") in ("pass", "fail", "xfail", "xpass"):
                ran.add(scenario["nodeid"])
            if scenario.get("outcome") in FAILING:
                if clause["id"] not in failed:
                    failed.append(clause["id"])
                if scenario["nodeid"] not in failed_ids:
                    failed_ids.append(scenario["nodeid"])
    return sorted(failed), failed_ids, len(ran)


def run_variant(variant: Variant, workdir: Path, *, full: bool = False,
                time_scale: float = 1.0, timeout: float = RUN_TIMEOUT,
                extra: Sequence[str] = ()) -> Detection:
    """Run the suite against ``variant`` in a subprocess; see the module docstring."""
    return run_adapter(Detection(variant), variant.adapter_name,
                       None if full else [variant.clause], workdir, time_scale=time_scale,
                       timeout=timeout, extra=extra)


def run_baseline(variants: Sequence[Variant], workdir: Path, *, full: bool = False,
                 time_scale: float = 1.0, timeout: float = RUN_TIMEOUT,
                 extra: Sequence[str] = ()) -> Detection:
    """Run the same selection on the unbroken reference: it must fail nothing."""
    from driver_conformance.broken import Variant, WrappedDriver

    clauses = None if full else sorted({v.clause for v in variants})
    control = Variant("(reference)", "-", "the unbroken reference driver", WrappedDriver)
    return run_adapter(Detection(control), "reference", clauses, workdir,
                       time_scale=time_scale, timeout=timeout, extra=extra)


def run_adapter(det: Detection, adapter: str, clauses: Sequence[str] | None, workdir: Path,
                *, time_scale: float, timeout: float, extra: Sequence[str]) -> Detection:
    """Run ``clauses``' scenarios on ``adapter`` in a subprocess and fill ``det`` in."""
    fd, report_name = tempfile.mkstemp(prefix=f"{adapter}-", suffix=".json", dir=workdir)
    os.close(fd)
    report = Path(report_name)
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            pytest_command(adapter, clauses, time_scale=time_scale,
                           extra=[*extra, f"--report-json={report}"]),
            cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
            check=False)
        det.exit_code = proc.returncode
        if proc.returncode not in FINISHED_EXITS:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            det.problem = f"pytest exited with {proc.returncode}: " + " | ".join(tail)
    except subprocess.TimeoutExpired:
        det.problem = f"the run did not finish within {timeout:.0f}s"
    det.duration = time.monotonic() - started
    try:
        text = report.read_text(encoding="utf-8")
        if text.strip():
            det.failed, det.failed_scenarios, det.ran = read_report(json.loads(text))
    finally:
        report.unlink(missing_ok=True)
    if det.ran == 0 and not det.problem:
        det.problem = "no scenario of the clause ran"
    return det


def detect(variants: Sequence[Variant], *, full: bool = False, jobs: int = 2,
           time_scale: float = 1.0, extra: Sequence[str] = (), baseline: bool = True,
           workdir: Path | None = None) -> tuple[Detection | None, list[Detection]]:
    """Run every variant (``jobs`` at a time) and, unless told not to, the baseline.

    Returns the baseline's result (None when not run) and the variants' in the
    order of ``variants``.
    """
    options: dict[str, Any] = {"full": full, "time_scale": time_scale, "extra": extra}
    with tempfile.TemporaryDirectory(prefix="dc-detect-") as tmp:
        where = write_workdir(workdir or Path(tmp))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            base = pool.submit(run_baseline, variants, where, **options) if baseline else None
            futures = [pool.submit(run_variant, v, where, **options) for v in variants]
            return (base.result() if base else None), [f.result() for f in futures]


def format_baseline(base: Detection) -> str:
    """One line: whether the unbroken reference passed the selection the variants ran."""
    if base.failed or base.problem:
        return (f"baseline: the unbroken reference FAILED {len(base.failed_scenarios)} "
                f"scenario(s) of clauses {', '.join(base.failed) or '-'}"
                + (f" ({base.problem})" if base.problem else "")
                + "; detections above are not meaningful")
    return f"baseline: the unbroken reference passed all {base.ran} scenarios run"


def format_table(detections: Sequence[Detection]) -> str:
    """The detection table, one variant a row, and a summary line."""
    headers = ("variant", "expected clause", "caught", "clauses failed")
    rows = []
    for d in detections:
        failed = ", ".join(d.failed) or "-"
        if d.problem:
            failed += f"  ({d.problem})"
        rows.append((d.variant.name, d.variant.clause, "yes" if d.caught else "NO", failed))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers[:3])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:3], widths, strict=True))
             + "  " + headers[3]]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(headers[3]))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
                     + "  " + row[3])
    caught = sum(d.caught for d in detections)
    lines.append(f"{caught}/{len(detections)} variants caught by their clause")
    return "\n".join(lines)


def cmd_detect(args: argparse.Namespace) -> int:
    from driver_conformance.broken import select

    variants = select(args.variant)
    if not variants:
        print(f"driver-conformance detect: no variant matches {args.variant}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if args.list:
        width = max(len(v.name) for v in variants)
        for v in variants:
            print(f"{v.name:<{width}}  {v.clause}\n{'':<{width}}  {v.description}")
        return 0
    started = time.monotonic()
    extra = ["-x"] if args.exitfirst else []
    base, detections = detect(variants, full=args.full, jobs=args.jobs,
                              time_scale=args.time_scale, baseline=args.baseline, extra=extra)
    print(format_table(detections))
    if base is not None:
        print(format_baseline(base))
    print(f"({'whole suite' if args.full else 'clause scenarios only'}, "
          f"{time.monotonic() - started:.1f}s)")
    if args.json:
        data = {"baseline": base.as_dict() if base else None,
                "variants": [d.as_dict() for d in detections]}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    baseline_ok = base is None or not (base.failed or base.problem)
    caught = baseline_ok and all(d.caught for d in detections)
    return ExitCode.COMPLIANT if caught else ExitCode.NON_COMPLIANT


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``detect`` subcommand to the ``driver-conformance`` command's subparsers."""
    p = subparsers.add_parser(
        "detect", help="run the suite against every broken variant of the reference driver "
                       "and print which clauses caught each")
    p.add_argument("--full", action="store_true",
                   help="run the whole suite per variant, not only its clause's scenarios")
    p.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                   help="variants run in parallel (default 2)")
    p.add_argument("--variant", action="append", default=[], metavar="GLOB",
                   help="only the variants matching GLOB (repeatable)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                   help="passed on to each run (slow machines)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("-x", "--exitfirst", action="store_true",
                   help="end each run at its first failed scenario (faster; the table then "
                        "shows that scenario's clauses only)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="do not run the same selection on the unbroken reference first")
    p.add_argument("--list", action="store_true",
                   help="list the variants and the clause each breaks; run nothing")
    p.set_defaults(func=cmd_detect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m driver_conformance.detect`` (the same as ``driver-conformance detect``)."""
    parser = argparse.ArgumentParser(prog="driver-conformance")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(main())
