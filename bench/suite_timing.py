"""Time the conformance suite against a driver: wall time, failures, slowest scenarios.

Usage::

    python bench/suite_timing.py --driver=reference --runs=30

Each run is a fresh ``pytest`` process in an empty directory, as a user would
start it; the script prints each run's wall time and outcome counts, then the
slowest ten scenarios (by their median call+setup+teardown time across runs).
It exits 1 if any run had a failure, so it doubles as the flakiness check.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def one_run(driver: str, extra: list[str], workdir: Path, index: int) -> tuple[float, dict, dict]:
    junit = workdir / f"run-{index}.xml"
    cmd = [sys.executable, "-m", "pytest", f"--driver={driver}", "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    counts: collections.Counter[str] = collections.Counter()
    durations: dict[str, float] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            durations[name] = float(case.get("time", 0))
            kinds = {child.tag for child in case}
            outcome = ("failed" if kinds & {"failure", "error"} else
                       "skipped" if "skipped" in kinds else "passed")
            counts[outcome] += 1
    if proc.returncode not in (0, 1):
        counts["exit"] = proc.returncode
    if counts["failed"]:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        print(f"run {index}: failures\n{tail}", file=sys.stderr)
    return wall, dict(counts), durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", default="reference")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    per_test: dict[str, list[float]] = collections.defaultdict(list)
    walls, failed_runs = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, args.runs + 1):
            wall, counts, durations = one_run(args.driver, args.pytest_args, Path(tmp), i)
            walls.append(wall)
            failed_runs += bool(counts.get("failed") or counts.get("exit"))
            for name, d in durations.items():
                per_test[name].append(d)
            print(f"run {i:>2}: {wall:6.2f}s wall  " +
                  "  ".join(f"{k}={v}" for k, v in sorted(counts.items())), flush=True)
    print(f"\n{args.runs} run(s) of --driver={args.driver}: wall min {min(walls):.2f}s, "
          f"median {statistics.median(walls):.2f}s, max {max(walls):.2f}s; "
          f"runs with failures: {failed_runs}")
    print("\nslowest ten scenarios (median seconds across runs):")
    slowest = sorted(per_test.items(), key=lambda kv: statistics.median(kv[1]), reverse=True)
    for name, times in slowest[:10]:
        print(f"  {statistics.median(times):6.2f}s  {name}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
