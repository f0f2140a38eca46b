#!/usr/bin/env python
"""Memory of an in-process driver through the public API: queued casts and large calls.

Two measurements, each in a fresh Python process (so that one does not
inherit the other's heap), for each ``--url`` (default ``reference://``):

* **queued casts**: an RPC server listens once and stops, so its queues
  exist with no consumer; then ``--casts`` (100,000) casts are sent to its
  topic and wait there, and as many again.  Reported, per cast: the growth
  of the RSS over the first lot, and the Python heap the second lot holds
  (``tracemalloc``, after a garbage collection; not run for the first, its
  own records would count in the RSS).
* **large calls**: ``--calls`` (1,000) ``RPCClient.call`` round trips whose
  argument and result are a ``--payload-mib`` (1 MiB) string.  Reported: the
  RSS after the calls, after ``server.stop()``/``wait()`` and
  ``transport.cleanup()`` of both transports (and a garbage collection), and
  the process's RSS before any of it, so "released by cleanup()" can be read
  as the distance back to that baseline; and the Python heap still allocated
  after cleanup (``tracemalloc``), which is what a driver could have kept
  (the rest of the RSS is the allocator's cache: glibc keeps an arena per
  thread that allocated, here the server's executor workers).

Usage::

    python bench/memory.py                       # reference:// with the defaults
    python bench/memory.py --url reference:// --url fake://
    python bench/memory.py --casts 20000 --calls 200

The figures are absolute (bytes, MiB) because memory, unlike speed, does
not depend on how busy the machine is.  The goals the reference is held to
are printed beside them: at most 400 B per queued cast, at most 200 MiB of
RSS after the large calls, and the RSS back near its baseline after cleanup.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import threading
import time
import uuid
import warnings
from typing import Any

#: The goals the reference driver is held to (see the module docstring).
GOAL_BYTES_PER_QUEUED_CAST = 400
GOAL_RSS_AFTER_CALLS_MIB = 200


def rss_mib() -> float:
    """This process's resident set size, in MiB (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def private(url: str) -> str:
    """A reference or ceiling URL gets a virtual host of its own."""
    scheme, _, rest = url.partition("://")
    if scheme in ("reference", "ceiling") and rest.strip("/") == "":
        return f"{scheme}:///mem-{uuid.uuid4().hex[:8]}"
    return url


def setup() -> tuple[Any, Any]:
    warnings.simplefilter("ignore")
    import oslo_messaging
    from oslo_config import cfg
    from oslo_messaging import conffixture

    from driver_conformance.run import shorten_executor_idle_wait

    shorten_executor_idle_wait()  # server.wait() in 50 ms rather than 1 s
    conf = cfg.ConfigOpts()
    conffixture.ConfFixture(conf).setUp()
    return oslo_messaging, conf


class Endpoint:
    def __init__(self) -> None:
        self.count = 0

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def mark(self, ctxt: Any, seq: int) -> None:
        self.count += 1


def queued_casts(url: str, casts: int) -> dict[str, Any]:
    import tracemalloc

    om, conf = setup()
    url = private(url)
    transport = om.get_rpc_transport(conf, url=url)
    topic = f"mem-{uuid.uuid4().hex[:8]}"
    server = om.get_rpc_server(transport, om.Target(topic=topic, server="s"), [Endpoint()],
                               executor="threading")
    server.start()  # its queues now exist...
    server.stop()
    server.wait()  # ...and nobody consumes them
    client = om.get_rpc_client(transport, om.Target(topic=topic))
    for seq in range(100):  # warm every cache on the way
        client.cast({}, "mark", seq=seq)
    gc.collect()
    # First the RSS, without tracemalloc (its own records would count)...
    rss0 = rss_mib()
    for seq in range(casts):
        client.cast({}, "mark", seq=seq)
    gc.collect()
    rss1 = rss_mib()
    # ...then the Python heap, exactly, for as many more.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for seq in range(casts):
        client.cast({}, "mark", seq=seq)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    transport.cleanup()
    return {"casts": casts, "bytes_per_cast": round(held / casts, 1),
            "rss_bytes_per_cast": round((rss1 - rss0) * 2**20 / casts, 1)}


