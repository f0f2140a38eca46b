"""``driver-conformance report RUN.json...``: render and merge run reports.

Wired into the ``driver-conformance`` command by :func:`add_parser`.  Reports
of the same driver (parallel jobs, shards) are merged clause by clause first
(see :mod:`.merge`); each remaining driver is one column of the HTML matrix
and one row of the Markdown table.  Without any output option the Markdown
summary goes to standard output, which is what a CI step piping into
``$GITHUB_STEP_SUMMARY`` wants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from driver_conformance import report as report_mod
from driver_conformance.exitcodes import ExitCode
from driver_conformance.report import badge, merge, render_html, render_markdown
from driver_conformance.report import data as report_data

#: Bad input (unreadable or foreign file, a badge asked for several drivers).
EXIT_USAGE = ExitCode.USAGE_ERROR


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to the ``driver-conformance`` parser."""
    p = subparsers.add_parser(
        "report", help="render run reports (JSON) as HTML, Markdown and a badge",
        description="Render one or more run reports written by `pytest --report-json`. "
                    "Reports of the same driver are merged clause by clause. "
                    "With no output option, prints the Markdown summary.")
    p.add_argument("reports", nargs="+", metavar="RUN.json",
                   help="run reports to render; bench documents (`driver-conformance bench "
                        "--json`) among them add a performance panel")
    p.add_argument("--html", metavar="OUT", help="write the self-contained HTML page to OUT")
    p.add_argument("--markdown", metavar="OUT",
                   help="write the Markdown summary to OUT ('-' for standard output)")
    p.add_argument("--badge", metavar="OUT.svg", help="write an SVG badge (one driver only)")
    p.add_argument("--shields", metavar="OUT.json",
                   help="write the shields.io endpoint JSON (one driver only)")
    p.add_argument("--json", dest="merged_json", metavar="OUT",
                   help="write the merged report (one driver only) as JSON")
    p.add_argument("--title", default="oslo.messaging driver conformance",
                   help="title of the HTML page and the Markdown summary")
    p.add_argument("--label", default=badge.DEFAULT_LABEL, help="left-hand text of the badge")
    p.add_argument("--check", action="store_true",
                   help="exit with the verdict's code: 0 if every driver is compliant, "
                        "1 if any is non-compliant, 7 otherwise")
    p.set_defaults(func=cmd_report)
    return p


def _write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, "utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    from driver_conformance.bench import render as bench_render

    try:
        benches = [bench_render.load_bench(path) for path in args.reports
                   if bench_render.peek_kind(path) == bench_render.KIND]
        docs = [report_data.load(path) for path in args.reports
                if bench_render.peek_kind(path) != bench_render.KIND]
    except (report_data.BadReport, bench_render.BadBench) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if benches and not docs:
        return _bench_only(args, benches)
    merged = merge.merge_all(docs)
    single = [opt for opt in ("badge", "shields", "merged_json") if getattr(args, opt)]
    if single and len(merged) != 1:
        names = ", ".join(report_data.label(d) for d in merged)
        print(f"error: --{single[0].replace('merged_', '')} needs reports of one driver; "
              f"got {len(merged)}: {names}", file=sys.stderr)
        return EXIT_USAGE
    wrote = False
    if args.html:
        _write(args.html, render_html.render_html(merged, title=args.title, bench=benches))
        wrote = True
    if args.markdown:
        _write(args.markdown, render_markdown.render_markdown(merged, title=args.title))
        wrote = True
    if args.badge:
        _write(args.badge, badge.render_badge(merged[0], label=args.label))
        wrote = True
    if args.shields:
        _write(args.shields, json.dumps(badge.shields_endpoint(merged[0], label=args.label))
               + "\n")
        wrote = True
    if args.merged_json:
        _write(args.merged_json, json.dumps(merged[0], indent=1, ensure_ascii=False) + "\n")
        wrote = True
    if not wrote:
        sys.stdout.write(render_markdown.render_markdown(merged, title=args.title))
        if benches:
            sys.stdout.write("\n" + bench_render.render_markdown(benches))
    if args.check:
        return overall_exit(merged)
    return 0


def _bench_only(args: argparse.Namespace, benches: list[dict[str, Any]]) -> int:
    """Only bench documents were given: the performance panel and table, no matrix."""
    from driver_conformance.bench import render as bench_render

    if any(getattr(args, opt) for opt in ("badge", "shields", "merged_json", "check")):
        print("error: --badge, --shields, --json and --check need a conformance report",
              file=sys.stderr)
        return EXIT_USAGE
    if args.html:
        _write(args.html, render_html.render_html([], title=args.title, bench=benches))
    markdown = bench_render.render_markdown(benches)
    if args.markdown:
        _write(args.markdown, markdown)
    if not args.html and not args.markdown:
        sys.stdout.write(markdown)
    return 0


def overall_exit(docs: list[report_data.Document]) -> int:
    """0 if every driver is compliant, 1 if any is non-compliant, else 7 (unknown)."""
    verdicts = {d["verdict"] for d in docs}
    if report_mod.NON_COMPLIANT in verdicts:
        return ExitCode.NON_COMPLIANT
    if verdicts == {report_mod.COMPLIANT}:
        return ExitCode.COMPLIANT
    return ExitCode.UNKNOWN


def main(argv: list[str] | None = None) -> int:
    """Run the ``report`` command alone (``python -m driver_conformance.report.cli``)."""
    parser = argparse.ArgumentParser(prog="driver-conformance")
    add_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else 0
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
