#!/usr/bin/env python
"""RPC round-trip latency and cast throughput through the public oslo.messaging API.

For each transport URL it starts one RPCServer (threading executor) and, from
a single client thread on a second transport of the same URL, measures:

* **calls**: after a warm-up, each ``RPCClient.call`` round trip is timed;
  reports p50/p90/p99 in microseconds and calls per second;
* **casts**: ``--casts`` casts back to back; the clock stops when the server
  has received all of them; reports casts per second.

``--driver-level`` measures the reference driver alone, without RPCClient,
RPCServer, its executor and dispatcher: ``ReferenceDriver.send`` against a
listener whose callback acknowledges and replies inline.  ``--profile``
prints where the CPU goes, by package, over all threads (needs ``yappi``;
profiling slows everything down, so its timings are not comparable).

Usage::

    python bench/rpc_bench.py                      # reference://, fake://, kombu+memory:////
    python bench/rpc_bench.py --url reference:// --calls 20000
    python bench/rpc_bench.py --url reference:// --profile
    python bench/rpc_bench.py --driver-level

``fake://`` polls its queues every 50 ms, so its runs are cut short by
``--budget`` seconds rather than by the call count.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

warnings.simplefilter("ignore")

import oslo_messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_messaging import conffixture  # noqa: E402

DEFAULT_URLS = ["reference://", "fake://", "kombu+memory:////"]

#: Where CPU time goes, by the code that spends it (first match wins).
PACKAGES = [
    ("reference driver", "driver_conformance/reference/"),
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
]


class Counter:
    """Counts arrivals; ``done`` is set when ``target`` have arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.target:
                self.done.set()


class Endpoint:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def ping(self, ctxt: Any, value: Any) -> Any:
        return value

    def count(self, ctxt: Any, value: Any) -> None:
        self.counter.add()


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


def measure(call: Callable[[int], Any], cast: Callable[[int], Any], counter: Counter,
            calls: int, casts: int, warmup: int, budget: float) -> dict[str, Any]:
    """Time ``calls`` single round trips, then ``casts`` casts until all arrived."""
    deadline = time.perf_counter() + budget
    for i in range(warmup):
        call(i)
        if time.perf_counter() > deadline:
            break
    latencies = []
    deadline = time.perf_counter() + budget
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t0)
        if t0 > deadline:
            break
    elapsed_calls = time.perf_counter() - started
    counter.target = casts
    started = time.perf_counter()
    for i in range(casts):
        cast(i)
    if not counter.done.wait(max(budget, 60)):
        raise RuntimeError(f"only {counter.count}/{casts} casts arrived")
    elapsed_casts = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies),
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p90_us": percentile(latencies, 0.90) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "mean_us": statistics.fmean(latencies) * 1e6,
        "calls_per_s": len(latencies) / elapsed_calls,
        "casts": casts,
        "casts_per_s": casts / elapsed_casts,
    }


@contextlib.contextmanager
def configured() -> Iterator[cfg.ConfigOpts]:
    conf = cfg.ConfigOpts()
    fixture = conffixture.ConfFixture(conf)
    fixture.setUp()
    try:
        yield conf
    finally:
        fixture.cleanUp()


def private(url: str) -> str:
    """A reference URL gets a virtual host of its own: nothing else shares its broker."""
    if url.startswith("reference") and url.split("://", 1)[1].strip("/") == "":
        return f"reference:///bench-{uuid.uuid4().hex[:8]}"
    return url


def run_public(url: str, calls: int, casts: int, warmup: int, budget: float) -> dict[str, Any]:
    """Through RPCClient and RPCServer (threading executor)."""
    url = private(url)
    with configured() as conf:
        server_transport = oslo_messaging.get_rpc_transport(conf, url=url)
        client_transport = oslo_messaging.get_rpc_transport(conf, url=url)
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        counter = Counter()
        server = oslo_messaging.get_rpc_server(
            server_transport, oslo_messaging.Target(topic=topic, server="bench"),
            [Endpoint(counter)], executor="threading")
        client = oslo_messaging.get_rpc_client(
            client_transport, oslo_messaging.Target(topic=topic), timeout=30)
        server.start()
        try:
            return measure(lambda i: client.call({}, "ping", value=i),
                           lambda i: client.cast({}, "count", value=i),
                           counter, calls, casts, warmup, budget)
        finally:
            server.stop()
            server.wait()
            client_transport.cleanup()
            server_transport.cleanup()