def large_calls(url: str, calls: int, payload_mib: float) -> dict[str, Any]:
    import tracemalloc

    om, conf = setup()
    url = private(url)
    rss_start = rss_mib()
    server_transport = om.get_rpc_transport(conf, url=url)
    client_transport = om.get_rpc_transport(conf, url=url)
    topic = f"mem-{uuid.uuid4().hex[:8]}"
    server = om.get_rpc_server(server_transport, om.Target(topic=topic, server="s"),
                               [Endpoint()], executor="threading")
    server.start()
    client = om.get_rpc_client(client_transport, om.Target(topic=topic), timeout=60)
    payload = "x" * int(payload_mib * 2**20)
    assert client.call({}, "echo", value="warm") == "warm"
    gc.collect()
    rss_before = rss_mib()
    peak = rss_before
    # Python's own heap from here on: what is still allocated after cleanup is
    # what the driver (or anything) kept; RSS alone also shows the allocator's
    # cached pages (glibc keeps per-thread arenas of the server's workers).
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for _ in range(calls):
        if len(client.call({}, "echo", value=payload)) != len(payload):
            raise AssertionError("a reply lost its payload")
        peak = max(peak, rss_mib())
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_after = rss_mib()
    server.stop()
    server.wait()
    client_transport.cleanup()
    server_transport.cleanup()
    del client, server
    gc.collect()
    rss_cleaned = rss_mib()
    held = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    return {"calls": calls, "payload_mib": payload_mib, "seconds": round(elapsed, 1),
            "rss_start_mib": round(rss_start, 1), "rss_before_mib": round(rss_before, 1),
            "rss_peak_mib": round(peak, 1), "rss_after_calls_mib": round(rss_after, 1),
            "rss_after_cleanup_mib": round(rss_cleaned, 1),
            "python_heap_held_after_cleanup_mib": round(held / 2**20, 2),
            "threads_left": sorted(t.name for t in threading.enumerate()
                                   if t.name.startswith("reference-"))}


def child(argv: list[str]) -> int:
    """Run one measurement in this process; print it as JSON."""
    kind, url, *rest = argv
    if kind == "casts":
        result = queued_casts(url, int(rest[0]))
    else:
        result = large_calls(url, int(rest[0]), float(rest[1]))
    print(json.dumps(result))
    return 0


def measure(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", action="append", help="transport URL (repeatable)")
    parser.add_argument("--casts", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--payload-mib", type=float, default=1.0)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    failed = False
    for url in args.url or ["reference://"]:
        casts = measure("casts", url, str(args.casts))
        calls = measure("calls", url, str(args.calls), str(args.payload_mib))
        ok_casts = casts["bytes_per_cast"] <= GOAL_BYTES_PER_QUEUED_CAST
        ok_calls = calls["rss_after_calls_mib"] <= GOAL_RSS_AFTER_CALLS_MIB
        back = calls["rss_after_cleanup_mib"] - calls["rss_before_mib"]
        print(f"{url}")
        print(f"  {casts['casts']:,} queued casts: {casts['bytes_per_cast']:.0f} B each "
              f"of Python heap (goal <= {GOAL_BYTES_PER_QUEUED_CAST}: "
              f"{'ok' if ok_casts else 'MISSED'}), "
              f"{casts['rss_bytes_per_cast']:.0f} B each of RSS")
        print(f"  {calls['calls']:,} calls of {calls['payload_mib']:g} MiB: RSS "
              f"{calls['rss_start_mib']:.0f} MiB at start, {calls['rss_before_mib']:.0f} before "
              f"the calls, peak {calls['rss_peak_mib']:.0f}, {calls['rss_after_calls_mib']:.0f} "
              f"after (goal <= {GOAL_RSS_AFTER_CALLS_MIB}: {'ok' if ok_calls else 'MISSED'}), "
              f"{calls['rss_after_cleanup_mib']:.0f} after cleanup ({back:+.0f} MiB from "
              f"before the calls; Python heap still held "
              f"{calls['python_heap_held_after_cleanup_mib']:.2f} MiB); "
              f"{calls['seconds']:.1f} s")
        if calls["threads_left"]:
            print(f"  threads left after cleanup: {calls['threads_left']}")
        failed |= not (ok_casts and ok_calls)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
