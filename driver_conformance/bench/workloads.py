"""The workloads: what is sent, through which public API, and how it is accounted for.

Each workload builds its own transports, servers and listeners from a
:class:`~driver_conformance.run.ConformanceRun` (so names carry the run's
prefix and the adapter's backend isolation and option overrides apply),
sends for a fixed warm-up, then for a fixed duration or message count, waits
(bounded) for stragglers, and tears everything down (bounded).

Every message carries ``(phase, seq, t)``: the phase keeps warm-up
stragglers out of the measured figures, the sequence number lets the
:class:`Recorder` count distinct deliveries per subscriber (so copies and
losses are visible), and ``t`` (``time.perf_counter`` in this process) gives
the end-to-end latency from send to endpoint.

Nothing waits without a deadline: driver calls go through
:func:`~driver_conformance.bounded.call_bounded`, sender threads are joined
with a bound, and straggler waits are condition waits with a timeout, so a
hung driver ends its workload with an error entry instead of hanging the
command.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_messaging import transport as om_transport

from driver_conformance.bench.settings import Settings
from driver_conformance.bench.stats import Accounting
from driver_conformance.bounded import DriverHung, call_bounded
from driver_conformance.run import ConformanceRun

__all__ = ["Measurement", "Recorder", "Settings", "Workload", "run_workload", "workloads"]

WARMUP = "w"
MEASURED = "m"

#: A progress callback: a short description of what is happening now.
Progress = Callable[[str], None]


@dataclasses.dataclass
class Measurement:
    """One workload on one driver (one round, or several merged)."""

    workload: str
    status: str = "ok"  # ok | error | unsupported
    errors: list[str] = dataclasses.field(default_factory=list)
    latencies: list[float] = dataclasses.field(default_factory=list)
    accounting: Accounting = dataclasses.field(default_factory=Accounting)
    #: Seconds of the measured window (first send to last send for calls,
    #: first send to last expected delivery otherwise).
    elapsed: float = 0.0
    #: CPU seconds this process spent over the measured window, every thread:
    #: for an in-process driver, all the work, and unlike ``elapsed`` hardly
    #: moved by other jobs on the machine.
    cpu: float = 0.0
    #: Completed items in that window: correct call replies, or unique deliveries.
    completed: int = 0
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def merge(self, other: Measurement) -> None:
        """Fold another round of the same workload in (rounds interleave drivers)."""
        if other.status == "unsupported" or self.status == "unsupported":
            self.status = "unsupported"
        elif other.status == "error":
            self.status = "error"
        self.errors += other.errors
        self.latencies += other.latencies
        self.accounting.add(other.accounting)
        self.elapsed += other.elapsed
        self.cpu += other.cpu
        self.completed += other.completed
        self.params = self.params or other.params


class Recorder:
    """Receipts by phase, subscriber ("sink") and sequence number; waits are bounded."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: dict[str, dict[str, collections.Counter[int]]] = {
            WARMUP: collections.defaultdict(collections.Counter),
            MEASURED: collections.defaultdict(collections.Counter),
        }
        self.unique = {WARMUP: 0, MEASURED: 0}
        self.received = {WARMUP: 0, MEASURED: 0}
        self.latencies: list[float] = []
        self.last_receipt = 0.0

    def record(self, sink: str, phase: Any, seq: Any, sent_at: Any) -> None:
        now = time.perf_counter()
        if phase not in self.seen:
            return
        with self.cond:
            counter = self.seen[phase][sink]
            counter[seq] += 1
            self.received[phase] += 1
            if counter[seq] == 1:
                self.unique[phase] += 1
                if phase == MEASURED:
                    self.latencies.append(now - float(sent_at))
                    self.last_receipt = now
            self.cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Wait (no polling) until ``predicate()`` holds or ``deadline`` passes."""
        with self.cond:
            return self.cond.wait_for(predicate, max(0.0, deadline - time.perf_counter()))

    def quiet_for(self, seconds: float) -> None:
        """Return once ``seconds`` passed with no receipt at all (bounded by 5x ``seconds``)."""
        hard = time.perf_counter() + 5 * seconds
        with self.cond:
            while True:
                before = self.received[MEASURED] + self.received[WARMUP]
                left = min(seconds, hard - time.perf_counter())
                if left <= 0:
                    return
                self.cond.wait(left)
                if self.received[MEASURED] + self.received[WARMUP] == before:
                    return


class RpcEndpoint:
    """The endpoint of every bench RPC server: records the receipt and echoes ``seq``."""

    target = oslo_messaging.Target(version="1.0")

    def __init__(self, recorder: Recorder, sink: str) -> None:
        self.recorder = recorder
        self.sink = sink

    def bench(self, ctxt: Any, phase: str, seq: int, t: float) -> int:
        self.recorder.record(self.sink, phase, seq, t)
        return seq


class NotifyEndpoint:
    """The endpoint of every bench notification listener."""

    def __init__(self, recorder: Recorder, sink: str) -> None:
        self.recorder = recorder
        self.sink = sink

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.recorder.record(self.sink, payload.get("phase"), payload.get("seq"),
                             payload.get("t"))


class Workbench:
    """What one workload built on one driver, torn down (bounded) when it ends."""

    def __init__(self, run: ConformanceRun, settings: Settings, name: str) -> None:
        self.run = run
        self.settings = settings
        self.topic = f"{run.prefix}-bench-{name}-{uuid.uuid4().hex[:6]}"
        self.servers: list[Any] = []
        self.transports: list[Any] = []
        self.errors: list[str] = []

    def bounded(self, fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
        return call_bounded(fn, *args, bound=self.settings.call_bound, what=what, **kwargs)

    def rpc_transport(self) -> Any:
        driver = self.bounded(self.run.make_driver, what="driver construction")
        transport = om_transport.RPCTransport(driver)
        self.transports.append(transport)
        return transport

    def notification_transport(self) -> Any:
        driver = self.bounded(self.run.make_driver, what="driver construction")
        transport = om_transport.NotificationTransport(driver)
        self.transports.append(transport)
        return transport

    def start(self, server: Any, what: str) -> None:
        self.bounded(server.start, what=what)
        self.servers.append(server)

    def close(self) -> list[str]:
        """Stop servers in parallel, then clean transports up; every step bounded."""
        errors: list[str] = []

        def stop(server: Any) -> None:
            try:
                server.stop()
                server.wait()
            except Exception as exc:  # reported, teardown goes on
                errors.append(f"server stop raised {exc!r}")

        threads = [threading.Thread(target=stop, args=(s,), daemon=True,
                                    name="conformance-bench-stop") for s in self.servers]
        for t in threads:
            t.start()
        deadline = time.perf_counter() + self.settings.call_bound
        for t in threads:
            t.join(max(0.0, deadline - time.perf_counter()))
            if t.is_alive():
                errors.append("a server did not stop within the call bound")
        for transport in self.transports:
            try:
                self.bounded(transport.cleanup, what="transport.cleanup()")
            except DriverHung as exc:
                errors.append(str(exc))
            except Exception as exc:
                errors.append(f"transport.cleanup() raised {exc!r}")
        self.servers.clear()
        self.transports.clear()
        return errors


def _pump(send: Callable[[str, int, float], None], recorder: Recorder, phase: str,
          per_message: int, settings: Settings, duration: float,
          progress: Progress, label: str) -> tuple[int, int, float, float]:
    """Send until ``duration`` or the count cap, keeping at most ``window`` in flight.

    Returns (sent, failed, first send time, last send time).  Run on a thread
    of its own so that a send that never returns is abandoned, not waited for.
    """
    seq = itertools.count()
    sent = failed = 0
    start = time.perf_counter()
    deadline = start + duration
    last_progress = 0.0

    def room() -> bool:
        return (sent - failed) * per_message - recorder.unique[phase] < settings.window

    while sent < settings.max_messages:
        now = time.perf_counter()
        if now >= deadline:
            break
        if not room() and not recorder.wait_until(room, deadline):
            break
        n = next(seq)
        sent += 1
        try:
            send(phase, n, time.perf_counter())
        except Exception:
            failed += 1
        if now - last_progress > 0.1:
            last_progress = now
            progress(f"{label} {'warm-up' if phase == WARMUP else 'measuring'} "
                     f"{now - start:4.1f}/{duration:.1f}s sent={sent}")
    return sent, failed, start, time.perf_counter()


def _threaded(fn: Callable[[], Any], bound: float, what: str) -> Any:
    """``fn()`` on a daemon thread, raising ``DriverHung`` if it outlives ``bound``."""
    return call_bounded(fn, bound=bound, what=what)


def _stream(bench: Workbench, recorder: Recorder, send: Callable[[str, int, float], None],
            per_message: int, m: Measurement, progress: Progress, label: str) -> None:
    """Warm-up, measured phase and straggler wait of a one-way workload."""
    s = bench.settings
    bound = max(s.duration, s.warmup) + s.call_timeout + s.call_bound
    w_sent, w_failed, _, _ = _threaded(
        lambda: _pump(send, recorder, WARMUP, per_message, s, s.warmup, progress, label),
        bound, "warm-up sends")
    recorder.wait_until(lambda: recorder.unique[WARMUP] >= (w_sent - w_failed) * per_message,
                        time.perf_counter() + s.drain)
    cpu_start = time.process_time()
    sent, failed, start, _ = _threaded(
        lambda: _pump(send, recorder, MEASURED, per_message, s, s.duration, progress, label),
        bound, "measured sends")
    expected = (sent - failed) * per_message
    progress(f"{label} waiting for stragglers")
    complete = recorder.wait_until(lambda: recorder.unique[MEASURED] >= expected,
                                   time.perf_counter() + s.drain)
    m.cpu = time.process_time() - cpu_start
    if complete:
        recorder.quiet_for(s.settle)
    with recorder.cond:
        acc = m.accounting
        acc.sent, acc.send_failed, acc.expected = sent, failed, expected
        acc.received = recorder.received[MEASURED]
        acc.unique = recorder.unique[MEASURED]
        acc.unexpected = sum(1 for sink in recorder.seen[MEASURED].values()
                             for n in sink if not 0 <= n < sent)
        m.latencies = list(recorder.latencies)
        m.completed = min(acc.unique, expected)
        m.elapsed = max(1e-9, (recorder.last_receipt or time.perf_counter()) - start)


# -- the workloads -----------------------------------------------------------------------


def call_workload(bench: Workbench, m: Measurement, progress: Progress, label: str,
                  concurrency: int, call_monitor_timeout: float | None = None) -> None:
    """``RPCClient.call`` round trips from ``concurrency`` threads to one server.

    With ``call_monitor_timeout`` the client asks for call-monitor heartbeats:
    oslo's RPC dispatcher then starts (and joins) a watchdog thread for every
    call, whatever the driver, a cost a service pays per call and the bench
    shows beside the plain call.
    """
    s = bench.settings
    m.params = {"concurrency": concurrency, "servers": 1}
    if call_monitor_timeout:
        m.params["call_monitor_timeout"] = call_monitor_timeout
    recorder = Recorder()
    server = oslo_messaging.get_rpc_server(
        bench.rpc_transport(), oslo_messaging.Target(topic=bench.topic, server="bench-0"),
        [RpcEndpoint(recorder, "server")], executor="threading")
    bench.start(server, "RPCServer.start()")
    client = oslo_messaging.get_rpc_client(
        bench.rpc_transport(), oslo_messaging.Target(topic=bench.topic), timeout=s.call_timeout,
        call_monitor_timeout=call_monitor_timeout)
    lock = threading.Lock()
    seq = itertools.count()
    tally = {"sent": 0, "failed": 0, "wrong": 0, "ok": 0}
    latencies: list[float] = []

    def caller(phase: str, deadline: float) -> None:
        while time.perf_counter() < deadline:
            with lock:
                if phase == MEASURED and tally["sent"] >= s.max_messages:
                    return
                n = next(seq)
                if phase == MEASURED:
                    tally["sent"] += 1
            t0 = time.perf_counter()
            try:
                reply = client.call({}, "bench", phase=phase, seq=n, t=t0)
            except Exception:
                if phase == MEASURED:
                    with lock:
                        tally["failed"] += 1
                continue
            took = time.perf_counter() - t0
            if phase == MEASURED:
                with lock:
                    if reply == n:
                        tally["ok"] += 1
                        latencies.append(took)
                    else:
                        tally["wrong"] += 1

    def phase_run(phase: str, duration: float) -> float:
        start = time.perf_counter()
        deadline = start + duration
        threads = [threading.Thread(target=caller, args=(phase, deadline), daemon=True,
                                    name="conformance-bench-caller")
                   for _ in range(concurrency)]
        for t in threads:
            t.start()
        hard = deadline + s.call_timeout + s.call_bound
        while any(t.is_alive() for t in threads) and time.perf_counter() < hard:
            progress(f"{label} {'warm-up' if phase == WARMUP else 'measuring'} "
                     f"{min(duration, time.perf_counter() - start):4.1f}/{duration:.1f}s "
                     f"calls={tally['sent']}")
            for t in threads:
                t.join(0.1)
                if t.is_alive():
                    break
        if any(t.is_alive() for t in threads):
            raise DriverHung(f"RPCClient.call() did not return within {hard - start:.1f}s")
        return time.perf_counter() - start

    phase_run(WARMUP, s.warmup)
    # the measured window ends with the last call's reply (callers are joined)
    cpu_start = time.process_time()
    elapsed = phase_run(MEASURED, s.duration)
    m.cpu = time.process_time() - cpu_start
    recorder.wait_until(lambda: recorder.unique[MEASURED] >= tally["sent"],
                        time.perf_counter() + min(s.drain, 1.0))
    recorder.quiet_for(s.settle)
    with recorder.cond:
        acc = m.accounting
        acc.sent, acc.send_failed, acc.expected = tally["sent"], tally["failed"], tally["sent"]
        acc.wrong_replies = tally["wrong"]
        acc.received = recorder.received[MEASURED]
        acc.unique = recorder.unique[MEASURED]
    m.latencies = latencies
    m.completed = tally["ok"]
    m.elapsed = elapsed


def cast_workload(bench: Workbench, m: Measurement, progress: Progress, label: str,
                  fanout: bool) -> None:
    """Casts to a topic shared by several servers (one copy in all) or fanned out to each."""
    s = bench.settings
    k = s.subscribers
    m.params = {"servers": k, "fanout": fanout}
    recorder = Recorder()
    for i in range(k):
        sink = f"server-{i}" if fanout else "topic"
        server = oslo_messaging.get_rpc_server(
            bench.rpc_transport(),
            oslo_messaging.Target(topic=bench.topic, server=f"bench-{i}"),
            [RpcEndpoint(recorder, sink)], executor="threading")
        bench.start(server, "RPCServer.start()")
    client = oslo_messaging.get_rpc_client(
        bench.rpc_transport(), oslo_messaging.Target(topic=bench.topic, fanout=fanout or None))

    def send(phase: str, n: int, t: float) -> None:
        client.cast({}, "bench", phase=phase, seq=n, t=t)

    _stream(bench, recorder, send, k if fanout else 1, m, progress, label)


def notify_workload(bench: Workbench, m: Measurement, progress: Progress, label: str,
                    pools: bool) -> None:
    """Notifications to pool-less listeners (one copy in all) or to one listener per pool."""
    s = bench.settings
    k = s.subscribers
    m.params = {"listeners": k, "pools": k if pools else 0}
    recorder = Recorder()
    targets = [oslo_messaging.Target(topic=bench.topic)]
    for i in range(k):
        pool = f"{bench.run.prefix}-pool-{i}-{uuid.uuid4().hex[:4]}" if pools else None
        listener = oslo_messaging.get_notification_listener(
            bench.notification_transport(), targets,
            [NotifyEndpoint(recorder, f"pool-{i}" if pools else "topic")],
            executor="threading", pool=pool)
        bench.start(listener, "notification listener start()")
    notifier = oslo_messaging.Notifier(bench.notification_transport(), publisher_id="bench",
                                       driver="messagingv2", topics=[bench.topic])

    def send(phase: str, n: int, t: float) -> None:
        notifier.info({}, "bench.event", {"phase": phase, "seq": n, "t": t})

    _stream(bench, recorder, send, k if pools else 1, m, progress, label)


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named workload, the capability it needs, and the function that runs it."""

    name: str
    description: str
    #: Capabilities (:class:`~driver_conformance.adapter.Capabilities` fields) it needs.
    needs: tuple[str, ...]
    kind: str  # "call" (latency is a round trip) or "stream" (send to endpoint)
    fn: Callable[[Workbench, Measurement, Progress, str], None]


