"""The ``driver-conformance`` command: the catalog, the adapters, and the tools around a run."""

from __future__ import annotations

import argparse
import collections
import sys
import textwrap
from collections.abc import Sequence

from driver_conformance.catalog import LEVELS, load_catalog

EXIT_USAGE = 4


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

    from driver_conformance.plugin import SCENARIOS_DIR, clause_ids

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
    by_level = collections.Counter(c.level for c in clauses)
    print(f"{len(clauses)} clauses: " + ", ".join(f"{by_level[lv]} {lv}" for lv in LEVELS))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from driver_conformance.registry import AdapterRegistry, make_plugin_manager
    from driver_conformance.urls import mask_url

    registry = AdapterRegistry(make_plugin_manager())
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
    p.add_argument("-v", "--verbose", action="store_true", help="show each clause's sentence")
    p.set_defaults(func=cmd_clauses)
    p = sub.add_parser("list", help="list the adapters found and their capabilities")
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
    import signal

    # `driver-conformance clauses | head` should end quietly, like any Unix tool.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
