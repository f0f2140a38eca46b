"""Bench documents in the report: reading them, and the HTML performance panel.

``driver-conformance report`` routes every input file by its ``kind``:
conformance reports go to the matrix as before, bench documents
(:data:`~driver_conformance.bench.KIND`) to the performance panel rendered
here, beside the verdicts.  The panel follows the page's rules: inline SVG,
no external asset, every value escaped, same input same bytes.

Bars are scaled per workload (a call's throughput and a cast's differ by
orders of magnitude; one scale would flatten the calls), and each bar carries
its value.  Losses and duplicates are printed next to the bar in red: a
long bar with losses must not read as a win.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from driver_conformance.bench import KIND, SCHEMA_VERSION

#: Bar colours, one per driver, in order (cycled).
PALETTE = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037")


class BadBench(ValueError):
    """A file claims to be a bench document but cannot be read; one-line message."""


def is_bench(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == KIND


def check_bench(doc: Any, where: str = "bench") -> dict[str, Any]:
    """Raise :class:`BadBench` unless ``doc`` is a bench document of a readable version."""
    if not is_bench(doc):
        raise BadBench(f"{where}: not a driver-conformance bench document")
    version = str(doc.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise BadBench(f"{where}: bench format {version!r} is not readable by this kit")
    if not isinstance(doc.get("results"), list) or not isinstance(doc.get("run"), dict):
        raise BadBench(f"{where}: bench document has no 'run' object or no 'results' list")
    return doc


def peek_kind(path: str | Path) -> str | None:
    """The ``kind`` of the JSON file at ``path``, or None if it cannot be read as JSON."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc.get("kind") if isinstance(doc, dict) else None


def load_bench(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBench(f"{path}: cannot read bench document: {exc}") from None
    return check_bench(doc, str(path))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _rows(benches: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[Any, Any]]:
    """Drivers and workloads in first-seen order, and results keyed by (driver, workload).

    A driver label that appears in several bench documents gets ``#n`` from
    the second document on, so that two runs of one driver sit side by side.
    """
    drivers: list[str] = []
    workloads: list[str] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for n, doc in enumerate(benches):
        seen_here: dict[str, str] = {}
        for r in doc["results"]:
            label = seen_here.get(r["driver"])
            if label is None:
                label = r["driver"]
                if label in drivers:
                    label = f"{label} #{n + 1}"
                seen_here[r["driver"]] = label
                if label not in drivers:
                    drivers.append(label)
            if r["workload"] not in workloads:
                workloads.append(r["workload"])
            by_key[(label, r["workload"])] = r
    return drivers, workloads, by_key


def _chart(title: str, metric: str, unit: str, drivers: list[str], workloads: list[str],
           by_key: dict[Any, Any], lower_is_better: bool) -> str:
    """One horizontal grouped bar chart: a group per workload, a bar per driver."""
    bar, gap, label_w, bar_w, text_w = 14, 10, 130, 300, 190
    height = 24 + len(workloads) * (len(drivers) * bar + gap)
    width = label_w + bar_w + text_w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" class="perf-chart" '
           f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
           f'<text x="0" y="14" font-size="13" font-weight="600">{_e(title)} '
           f'({"lower" if lower_is_better else "higher"} is better)</text>']
    y = 24
    for w in workloads:
        values = [_metric(by_key.get((d, w)), metric) for d in drivers]
        top = max((v for v in values if v is not None), default=0.0) or 1.0
        out.append(f'<text x="0" y="{y + len(drivers) * bar / 2 + 4:.0f}" font-size="12">'
                   f"{_e(w)}</text>")
        for i, (d, v) in enumerate(zip(drivers, values, strict=True)):
            r = by_key.get((d, w))
            length = 0 if v is None else max(1.0, bar_w * v / top)
            colour = PALETTE[i % len(PALETTE)]
            out.append(f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar - 2}" '
                       f'fill="{colour}"><title>{_e(d)}: {_e(_num(v))} {_e(unit)}</title></rect>')
            note = f"{_e(d)} {_e(_num(v))}"
            flags = _flags(r)
            text = (f'<text x="{label_w + length + 4:.1f}" y="{y + bar - 4}" font-size="11">'
                    f"{note}")
            if flags:
                text += f' <tspan fill="#c62828">{_e(flags)}</tspan>'
            out.append(text + "</text>")
            y += bar
        y += gap
    out.append("</svg>")
    return "".join(out)


def _metric(result: dict[str, Any] | None, metric: str) -> float | None:
    if result is None or result.get("status") != "ok":
        return None
    if metric == "throughput":
        return result.get("throughput_per_s")
    return (result.get("latency_ms") or {}).get(metric)


def _flags(result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    if result.get("status") != "ok":
        return str(result.get("status"))
    acc = result.get("accounting") or {}
    parts = [f"{acc[k]} {k}" for k in ("lost", "duplicated", "wrong_replies") if acc.get(k)]
    return ", ".join(parts)


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def render_panel(benches: list[dict[str, Any]]) -> str:
    """The ``<section id="performance">`` of the HTML page (empty string if no bench)."""
    if not benches:
        return ""
    drivers, workloads, by_key = _rows(benches)
    runs = "; ".join(f"{_e(b['run'].get('finished_at', '?'))} "
                     f"({_e(b['run'].get('wall_s', '?'))} s, "
                     f"{_e(b['run'].get('settings', {}).get('duration', '?'))} s per workload)"
                     for b in benches)
    legend = " ".join(f'<span style="color:{PALETTE[i % len(PALETTE)]}">&#9632;</span> '
                      f"{_e(d)}" for i, d in enumerate(drivers))
    problems = [f"<li>{_e(d)} {_e(w)}: {_e(_flags(by_key[(d, w)]))}</li>"
                for w in workloads for d in drivers
                if (d, w) in by_key and _flags(by_key[(d, w)])]
    parts = [
        '<section id="performance"><h2>Performance</h2>',
        f'<p class="muted">bench run(s): {runs}. Throughput counts only messages delivered '
        "(calls answered correctly); call latency is the round trip, other latencies run "
        "from send to endpoint.</p>",
        f"<p>{legend}</p>",
        _chart("Throughput, messages/s", "throughput", "msg/s", drivers, workloads, by_key,
               lower_is_better=False),
        _chart("p99 latency, ms", "p99", "ms", drivers, workloads, by_key,
               lower_is_better=True),
    ]
    if problems:
        parts.append('<p>Accounting problems:</p><ul class="reasons">' + "".join(problems)
                     + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def render_markdown(benches: list[dict[str, Any]]) -> str:
    """A Markdown table of the bench results (for ``report`` with no HTML output)."""
    if not benches:
        return ""
    drivers, workloads, by_key = _rows(benches)
    lines = ["## Performance", "",
             "| workload | driver | msg/s | p50 ms | p99 ms | sent | lost | duplicated |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for w in workloads:
        for d in drivers:
            r = by_key.get((d, w))
            if r is None:
                continue
            acc, lat = r["accounting"], r["latency_ms"]
            lines.append(f"| {w} | {d} | {_num(r['throughput_per_s'])} | {_num(lat['p50'])} "
                         f"| {_num(lat['p99'])} | {acc['sent']} | {acc['lost']} "
                         f"| {acc['duplicated']} |")
    return "\n".join(lines) + "\n"