def workloads(settings: Settings) -> list[Workload]:
    """Every workload, in the order they run."""
    n = settings.concurrency
    cmt = settings.call_monitor_timeout
    return [
        Workload("call", "RPC call round trip, 1 caller", ("rpc",), "call",
                 lambda b, m, p, lb: call_workload(b, m, p, lb, 1)),
        Workload("call-concurrent", f"RPC call round trip, {n} concurrent callers", ("rpc",),
                 "call", lambda b, m, p, lb: call_workload(b, m, p, lb, n)),
        Workload("call-monitor", f"RPC call round trip, 1 caller, call_monitor_timeout={cmt:g}"
                 " (a watchdog thread per call)", ("rpc",), "call",
                 lambda b, m, p, lb: call_workload(b, m, p, lb, 1, cmt)),
        Workload("cast", f"RPC cast to a topic shared by {settings.subscribers} servers",
                 ("rpc",), "stream", lambda b, m, p, lb: cast_workload(b, m, p, lb, False)),
        Workload("fanout", f"RPC fanout cast to {settings.subscribers} servers", ("rpc",),
                 "stream", lambda b, m, p, lb: cast_workload(b, m, p, lb, True)),
        Workload("notify", f"notifications, {settings.subscribers} pool-less listeners",
                 ("notifications",), "stream",
                 lambda b, m, p, lb: notify_workload(b, m, p, lb, False)),
        Workload("notify-pools", f"notifications, {settings.subscribers} pools",
                 ("notifications", "pools"), "stream",
                 lambda b, m, p, lb: notify_workload(b, m, p, lb, True)),
    ]


def run_workload(run: ConformanceRun, workload: Workload, settings: Settings,
                 progress: Progress, label: str) -> Measurement:
    """Run one workload on one driver; never raises, never hangs beyond its bounds."""
    m = Measurement(workload.name)
    caps = run.capabilities
    missing = [feature for feature in workload.needs if not getattr(caps, feature)]
    if missing:
        m.status = "unsupported"
        m.errors.append(f"the adapter declares no support for {', '.join(missing)}")
        return m
    bench = Workbench(run, settings, workload.name)
    progress(f"{label} setting up")
    try:
        workload.fn(bench, m, progress, label)
    except Exception as exc:
        m.status = "error"
        m.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        progress(f"{label} tearing down")
        teardown = bench.close()
        if teardown:
            m.errors += [f"teardown: {e}" for e in teardown]
    return m
