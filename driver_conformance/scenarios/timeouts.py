"""Timeouts: the caller's ``timeout`` and ``call_monitor_timeout``, and heartbeats.

Hypothesis: a caller's wait is bounded by ``timeout`` from the start of
``send()`` whatever happens (no listener, a silent listener, a backend that is
down), by ``call_monitor_timeout`` since the last sign of life when the server
stops heartbeating, and heartbeats keep a call alive without ever being taken
for its reply.  Every nominal duration is short and scaled, and every elapsed
time is checked against a lower bound (the timer did not fire early) and an
upper bound with tolerance (it fired at all); the exception must be
``MessagingTimeout``, any other type fails.

Call-monitor scenarios need the driver's call-monitor support and end as
UNSUPPORTED where the adapter declares none.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, NoReturn

import oslo_messaging
import pytest

from driver_conformance import faults
from driver_conformance.kit import Kit
from driver_conformance.outcomes import not_run
from driver_conformance.scenarios._support import (
    Collected,
    Pending,
    attempt,
    call_in_background,
    expect_failure,
    serve,
    spy_incoming,
)


def assert_timed_out(kit: Kit, pending: Pending, nominal: float, *, clause: str | None = None,
                     family: str | None = None) -> None:
    """``clause`` judges that ``pending`` ended with MessagingTimeout no earlier or later
    than ``nominal`` allows; ``family``, that it raised a MessagingException at all."""
    expect_failure(kit, pending, oslo_messaging.MessagingTimeout,
                   kit.timing.upper(nominal) + kit.timing.eventually, clause=clause,
                   family=family)
    lower, upper = kit.timing.lower(nominal), kit.timing.upper(nominal)
    with kit.clause(clause) if clause else contextlib.nullcontext():
        assert lower <= pending.elapsed <= upper, (
            f"{pending.what}: expected MessagingTimeout after {nominal:.2f}s "
            f"(between {lower:.2f}s and {upper:.2f}s), it came after {pending.elapsed:.2f}s")


class Heartbeats:
    """Calls ``message.heartbeat()`` every ``interval`` on a thread until stopped.

    It plays an RPC server that is still working on the call.  The pause
    between beats is a wait on the stop event, so stopping is immediate.

    When each beat starts and ends is recorded, because on a loaded machine
    this thread, not the driver, can be the one that falls silent:
    :meth:`largest_gap` tells a scenario whether the call monitor had a reason
    to fire.  Time spent inside the driver's ``heartbeat()`` is the driver's,
    not a silence of the kit.
    """

    def __init__(self, kit: Kit, message: Any, interval: float) -> None:
        self.kit = kit
        self.message = message
        self.interval = interval
        self.beats = 0
        self.errors: list[BaseException] = []
        self.started = time.monotonic()
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="conformance-heartbeats")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._starts.append(time.monotonic())
                self.kit.call(self.message.heartbeat, what="heartbeat()")
                self._ends.append(time.monotonic())
                self.beats += 1
            except BaseException as exc:  # reported by the scenario
                self.errors.append(exc)
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.kit.timing.call_bound)
        assert not self.errors, f"expected heartbeat() never to raise, got {self.errors!r}"

    def largest_gap(self, until: float) -> float:
        """The longest this thread stayed silent, outside ``heartbeat()``, up to ``until``."""
        starts = [t for t in self._starts if t < until]
        ends = [self.started, *(t for t in self._ends if t < until)]
        if len(ends) > len(starts):  # not inside a heartbeat() at ``until``
            starts.append(until)
        return max((start - end for end, start in zip(ends, starts, strict=False)),
                   default=0.0)


#: How often a heartbeat scenario is tried again when the kit's own heartbeat thread,
#: not the driver, fell silent for a call monitor's length (a loaded machine).
HEARTBEAT_ATTEMPTS = 3


def heartbeats_stalled(kit: Kit, pending: Pending, beats: Heartbeats, cmt: float) -> bool:
    """The call ended while the kit had been silent for ``cmt``: the monitor was right to fire.

    Such an attempt judges nothing about the driver; the scenario tries again.
    """
    return (pending.finished is not None
            and beats.largest_gap(pending.finished) >= kit.timing.lower(cmt))


def kit_too_slow(cmt: float) -> NoReturn:
    not_run(f"the kit's heartbeat thread fell silent for more than call_monitor_timeout "
            f"({cmt:.2f}s) in each of {HEARTBEAT_ATTEMPTS} attempts, so the call monitor "
            "was right to fire; the machine is too loaded at this time scale "
            "(try --time-scale=2)")


# ---------------------------------------------------------------------------------------
# timeout
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("send.timeout.raises-messaging-timeout", "send.errors.messaging-exception")
def test_call_times_out(kit: Kit) -> None:
    """A call the listener takes and never answers raises MessagingTimeout after ``timeout``.

    MessagingTimeout is also a MessagingException, the family every send()
    failure must belong to.  The no-listener case is the public scenario below.
    """
    nominal = kit.timing.short
    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "unanswered"},
                                 timeout=nominal)
    assert_timed_out(kit, pending, nominal, clause="send.timeout.raises-messaging-timeout",
                     family="send.errors.messaging-exception")
    assert sub.inbox.count() == 1, (
        f"expected the silent listener to have received the call once, got "
        f"{sub.inbox.count()}")


@pytest.mark.clause("send.timeout.raises-messaging-timeout")
def test_public_call_times_out(kit: Kit) -> None:
    """RPCClient.call to a topic no server listens on raises MessagingTimeout on time.

    With no listener at all a driver may notice the request is unroutable;
    it must still report a timeout, not another error, and not early.
    """
    nominal = kit.timing.short
    client = kit.rpc_client(kit.rpc_transport(), kit.names.target(), timeout=nominal)
    pending = Pending(lambda: kit.call(client.call, {}, "nobody_home",
                                       what="RPCClient.call()"), "RPCClient.call()")
    assert_timed_out(kit, pending, nominal, clause="send.timeout.raises-messaging-timeout")


@pytest.mark.clause("send.timeout.bounds-handoff", "send.errors.messaging-exception")
@pytest.mark.parametrize("kind", ["call", "cast"])
def test_timeout_bounds_send_during_outage(kit: Kit, kind: str) -> None:
    """With the backend down and retry unlimited, ``timeout`` still ends send().

    The driver has already talked to the backend once (a delivered cast), so
    the outage hits an established connection, the usual way it happens.
    """
    nominal = kit.timing.short
    _, sub, target = serve(kit)
    sender = kit.driver()
    kit.send(sender, target, {"q": "before"})
    sub.inbox.wait_for(1, kit.timing.eventually)
    injector = kit.faults(faults.OUTAGE)
    injector.start_outage()
    try:
        pending = Pending(lambda: kit.send(sender, target, {"q": kind}, retry=None,
                                           timeout=nominal, wait_for_reply=kind == "call"),
                          f"{kind} with timeout during an outage")
        assert_timed_out(kit, pending, nominal, clause="send.timeout.bounds-handoff",
                         family="send.errors.messaging-exception")
    finally:
        injector.heal()


# ---------------------------------------------------------------------------------------
# call monitor and heartbeats
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("rpc-incoming.client-timeout.from-call-monitor")
def test_client_timeout_from_call_monitor(kit: Kit) -> None:
    """The RPC dispatcher only heartbeats when the message's client_timeout is set.

    So a call with call_monitor_timeout must deliver it there, and a call
    without it, or a cast, must not invent one.
    """
    kit.require("rpc")
    _, sub, target = serve(kit)
    caller = kit.driver()
    monitored = call_in_background(kit, caller, target, {"q": "cmt"}, call_monitor_timeout=2)
    plain = call_in_background(kit, caller, target, {"q": "plain"})
    kit.send(caller, target, {"q": "cast"})
    messages = sub.inbox.wait_for(3, kit.timing.eventually)
    seen = {m.message["q"]: getattr(m, "client_timeout", "<missing>") for m in messages}
    for message in messages:
        kit.call(message.reply, {"ok": True}, what="reply()")
    monitored.result(kit.timing.eventually)
    plain.result(kit.timing.eventually)
    assert seen == {"cmt": 2, "plain": None, "cast": None}, (
        "expected client_timeout 2 for the call with call_monitor_timeout=2 and None for "
        f"the plain call and the cast, got {seen}")


@pytest.mark.clause("send.call-monitor.timeout-without-heartbeat")
def test_call_monitor_fires_without_heartbeats(kit: Kit) -> None:
    """A server that neither replies nor heartbeats: the call ends after about cmt.

    ``timeout`` is ten times longer, so a driver that ignores the call monitor
    is caught by the upper bound.
    """
    kit.require("rpc")
    cmt = kit.timing.s(0.3)
    _, sub, target = serve(kit)
    pending = call_in_background(kit, kit.driver(), target, {"q": "silent"},
                                 timeout=kit.timing.s(4.0), call_monitor_timeout=cmt)
    assert_timed_out(kit, pending, cmt)
    assert sub.inbox.count() == 1, "expected the silent server to have received the call"


@pytest.mark.clause("rpc-incoming.heartbeat.resets-caller-timer")
def test_heartbeats_keep_call_alive(kit: Kit) -> None:
    """Heartbeats every cmt/4 keep a call alive for 2.5 x cmt, then the real reply wins.

    Two ways to fail: a driver that ignores heartbeats times out at about
    cmt; one that takes a heartbeat for the reply returns early with a value
    that is not the reply.  An attempt in which the kit's own heartbeat thread
    stalled for cmt is tried again (:func:`heartbeats_stalled`).
    """
    kit.require("rpc")
    cmt = kit.timing.s(0.3)
    for _ in range(HEARTBEAT_ATTEMPTS):
        _, sub, target = serve(kit)
        pending = call_in_background(kit, kit.driver(), target, {"q": "slow"},
                                     timeout=kit.timing.s(4.0), call_monitor_timeout=cmt)
        message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
        beats = Heartbeats(kit, message, cmt / 4)
        finished_early = pending.done.wait(cmt * 2.5)
        beats.stop()
        if finished_early and heartbeats_stalled(kit, pending, beats, cmt):
            continue
        assert not finished_early, (
            f"expected the call to stay open while the server heartbeats every "
            f"{cmt / 4:.2f}s, it ended after {beats.beats} heartbeat(s) with "
            f"{pending.error or pending.value!r}")
        kit.call(message.reply, {"done": "slowly"}, what="reply()")
        got = pending.result(kit.timing.eventually)
        assert got == {"done": "slowly"}, f"expected the reply {{'done': 'slowly'}}, got {got!r}"
        return
    kit_too_slow(cmt)


@pytest.mark.clause("send.call-monitor.overall-timeout-bounds")
def test_heartbeats_do_not_extend_timeout(kit: Kit) -> None:
    """A server that heartbeats forever and never replies: the call ends at ``timeout``.

    ``timeout`` is 2.5 x cmt, so the lower bound also catches a driver that
    ignores the heartbeats and gives up at cmt (unless the kit's own heartbeat
    thread was the one that stalled: that attempt is tried again).
    """
    kit.require("rpc")
    cmt = kit.timing.s(0.3)
    nominal = cmt * 2.5
    for _ in range(HEARTBEAT_ATTEMPTS):
        _, sub, target = serve(kit)
        pending = call_in_background(kit, kit.driver(), target, {"q": "endless"},
                                     timeout=nominal, call_monitor_timeout=cmt)
        message = sub.inbox.wait_for(1, kit.timing.eventually)[0]
        beats = Heartbeats(kit, message, cmt / 4)
        try:
            assert_timed_out(kit, pending, nominal)
        except AssertionError:
            if heartbeats_stalled(kit, pending, beats, cmt) \
                    and pending.elapsed < kit.timing.lower(nominal):
                continue
            raise
        finally:
            beats.stop()
        return
    kit_too_slow(cmt)


@pytest.mark.clause("rpc-incoming.heartbeat.resets-caller-timer",
                    "rpc-incoming.client-timeout.from-call-monitor")
def test_public_call_monitor(kit: Kit) -> None:
    """RPCClient(call_monitor_timeout=2) on a method that runs 2.5 s gets its result.

    The public RPC server heartbeats every int(cmt)/2 seconds and not at all
    below 1 s, so 2 s is the shortest call monitor it keeps alive; this is the
    one slow scenario of the area.  It fails both when the driver does not hand
    client_timeout to the server and when heartbeats do not reach the caller.
    """
    kit.require("rpc")
    # oslo's RPC server heartbeats once a second for call_monitor_timeout=2, whatever the
    # kit's time scale: this scenario's times are oslo's, unscaled.
    cmt, beats_past_cmt = 2, 3
    beats = Collected("heartbeat(s) from the RPC server")

    class Slow:
        def slow(self, ctxt: Any) -> str:
            # The method's work ends once the server has heartbeated for longer than the
            # call monitor (a condition, not a sleep): only heartbeats kept the call alive.
            beats.wait_for(beats_past_cmt, cmt * beats_past_cmt)
            return "finished"

    def count_heartbeats(message: Any) -> None:
        heartbeat = message.heartbeat

        def counted() -> None:
            heartbeat()
            beats.add(message)

        message.heartbeat = counted

    target = kit.names.target(server=True)
    server_transport = kit.rpc_transport()
    seen = spy_incoming(server_transport._driver, count_heartbeats)
    kit.rpc_server(server_transport, target, [Slow()])
    client = kit.rpc_client(kit.rpc_transport(), target, timeout=cmt * 4,
                            call_monitor_timeout=cmt)
    got = attempt(lambda: kit.call(client.call, {}, "slow", bound=cmt * 5,
                                   what="RPCClient.call() with call_monitor_timeout"))
    with kit.clause("rpc-incoming.client-timeout.from-call-monitor"):
        timeouts = [getattr(m, "client_timeout", None) for m in seen]
        assert timeouts and all(t == 2 for t in timeouts), (
            "expected the server's incoming message to carry client_timeout=2 (the caller's "
            f"call_monitor_timeout), got {timeouts}")
    with kit.clause("rpc-incoming.heartbeat.resets-caller-timer"):
        assert got == "finished", (
            f"expected 'finished' after {beats_past_cmt} heartbeats (about "
            f"{beats_past_cmt}s, past call_monitor_timeout={cmt}), got {got!r}")


@pytest.mark.clause("rpc-incoming.heartbeat.no-raise")
def test_heartbeat_never_raises(kit: Kit) -> None:
    """heartbeat() on a cast and after the reply was sent: no raise.

    Both happen to a real RPC server: its watchdog thread may beat once more
    after the method returned.  (After the caller gave up, and with the
    backend down, are in replies.py, next to the same cases for reply().)
    """
    _, sub, target = serve(kit)
    caller = kit.driver()
    kit.send(caller, target, {"q": "cast"})
    cast = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    kit.call(cast.heartbeat, what="heartbeat() on a cast")

    answered = call_in_background(kit, caller, target, {"q": "answered"})
    message = sub.inbox.wait_for(2, kit.timing.eventually)[1]
    kit.call(message.reply, {"ok": 1}, what="reply()")
    answered.result(kit.timing.eventually)
    kit.call(message.heartbeat, what="heartbeat() after reply()")