def run_driver_level(url: str, calls: int, casts: int, warmup: int,
                     budget: float) -> dict[str, Any]:
    """``ReferenceDriver`` alone: send() and a callback listener that replies inline."""
    from driver_conformance.reference import ReferenceDriver, drop_broker

    url = private(url)
    with configured() as conf:
        parsed = oslo_messaging.TransportURL.parse(conf, url)
        server = ReferenceDriver(conf, parsed, default_exchange="bench")
        client = ReferenceDriver(conf, parsed, default_exchange="bench")
        target = oslo_messaging.Target(topic=f"bench-{uuid.uuid4().hex[:8]}", server="bench")
        counter = Counter()

        def on_incoming(incoming: list[Any]) -> None:
            for message in incoming:
                message.acknowledge()
                if message.message["method"] == "count":
                    counter.add()
                else:
                    message.reply(message.message["args"]["value"])

        listener = server.listen(target, 1, None)
        listener.start(on_incoming)
        ctxt: dict[str, Any] = {}
        try:
            return measure(
                lambda i: client.send(target, ctxt, {"method": "ping", "args": {"value": i}},
                                      wait_for_reply=True, timeout=30),
                lambda i: client.send(target, ctxt, {"method": "count", "args": {"value": i}}),
                counter, calls, casts, warmup, budget)
        finally:
            listener.stop()
            listener.cleanup()
            client.cleanup()
            server.cleanup()
            drop_broker(url)


@contextlib.contextmanager
def cpu_profile(enabled: bool) -> Iterator[list[str]]:
    """Profile every thread's CPU time with yappi; yields a list to receive the report."""
    report: list[str] = []
    if not enabled:
        yield report
        return
    try:
        import yappi
    except ImportError:
        report.append("--profile needs yappi (pip install yappi): cProfile sees one thread "
                      "and counts time spent waiting for the GIL as the function's own.")
        yield report
        return
    yappi.clear_stats()
    yappi.set_clock_type("cpu")
    yappi.start(builtins=True)
    try:
        yield report
    finally:
        yappi.stop()
        report.append(_by_package(yappi.get_func_stats()))


def _by_package(stats: Any) -> str:
    totals: dict[str, float] = {}
    for func in stats:
        module = func.module or ""
        label = next((name for name, part in PACKAGES if part in module), None)
        if label is None:
            label = "builtins (locks, len, ...)" if not module or "/" not in module else "other"
        totals[label] = totals.get(label, 0.0) + func.tsub
    total = sum(totals.values()) or 1.0
    lines = ["own CPU time by package, all threads (yappi, cpu clock):"]
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {label:28} {seconds:8.3f} s {100 * seconds / total:5.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", action="append", help="transport URL (repeatable)")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--casts", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds at most for the warm-up and for the calls")
    parser.add_argument("--driver-level", action="store_true",
                        help="measure ReferenceDriver alone (reference URLs only)")
    parser.add_argument("--profile", action="store_true",
                        help="print own CPU time by package over all threads (needs yappi)")
    args = parser.parse_args(argv)
    urls = args.url or (["reference://"] if args.driver_level else DEFAULT_URLS)
    runner = run_driver_level if args.driver_level else run_public
    mode = "driver level" if args.driver_level else "public API"
    print(f"{mode:10} {'url':20} {'calls':>7} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} "
          f"{'calls/s':>9} {'casts/s':>9}")
    for url in urls:
        casts = args.casts if not url.startswith("fake") else min(args.casts, 2000)
        with cpu_profile(args.profile) as report:
            result = runner(url, args.calls, casts, args.warmup, args.budget)
        print(f"{'':10} {url:20} {result['calls']:>7} {result['p50_us']:>8.0f} "
              f"{result['p90_us']:>8.0f} {result['p99_us']:>8.0f} "
              f"{result['calls_per_s']:>9.0f} {result['casts_per_s']:>9.0f}", flush=True)
        for text in report:
            print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
