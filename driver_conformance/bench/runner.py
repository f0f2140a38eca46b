"""Running the workloads over several drivers, interleaved, and writing the results.

Drivers are compared in one invocation, and the order is workload by
workload, driver by driver (and, with ``rounds``, the whole sequence again):
every driver sees workload W within seconds of the others, so drift of the
machine (a CPU frequency change, another job starting) affects them alike
instead of landing on whichever driver happened to run last.

Ratios are taken per round, between figures measured seconds apart, and
then summarised (median and p25-p75 spread over the rounds), because on a
shared machine the absolute figures of two runs minutes apart are not
comparable but the ratio of two drivers measured side by side is.  The
baseline of the ratios is the *yardstick* subject when there is one (an
adapter whose ``yardstick`` attribute is true: ``--driver=ceiling``, the
thinnest driver the public API works with, see
:mod:`driver_conformance.bench.ceiling`), otherwise the first driver.  A ratio
to the yardstick reads the same on any machine: "this driver reaches 0.9x
of what the public API allows here".

The results become one JSON document (``kind: driver-conformance-bench``),
printed as a table with the ratios, and accepted by
``driver-conformance report`` next to conformance reports.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from driver_conformance.bench import KIND, SCHEMA_VERSION
from driver_conformance.bench.stats import percentile, summarize
from driver_conformance.bench.workloads import Measurement, Settings, Workload, run_workload
from driver_conformance.bench.workloads import workloads as all_workloads
from driver_conformance.run import ConformanceRun
from driver_conformance.urls import mask_url


@dataclasses.dataclass
class Subject:
    """One driver to benchmark: a label, its adapter and URL, and its run once started."""

    label: str
    adapter: Any
    url: str
    registry: Any = None
    run: ConformanceRun | None = None
    error: str | None = None


class ProgressLine:
    """A one-line progress display on stderr, only when stderr is a terminal.

    Rewritten in place with a carriage return and throttled to ten updates a
    second, so that it costs the senders nothing measurable; silent when the
    output is piped or captured (CI logs want the table, not 600 redraws).
    """

    def __init__(self, total: int, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self._last = 0.0
        self._width = 0

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.1:
            return
        self._last = now
        filled = int(20 * self.done / max(1, self.total))
        line = (f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
                f"{now - self.started:5.1f}s {text}")[:120]
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def step(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def result_entry(subject: Subject, workload: Workload, m: Measurement,
                 rounds: list[Measurement] | None = None) -> dict[str, Any]:
    """The JSON entry of one driver's result for one workload (``m``: the rounds merged)."""
    acc = m.accounting
    throughput = m.completed / m.elapsed if m.elapsed > 0 and m.status == "ok" else None
    return {
        "driver": subject.label,
        "workload": workload.name,
        "description": workload.description,
        "latency_kind": "round-trip" if workload.kind == "call" else "send-to-endpoint",
        "status": m.status,
        "errors": m.errors,
        "params": m.params,
        "elapsed_s": round(m.elapsed, 4),
        "cpu_s": round(m.cpu, 4),
        "completed": m.completed,
        "throughput_per_s": None if throughput is None else round(throughput, 2),
        "latency_ms": summarize(m.latencies),
        "accounting": acc.as_dict(),
        "rounds": [round_figures(r) for r in (rounds if rounds is not None else [m])],
    }


def round_figures(m: Measurement) -> dict[str, float | None]:
    """Throughput and latency percentiles of one round of one workload on one driver."""
    ok = m.status == "ok" and m.elapsed > 0
    lat = summarize(m.latencies) if ok else {}
    return {"throughput_per_s": round(m.completed / m.elapsed, 2) if ok else None,
            "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"),
            "cpu_us_per_msg": round(m.cpu / m.completed * 1e6, 2)
            if ok and m.completed and m.cpu > 0 else None}


#: The figures ratios are taken of: (name in the comparison, key in round_figures).
#: ``cpu`` is CPU time per message delivered (this process, all threads): for
#: in-process drivers on a busy machine, a steadier reading of their cost than
#: the throughput, which other jobs' load moves round by round.
RATIO_METRICS = (("throughput", "throughput_per_s"), ("p50", "p50_ms"), ("p99", "p99_ms"),
                 ("cpu", "cpu_us_per_msg"))


def _spread(values: list[float]) -> dict[str, float] | None:
    """Median and the p25-p75 spread (nearest rank) of per-round ratios."""
    if not values:
        return None
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3),
            "p25": round(percentile(ordered, 0.25), 3),
            "p75": round(percentile(ordered, 0.75), 3)}


