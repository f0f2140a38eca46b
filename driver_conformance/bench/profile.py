"""``driver-conformance bench --profile``: where the CPU goes, by package, over all threads.

A call through the public API crosses three threads (caller, listener,
executor worker), so a profiler that sees one thread (cProfile) misses most
of the work, and counts the time a thread waits for the GIL as its own.
``yappi`` with its CPU clock sees every thread; its own cost slows
everything down several times, so figures from a profiled run are not
comparable with unprofiled ones: read the shares, not the speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: Where CPU time goes, by the code that spends it (first match wins).
PACKAGES: tuple[tuple[str, str], ...] = (
    ("reference driver", "driver_conformance/reference/"),
    ("ceiling driver (yardstick)", "driver_conformance/bench/ceiling"),
    ("the bench itself", "driver_conformance/bench/"),
    ("oslo.messaging", "oslo_messaging/"),
    ("futurist executor", "futurist/"),
    ("concurrent.futures", "concurrent/futures/"),
    ("kombu/amqp", "kombu/"),
    ("other oslo.* libraries", "oslo_"),
    ("json", "/json/"),
    ("threading/queue", "threading.py"),
    ("threading/queue", "queue.py"),
    ("logging", "logging/"),
    ("contextlib", "contextlib.py"),
)


@contextlib.contextmanager
def cpu_profile(enabled: bool) -> Iterator[list[str]]:
    """Profile every thread's CPU time while the block runs; yields the report's lines."""
    report: list[str] = []
    if not enabled:
        yield report
        return
    try:
        import yappi
    except ImportError:
        report.append("--profile needs yappi (pip install yappi)")
        yield report
        return
    yappi.clear_stats()
    yappi.set_clock_type("cpu")
    yappi.start(builtins=True)
    try:
        yield report
    finally:
        yappi.stop()
        report.append(by_package(yappi.get_func_stats()))
        yappi.clear_stats()


def by_package(stats: Any) -> str:
    """Own CPU time per package of yappi's function statistics, largest first."""
    totals: dict[str, float] = {}
    for func in stats:
        module = func.module or ""
        label = next((name for name, part in PACKAGES if part in module), None)
        if label is None:
            label = "builtins (locks, len, ...)" if "/" not in module else "other"
        totals[label] = totals.get(label, 0.0) + func.tsub
    total = sum(totals.values()) or 1.0
    lines = ["own CPU time by package, all threads (yappi, cpu clock; profiled runs are slow, "
             "read the shares):"]
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {label:28} {seconds:8.3f} s {100 * seconds / total:5.1f}%")
    return "\n".join(lines)
