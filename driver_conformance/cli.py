"""The ``driver-conformance`` command: the catalog, the adapters, and the tools around a run."""

from __future__ import annotations

import argparse
import collections
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from driver_conformance.catalog import LEVELS, load_catalog
from driver_conformance.drivers import quiet_import_oslo_messaging
from driver_conformance.exitcodes import ExitCode

EXIT_USAGE = ExitCode.USAGE_ERROR


def scenario_counts() -> collections.Counter[str]:
    """How many scenarios (collected test items, parametrized cases included) name each clause.

    Counted by letting pytest collect the installed scenarios, so clause marks
    given on ``pytest.param`` cases count exactly as pytest will run them.
    """
    import contextlib
    import io
    import tempfile
    from pathlib import Path

    import pytest

    from driver_conformance.collection import SCENARIOS_DIR
    from driver_conformance.stash import clause_ids

    class Counter:
        counts: collections.Counter[str] = collections.Counter()

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
            for item in items:
                self.counts.update(set(clause_ids(item)))

    counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp, "pytest.ini")
        ini.write_text("[pytest]\n")
        args = ["--collect-only", "-qq", "-p", "no:cacheprovider", "-c", str(ini),
                "--rootdir", tmp, "--driver=reference", str(SCENARIOS_DIR)]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            pytest.main(args, plugins=[counter])
    return counter.counts


def cmd_clauses(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    counts = scenario_counts()
    clauses = list(catalog)
    if args.level:
        clauses = [c for c in clauses if c.level == args.level.upper()]
    width = max(len(c.id) for c in catalog)
    for clause in clauses:
        print(f"{clause.id:<{width}}  {clause.level:<8}  scenarios={counts[clause.id]}")
        if args.verbose:
            print(textwrap.indent(textwrap.fill(clause.text, 90), "    "))
            print(textwrap.indent(textwrap.fill(f"why {clause.level}: {clause.why}", 90),
                                  "    "))
    by_level = collections.Counter(c.level for c in clauses)
    print(f"{len(clauses)} clauses: " + ", ".join(f"{by_level[lv]} {lv}" for lv in LEVELS))
    return 0


def registry_seen_from(paths: Sequence[str]):
    """The adapters ``pytest --driver=...`` would see, run here with ``paths``.

    pytest is started in-process only as far as its configuration (which
    loads the ``conftest.py`` files a run loads at start-up: the rootdir's
    and those of the given directories), then stopped: nothing is collected.
    """
    import contextlib
    import io

    import pytest

    from driver_conformance.registry import registry_for_pytest

    class Grab:
        registry: Any = None
        error: str | None = None

        @pytest.hookimpl(trylast=True)
        def pytest_configure(self, config: pytest.Config) -> None:
            try:
                Grab.registry = registry_for_pytest(config.pluginmanager)
            except Exception as exc:  # a bad adapter package: one line, below
                Grab.error = str(exc)
            pytest.exit("adapters listed", returncode=0)

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = pytest.main(["-p", "no:cacheprovider", *paths], plugins=[Grab()])
    if Grab.error:
        raise LookupError(Grab.error)
    if Grab.registry is None:
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        raise LookupError(f"pytest could not start here (exit {int(code)}): "
                          + (lines[-1] if lines else "no output"))
    return Grab.registry


def cmd_list(args: argparse.Namespace) -> int:
    from driver_conformance.urls import mask_url

    try:
        registry = registry_seen_from(args.paths)
    except LookupError as exc:
        print(f"driver-conformance list: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, adapter in registry.items():
        print(f"{name:<14} {adapter.description}")
        url = mask_url(adapter.default_url) or "(give --transport-url)"
        print(f"{'':<14} default url: {url}; "
              f"from {registry.origin(name)}")
        if adapter.default_url and args.capabilities:
            caps = adapter.get_capabilities(adapter.default_url).as_dict()
            print(f"{'':<14} capabilities: " + ", ".join(f"{k}={v}" for k, v in caps.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driver-conformance",
        description="Conformance test kit for oslo.messaging transport drivers. "
                    "Run the suite with `pytest --driver=NAME`.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("clauses", help="print the clause catalog")
    p.add_argument("--level", choices=[lv.lower() for lv in LEVELS] + list(LEVELS))
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show each clause's sentence and why it has its level")
    p.set_defaults(func=cmd_clauses)
    p = sub.add_parser("list", help="list the adapters a run from here finds, and their "
                                    "capabilities (installed ones and conftest.py ones)")
    p.add_argument("paths", nargs="*", metavar="DIR",
                   help="directories a run would be given (their conftest.py files count)")
    p.add_argument("--no-capabilities", dest="capabilities", action="store_false",
                   help="do not build drivers to show capabilities")
    p.set_defaults(func=cmd_list)
    from driver_conformance.report.cli import add_parser as add_report_parser

    add_report_parser(sub)
    from driver_conformance.detect import add_parser as add_detect_parser

    add_detect_parser(sub)
    from driver_conformance import expectations

    expectations.add_parser(sub)
    from driver_conformance.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; no process-wide side effect (tests call it in-process)."""
    # Adapters import oslo.messaging, whose dependencies warn at import time.
    quiet_import_oslo_messaging()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else 0
    return args.func(args)


def console() -> None:
    """The ``driver-conformance`` console script: :func:`main` as a Unix tool.

    ``driver-conformance clauses | head`` should end quietly: the default
    SIGPIPE action ends the process when the reader goes away.  That is a
    process-wide setting, so only the command's own process makes it, never
    :func:`main` (a test calling it would then be killed by the next write
    to a closed socket).
    """
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    console()