def baseline_label(subjects: list[Subject]) -> str | None:
    """The yardstick subject's label if there is one, else the first subject's."""
    for s in subjects:
        if getattr(s.adapter, "yardstick", False):
            return s.label
    return subjects[0].label if subjects else None


def comparison(results: list[dict[str, Any]], base: str | None,
               yardstick: bool = False) -> dict[str, Any]:
    """Ratios of each driver's throughput, p50 and p99 to the baseline's, per workload.

    Each ratio is computed round by round (the two figures were measured
    seconds apart) and summarised as the median over the rounds with its
    p25-p75 spread.  ``throughput``, ``p50`` and ``p99`` are those medians.
    """
    if base is None:
        return {"baseline": None, "yardstick": False, "ratios": []}
    by_key = {(r["driver"], r["workload"]): r for r in results}
    ratios = []
    for r in results:
        b = by_key.get((base, r["workload"]))
        if b is None:
            continue
        entry: dict[str, Any] = {"driver": r["driver"], "workload": r["workload"],
                                 "rounds": min(len(r["rounds"]), len(b["rounds"]))}
        for name, key in RATIO_METRICS:
            per_round = [mine[key] / theirs[key]
                         for mine, theirs in zip(r["rounds"], b["rounds"], strict=False)
                         if mine.get(key) is not None and theirs.get(key)]
            spread = _spread(per_round)
            entry[name] = spread["median"] if spread else None
            entry[f"{name}_spread"] = [spread["p25"], spread["p75"]] if spread else None
        ratios.append(entry)
    return {"baseline": base, "yardstick": yardstick, "ratios": ratios}


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run_bench(subjects: list[Subject], settings: Settings, *, rounds: int = 1,
              only: list[str] | None = None,
              progress: ProgressLine | None = None) -> dict[str, Any]:
    """Benchmark ``subjects`` and return the bench document.

    Each subject's backend is started once (its isolation and cleanup are
    the adapter's, as for a conformance run) and finished at the end, also
    when a workload fails.  ``rounds`` splits each workload's duration and
    message cap into that many interleaved passes (the drivers' order
    alternating from one round to the next), merged per driver for the
    absolute figures and kept apart for the ratios.
    """
    from driver_conformance import __version__

    chosen = [w for w in all_workloads(settings) if not only or w.name in only]
    per_round = dataclasses.replace(
        settings, duration=settings.duration / rounds,
        max_messages=max(1, settings.max_messages // rounds))
    progress = progress or ProgressLine(0, enabled=False)
    progress.total = len(chosen) * len(subjects) * rounds
    started_at, t0 = utc_now(), time.perf_counter()
    each_round: dict[tuple[str, str], list[Measurement]] = {}
    try:
        for subject in subjects:
            _start(subject, progress)
        for n in range(rounds):
            # Alternate the order round by round: whoever runs second (warmer
            # caches, the first one's garbage) is not always the same driver.
            order = subjects if n % 2 == 0 else subjects[::-1]
            for workload in chosen:
                for subject in order:
                    label = f"{subject.label} {workload.name}"
                    if subject.run is None:
                        m = Measurement(workload.name, status="error",
                                        errors=[subject.error or "not started"])
                    else:
                        m = run_workload(subject.run, workload, per_round, progress, label)
                    each_round.setdefault((subject.label, workload.name), []).append(m)
                    progress.step()
    finally:
        for subject in subjects:
            if subject.run is not None:
                try:
                    subject.run.finish()
                except Exception as exc:
                    subject.error = f"backend teardown: {type(exc).__name__}: {exc}"
        progress.close()
    results = []
    for w in chosen:
        for s in subjects:
            rounds_of = each_round[(s.label, w.name)]
            merged = Measurement(w.name)
            for m in rounds_of:
                merged.merge(m)
            results.append(result_entry(s, w, merged, rounds_of))
    base = baseline_label(subjects)
    yardstick = any(getattr(s.adapter, "yardstick", False) for s in subjects)
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "run": {
            "kit_version": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "started_at": started_at,
            "finished_at": utc_now(),
            "wall_s": round(time.perf_counter() - t0, 2),
            "rounds": rounds,
            "settings": settings.as_dict(),
        },
        "drivers": [{"label": s.label, "adapter": s.adapter.name, "url": mask_url(s.url),
                     "facts": dict(s.run.facts) if s.run else {}, "error": s.error,
                     "yardstick": bool(getattr(s.adapter, "yardstick", False))}
                    for s in subjects],
        "workloads": [{"name": w.name, "description": w.description,
                       "latency_kind": "round-trip" if w.kind == "call" else "send-to-endpoint"}
                      for w in chosen],
        "results": results,
        "comparison": comparison(results, base, yardstick),
    }


def _start(subject: Subject, progress: Callable[[str], None]) -> None:
    """Start the subject's backend; a failure is recorded, not raised."""
    from driver_conformance.timing import Timing

    progress(f"{subject.label} starting backend")
    run = ConformanceRun(adapter=subject.adapter, registry=subject.registry,
                         user_url=subject.url,
                         timing=Timing(quiet_base=subject.adapter.quiet_window))
    try:
        run.start()
    except Exception as exc:
        run.finish()
        subject.error = f"backend unavailable: {mask_url(str(exc))}"
        return
    subject.run = run


def has_problems(doc: dict[str, Any]) -> bool:
    """Whether any result erred, lost, duplicated or misrouted a message."""
    for r in doc["results"]:
        acc = r["accounting"]
        if r["status"] == "error" or acc["lost"] or acc["duplicated"] or acc["wrong_replies"]:
            return True
    return False


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio_text(entry: dict[str, Any], name: str) -> str:
    value, spread = entry.get(name), entry.get(f"{name}_spread")
    if value is None:
        return "-"
    if not spread or entry.get("rounds", 1) < 2:
        return f"{value:.2f}"
    return f"{value:.2f} [{spread[0]:.2f}-{spread[1]:.2f}]"


def render_table(doc: dict[str, Any]) -> str:
    """The terminal table: one row per workload and driver, then the ratios with spreads."""
    cmp_ = doc["comparison"]
    ratios = {(r["driver"], r["workload"]): r for r in cmp_["ratios"]}
    head = (f"{'workload':<16} {'driver':<14} {'status':<11} {'sent':>7} {'recv':>7} "
            f"{'lost':>5} {'dup':>5} {'msg/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
            f"{'p99 ms':>8} {'p99.9 ms':>8} {'max ms':>8} {'x thr':>6} {'x p50':>6} "
            f"{'x p99':>6}")
    lines = [head, "-" * len(head)]
    previous = None
    for r in doc["results"]:
        if previous is not None and r["workload"] != previous:
            lines.append("")
        previous = r["workload"]
        acc, lat = r["accounting"], r["latency_ms"]
        ratio = ratios.get((r["driver"], r["workload"]), {})
        lines.append(
            f"{r['workload']:<16} {r['driver']:<14} {r['status']:<11} {acc['sent']:>7} "
            f"{acc['unique']:>7} {acc['lost']:>5} {acc['duplicated']:>5} "
            f"{_fmt(r['throughput_per_s'], 0):>9} {_fmt(lat['p50']):>8} {_fmt(lat['p90']):>8} "
            f"{_fmt(lat['p99']):>8} {_fmt(lat['p99_9']):>8} {_fmt(lat['max']):>8} "
            f"{_fmt(ratio.get('throughput')):>6} {_fmt(ratio.get('p50')):>6} "
            f"{_fmt(ratio.get('p99')):>6}")
    run = doc["run"]
    base = cmp_["baseline"]
    rounds = run.get("rounds", 1)
    others = [r for r in cmp_["ratios"] if r["driver"] != base]
    if others:
        what = ("the yardstick: the thinnest driver the public API works with, "
                "not a real driver" if cmp_.get("yardstick") else "the first driver")
        lines += ["", f"ratios to {base} ({what}); median of {rounds} interleaved round(s)"
                  + (" [p25-p75]" if rounds > 1 else "") + ":",
                  f"  {'workload':<16} {'driver':<14} {'x throughput':<20} {'x p50':<20} "
                  f"{'x p99':<20} x cpu/msg"]
        for r in others:
            lines.append(f"  {r['workload']:<16} {r['driver']:<14} "
                         f"{_ratio_text(r, 'throughput'):<20} {_ratio_text(r, 'p50'):<20} "
                         f"{_ratio_text(r, 'p99'):<20} {_ratio_text(r, 'cpu')}")
    notes = []
    for r in doc["results"]:
        for error in r["errors"][:3]:
            notes.append(f"  {r['driver']} {r['workload']}: {error}")
    for d in doc["drivers"]:
        if d["error"]:
            notes.append(f"  {d['label']}: {d['error']}")
    hint = "" if cmp_.get("yardstick") else \
        " (add --driver=ceiling for ratios to the public-API ceiling)"
    lines += ["", f"baseline for ratios: {base}{hint}; "
              f"call latency is the round trip, others send to endpoint; "
              f"wall time {run['wall_s']:.1f}s"]
    if notes:
        lines += ["notes:", *notes]
    return "\n".join(lines) + "\n"
