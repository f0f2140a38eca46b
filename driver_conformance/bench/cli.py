"""``driver-conformance bench``: the command line of the benchmark.

Wired into the ``driver-conformance`` command by :func:`add_parser`.  Drivers
are chosen exactly as for ``pytest --driver`` (adapters by name, or any
installed driver by ``--transport-url``), so the numbers describe the same
driver, configured the same way, as the conformance verdict beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from driver_conformance.exitcodes import ExitCode

#: Bad arguments, unknown driver, unwritable output.
EXIT_USAGE = ExitCode.USAGE_ERROR
#: Some workload erred, lost, duplicated or misrouted messages.
EXIT_PROBLEMS = ExitCode.NON_COMPLIANT


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command to the ``driver-conformance`` parser."""
    from driver_conformance.bench.settings import Settings

    d = Settings()
    p = subparsers.add_parser(
        "bench", help="measure drivers' latency, throughput and message accounting",
        description="Benchmark one or more drivers through the public oslo.messaging API: "
                    "RPC call latency, cast and fanout throughput, notifications with and "
                    "without pools; every message accounted for.  Several --driver options "
                    "are compared, interleaved, with ratios to the yardstick "
                    "(--driver=ceiling, the thinnest driver the public API works with; "
                    "not a real driver) or else to the first driver.")
    p.add_argument("--driver", metavar="NAME", action="append", default=[],
                   help="adapter to benchmark (repeatable; see `driver-conformance list`)")
    p.add_argument("--transport-url", metavar="URL", action="append", default=[],
                   help="transport URL: with one --driver, that driver's URL; otherwise "
                        "an extra subject tested by URL scheme (repeatable)")
    p.add_argument("--workload", metavar="NAME", action="append", default=[],
                   help="run only this workload (repeatable): call, call-concurrent, "
                        "call-monitor, cast, fanout, notify, notify-pools")
    p.add_argument("--duration", type=float, default=d.duration,
                   help=f"measured seconds per workload and driver (default {d.duration})")
    p.add_argument("--warmup", type=float, default=d.warmup,
                   help=f"warm-up seconds before each measured phase (default {d.warmup})")
    p.add_argument("--count", type=int, default=d.max_messages,
                   help=f"at most this many messages per measured phase "
                        f"(default {d.max_messages})")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help=f"callers of call-concurrent (default {d.concurrency})")
    p.add_argument("--subscribers", type=int, default=d.subscribers,
                   help=f"servers, listeners or pools of the one-way workloads "
                        f"(default {d.subscribers})")
    p.add_argument("--window", type=int, default=d.window,
                   help=f"deliveries in flight before a one-way sender waits "
                        f"(default {d.window})")
    p.add_argument("--rounds", type=int, default=1,
                   help="split each workload into N interleaved rounds (default 1)")
    p.add_argument("--drain", type=float, default=d.drain,
                   help=f"seconds at most to wait for stragglers (default {d.drain})")
    p.add_argument("--json", dest="json_out", metavar="OUT",
                   help="write the bench document (JSON) to OUT ('-' for standard output)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress line on stderr (it is shown only on a terminal anyway)")
    p.add_argument("--profile", action="store_true",
                   help="also print own CPU time by package over all threads (needs yappi; "
                        "slows the run, so read the shares, not the figures)")
    p.add_argument("--check", action="store_true",
                   help=f"exit {EXIT_PROBLEMS} if any workload erred, lost or duplicated")
    p.set_defaults(func=cmd_bench)
    return p


def _subjects(args: argparse.Namespace) -> list[Any]:
    """The drivers to benchmark, from --driver and --transport-url, validated."""
    from driver_conformance import registry as registry_mod
    from driver_conformance.bench.runner import Subject
    from driver_conformance.urls import scheme_of

    registry = registry_mod.AdapterRegistry(registry_mod.make_plugin_manager())
    subjects: list[Subject] = []
    urls = list(args.transport_url)
    if len(args.driver) == 1 and len(urls) == 1:
        pairs = [(args.driver[0], urls.pop())]
    else:
        pairs = [(name, None) for name in args.driver]
    pairs += [(registry_mod.BY_URL, url) for url in urls]
    if not pairs:
        raise ValueError("give at least one --driver or --transport-url")
    for name, url in pairs:
        adapter = registry.get(name)
        url = url or adapter.default_url
        if not url:
            raise ValueError(f"adapter {name!r} has no default URL; give --transport-url")
        adapter.validate_url(url)
        label = name if name != registry_mod.BY_URL else f"url:{scheme_of(url)}"
        while any(s.label == label for s in subjects):
            label += "'"
        subjects.append(Subject(label=label, adapter=adapter, url=url, registry=registry))
    return subjects


def cmd_bench(args: argparse.Namespace) -> int:
    from driver_conformance.drivers import quiet_import_oslo_messaging

    quiet_import_oslo_messaging()
    from driver_conformance.bench.runner import (
        ProgressLine,
        has_problems,
        render_table,
        run_bench,
    )
    from driver_conformance.bench.workloads import Settings, workloads
    from driver_conformance.urls import mask_url

    if args.duration <= 0 or args.warmup < 0 or args.count < 1 or args.rounds < 1 \
            or args.concurrency < 1 or args.subscribers < 1 or args.drain <= 0 \
            or args.window < 1:
        print("error: durations, counts and rounds must be positive", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings(duration=args.duration, warmup=args.warmup, max_messages=args.count,
                        concurrency=args.concurrency, subscribers=args.subscribers,
                        drain=args.drain, window=args.window)
    known = {w.name for w in workloads(settings)}
    unknown = sorted(set(args.workload) - known)
    if unknown:
        print(f"error: unknown workload(s) {', '.join(unknown)}; "
              f"known: {', '.join(sorted(known))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        subjects = _subjects(args)
    except Exception as exc:
        print(f"error: {mask_url(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    from driver_conformance.bench.profile import cpu_profile

    progress = ProgressLine(0, enabled=None if args.progress else False)
    with cpu_profile(args.profile) as profile_report:
        doc = run_bench(subjects, settings, rounds=args.rounds, only=args.workload or None,
                        progress=progress)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.json_out == "-":
        sys.stdout.write(text)
    else:
        sys.stdout.write(render_table(doc))
        for text in profile_report:
            sys.stdout.write(text + "\n")
        if args.json_out:
            target = Path(args.json_out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, "utf-8")
    if args.check and has_problems(doc):
        return EXIT_PROBLEMS
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``bench`` command alone (``python -m driver_conformance.bench.cli``)."""
    parser = argparse.ArgumentParser(prog="driver-conformance")
    add_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else 0
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
