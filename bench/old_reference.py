#!/usr/bin/env python
"""Install an older revision's reference driver beside the current one, to bench them together.

Ratios to the yardstick are comparable across runs, but a before/after
comparison is best measured in one interleaved run.  This script copies
``driver_conformance/reference`` as it was at ``--rev`` into ``--out`` as
a package named ``refbefore`` (its imports rewritten), with the metadata
that registers it as the oslo.messaging driver ``refbefore``.  Put ``--out``
on ``PYTHONPATH`` and it is one more subject of the bench::

    python bench/old_reference.py --rev 3ebaf6b --out /tmp/refbefore
    PYTHONPATH=/tmp/refbefore driver-conformance bench --driver=reference \\
        --driver=ceiling --transport-url=refbefore:/// --rounds=16 --duration=32

It is shown as ``url:refbefore``.  Nothing is installed in the environment.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "driver_conformance/reference"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rev", required=True, help="git revision of the older reference")
    parser.add_argument("--out", required=True, type=Path, help="directory to create")
    parser.add_argument("--name", default="refbefore", help="package and URL scheme")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "--name-only",
                              f"{args.rev}:{PACKAGE}"], capture_output=True, text=True,
                             check=True).stdout.split()
    target = args.out / args.name
    if args.out.exists():
        shutil.rmtree(args.out)
    target.mkdir(parents=True)
    for name in listing:
        if not name.endswith(".py"):
            continue
        text = subprocess.run(["git", "-C", str(repo), "show", f"{args.rev}:{PACKAGE}/{name}"],
                              capture_output=True, text=True, check=True).stdout
        (target / name).write_text(text.replace("driver_conformance.reference", args.name),
                                   "utf-8")
    info = args.out / f"{args.name}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {args.name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        f"[oslo.messaging.drivers]\n{args.name} = {args.name}.driver:ReferenceDriver\n")
    print(f"{args.out}: the reference of {args.rev} as the driver {args.name}://")
    return 0


if __name__ == "__main__":
    sys.exit(main())
