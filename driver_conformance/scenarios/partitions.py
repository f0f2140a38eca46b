"""Faults real networks have: a silent partition, a slow link, one host of several lost.

Hypothesis: the timer and retry sentences of the contract hold on the
networks drivers really meet, not only on one that either works or fails
loudly.  On a *frozen* link (no byte passes, nothing is closed, no RST: a
silent partition, which only the driver's own timers can detect) a call
still raises MessagingTimeout at its ``timeout``, a bounded ``retry`` still
gives up in bounded time, and once the link thaws the same driver carries
calls and casts again without losing or duplicating what it accepted.  On a
*slow* link (every byte delayed) casts, calls, the call timeout and the
call-monitor keep-alive behave as on a fast one.  With a *multi-host* URL
one of whose hosts goes away (the backend stays up behind the others), the
driver moves to another host and restores every subscription.

Every scenario needs a fault kind of the adapter's injector
(:data:`~driver_conformance.faults.FREEZE`, :data:`~driver_conformance.faults.DELAY`,
:data:`~driver_conformance.proxy.injector.HOST_OUTAGE`)
and asks for it before building anything, so an adapter without it gets a
NOT RUN naming the kind at once.  The scenarios of :mod:`.retry` and
:mod:`.timeouts` judge the same sentences on an outage (refused connections);
the ones here differ only in the fault, and judge clauses of their own so a
driver that handles outages and not silent links is told exactly that.  The
host outage is not :mod:`.failover`'s node loss: no node of the backend goes,
nor what it stores, only the way to it; that lane loses real cluster nodes,
this one needs nothing but two ways to one backend.

Bounds: a call's timeout is judged like :mod:`.timeouts` does (a lower bound
a little under the nominal value, an upper bound with tolerance).  "Gives up
in bounded time" on a frozen link is :data:`GIVE_UP` (seconds, scaled): the
contract names no bound, and a driver can only notice a silent link by a
timer of its own (a missed heartbeat, a confirmation that does not come), so
the bound is the kit's bound on any driver call
(:attr:`~driver_conformance.timing.Timing.call_bound`): a send still blocked
then is a hung send by the kit's own definition.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest

from driver_conformance import faults
from driver_conformance.bounded import DriverHung
from driver_conformance.faults import FaultInjector
from driver_conformance.kit import Kit
from driver_conformance.proxy.injector import HOST_OUTAGE
from driver_conformance.scenarios._support import (
    Pending,
    Replier,
    Tally,
    serve,
    subscription_addresses,
)
from driver_conformance.timing import Deadline

#: Nominal seconds the recovery scenario keeps the link frozen: longer than the
#: reference's own freeze detection, so sends during it are retried, not just held.
FREEZE_HOLD = 0.5
#: Nominal seconds every byte is delayed, each way, in the slow-link scenario.
LATENCY = 0.1
#: Nominal call timeout of the scenarios here (a call's whole wait, judged with tolerance).
CALL_TIMEOUT = 0.5
#: Nominal call_monitor_timeout of the slow-link scenario: its heartbeats cross the
#: slow link too, so it is a few round trips long.
CALL_MONITOR = 0.8
#: Nominal seconds a send after a host outage may take to arrive: the driver sees
#: its connection reset, waits its reconnect interval, connects to the next host
#: and subscribes again.
FAILOVER = 8.0
#: The hosts lost in turn (each healed before the next): the first two of the URL.
HOSTS_LOST = (0, 1)


@contextlib.contextmanager
def frozen(injector: FaultInjector) -> Iterator[None]:
    """The link is frozen inside the block, and thawed after it whatever happens."""
    injector.freeze()
    try:
        yield
    finally:
        injector.heal()


def replying_server(kit: Kit, *, history: bool = True) -> tuple[Replier, Any, Any]:
    """A listener that records and answers, and the topic target a caller sends to.

    Without ``history`` its receipts stay out of the delivery history: for
    scenarios whose sends are expected to fail, so a send the backend got
    anyway is not judged here (whether it should have is a retry question).
    """
    replier = Replier(kit, history=history)
    _, sub, target = serve(kit, inbox=replier.inbox("listener"))
    return replier, target, sub


def warm_call(kit: Kit, sender: Any, target: Any, key: str, *, record: bool = True) -> None:
    """One call through before the fault: connections, queues and the reply queue exist."""
    with kit.sending(key) if record else contextlib.nullcontext():
        got = kit.send(sender, target, {"key": key, "answer": True}, wait_for_reply=True,
                       timeout=kit.timing.eventually)
    assert got == {"key": key}, f"expected the call {key!r} to return its reply, got {got!r}"


def ended_in_time(pending: Pending, bound: float) -> BaseException | None:
    """Wait up to ``bound`` for ``pending`` to end; fail naming how long it blocked."""
    if not pending.done.wait(bound):
        raise AssertionError(f"{pending.what}: expected it to end within {bound:.1f}s on a "
                             "frozen link, it was still blocked")
    return pending.error


# ---------------------------------------------------------------------------------------
# a silent partition (freeze)
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("send.partition.call-timeout")
def test_call_times_out_on_frozen_link(kit: Kit) -> None:
    """A call made while the link is frozen raises MessagingTimeout at its timeout.

    A first call goes through (so the driver is connected and its reply queue
    exists); then the link freezes and a call with a short ``timeout`` is
    made.  Nothing comes back and nothing is closed: the caller's own timer
    is all that can end the call, and it must end it on time with
    MessagingTimeout.  A driver whose reconnect or publish loop ignores the
    call's timeout blocks far longer.
    """
    injector = kit.faults(faults.FREEZE)
    _, target, _ = replying_server(kit, history=False)
    sender = kit.driver()
    warm_call(kit, sender, target, "before", record=False)
    nominal = kit.timing.s(CALL_TIMEOUT)
    lower, upper = kit.timing.lower(nominal), kit.timing.upper(nominal)
    with frozen(injector):
        pending = Pending(lambda: kit.send(sender, target, {"key": "frozen", "answer": True},
                                           wait_for_reply=True, timeout=nominal),
                          f"call(timeout={nominal:.2f}) on a frozen link")
        finished = pending.done.wait(upper)
    assert finished, (f"{pending.what}: expected MessagingTimeout within {upper:.2f}s, it "
                      f"was still blocked after {upper:.2f}s")
    error = pending.error
    assert isinstance(error, oslo_messaging.MessagingTimeout), (
        f"{pending.what}: expected MessagingTimeout, it "
        + (f"returned {pending.value!r}" if error is None
           else f"raised {type(error).__module__}.{type(error).__name__}: {error}"))
    assert lower <= pending.elapsed <= upper, (
        f"{pending.what}: expected MessagingTimeout after {nominal:.2f}s (between "
        f"{lower:.2f}s and {upper:.2f}s), it came after {pending.elapsed:.2f}s")


def _judge_give_ups(kit: Kit, pendings: list[Pending]) -> None:
    """Each of ``pendings`` ended within the kit's call bound with MessageDeliveryFailure or
    MessagingTimeout (the driver gave up; a success on a frozen link is not possible)."""
    bound = kit.timing.call_bound
    deadline = Deadline(bound + kit.timing.slack)  # one wait for all: they run at once
    for pending in pendings:
        error = ended_in_time(pending, deadline.remaining())
        if isinstance(error, DriverHung):
            raise AssertionError(f"{pending.what}: expected it to give up, it was still "
                                 f"blocked after {bound:.1f}s (the kit's bound on any "
                                 "driver call)")
        assert error is not None, (
            f"{pending.what}: expected it to give up on a frozen link, it returned "
            f"{pending.value!r}")
        assert isinstance(error, (oslo_messaging.MessageDeliveryFailure,
                                  oslo_messaging.MessagingTimeout)), (
            f"{pending.what}: expected MessageDeliveryFailure (or MessagingTimeout), it "
            f"raised {type(error).__module__}.{type(error).__name__}: {error}")


@pytest.mark.clause("send.partition.bounded-retry")
def test_bounded_retry_gives_up_on_frozen_link(kit: Kit) -> None:
    """Casts with retry=0 and retry=1 made on a frozen link give up in bounded time.

    Both are made at once, on one freeze, so the scenario costs one bound.
    The link accepts nothing and refuses nothing: a driver that counts only
    refused connections as failed attempts never reaches its retry count.
    """
    injector = kit.faults(faults.FREEZE)
    _, target, _ = replying_server(kit, history=False)
    sender = kit.driver()
    warm_call(kit, sender, target, "before", record=False)
    with frozen(injector):
        pendings = [Pending(lambda r=retry: kit.send(sender, target, {"key": f"cast-{r}"},
                                                     retry=r),
                            f"cast(retry={retry}) on a frozen link") for retry in (0, 1)]
        _judge_give_ups(kit, pendings)


@pytest.mark.clause("notify.partition.bounded-retry")
def test_notify_bounded_retry_gives_up_on_frozen_link(kit: Kit) -> None:
    """send_notification with retry=0 and retry=1 on a frozen link gives up in bounded time.

    Driver level only: the Notifier swallows what the driver raises.  One
    notification goes through first, so the driver is connected when the
    link freezes.
    """
    injector = kit.faults(faults.FREEZE)
    listen_target = kit.names.target()
    tally = Tally(kit, history=False)  # the notifications that gave up are not judged lost
    kit.listen_notifications(kit.driver(), [(listen_target, "info")],
                             inbox=tally.inbox("notification listener"))
    sender = kit.driver()
    to = oslo_messaging.Target(exchange=listen_target.exchange,
                               topic=f"{listen_target.topic}.info")
    kit.notify(sender, to, {"key": "before"}, retry=-1)  # the Notifier's default
    tally.wait_total(1, kit.timing.eventually)
    with frozen(injector):
        pendings = [Pending(lambda r=retry: kit.notify(sender, to, {"key": f"n-{r}"}, retry=r),
                            f"send_notification(retry={retry}) on a frozen link")
                    for retry in (0, 1)]
        _judge_give_ups(kit, pendings)


@pytest.mark.clause("send.partition.recovers")
def test_driver_recovers_after_thaw(kit: Kit) -> None:
    """After a freeze, the same drivers carry calls and casts again; nothing is lost or doubled.

    A cast goes through before the freeze.  During it, a cast with unlimited
    retry is made; it may return (the driver buffered it) or wait, but once
    the link thaws it must return, and whatever returned without error must
    be delivered exactly once.  Then a call must get its reply within the
    eventually ceiling, and a last cast (the barrier) arrives after every
    other, so the history is judged on everything the drivers accepted.
    """
    injector = kit.faults(faults.FREEZE)
    _, target, _ = replying_server(kit)
    sender = kit.driver()
    warm_call(kit, sender, target, "before")
    with kit.sending("cast-before"):
        kit.send(sender, target, {"key": "cast-before"}, retry=None)
    kit.history.wait_received("cast-before", kit.timing.eventually)

    def cast_during() -> None:
        with kit.sending("cast-during"):
            kit.send(sender, target, {"key": "cast-during"}, retry=None)

    with frozen(injector):
        during = Pending(cast_during, "cast(retry=None) made on a frozen link")
        during.done.wait(kit.timing.s(FREEZE_HOLD))  # the freeze lasts this long at least
    during.result(kit.timing.eventually)
    with kit.sending("call-after"):
        got = kit.send(sender, target, {"key": "call-after", "answer": True},
                       wait_for_reply=True, timeout=kit.timing.eventually, retry=None)
    assert got == {"key": "call-after"}, (
        f"expected the call after the thaw to return its reply, got {got!r}")
    with kit.sending("barrier"):
        kit.send(sender, target, {"key": "barrier"}, retry=None)
    kit.history.wait_received("barrier", kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, (f"expected every send accepted around the freeze delivered once, "
                          f"got {counts}")


# ---------------------------------------------------------------------------------------
# a slow link (delay)
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("send.latency.timers-hold")
def test_timers_hold_on_slow_link(kit: Kit) -> None:
    """With every byte delayed, casts, calls, the call timeout and heartbeats still work.

    In order, on one slow link: a cast with retry=0 returns and arrives once
    (a driver whose confirmation timer is shorter than the round trip fails
    it, or sends it twice); a call returns its reply; a call nobody answers
    raises MessagingTimeout on time; a call longer than its
    ``call_monitor_timeout`` whose server heartbeats returns its reply (the
    heartbeats cross the slow link too).  The last part needs the driver's
    call-monitor support and is left out where the adapter declares none.
    """
    injector = kit.faults(faults.DELAY)
    _, target, server = replying_server(kit)
    sender = kit.driver()
    warm_call(kit, sender, target, "before")
    injector.delay(kit.timing.s(LATENCY))
    try:
        with kit.sending("cast"):
            kit.send(sender, target, {"key": "cast"}, retry=0)
        kit.history.wait_received("cast", kit.timing.eventually)
        with kit.sending("call"):
            got = kit.send(sender, target, {"key": "call", "answer": True},
                           wait_for_reply=True, timeout=kit.timing.eventually)
        assert got == {"key": "call"}, f"expected the call's reply on a slow link, got {got!r}"
        _judge_timeout_on_slow_link(kit, sender)
        if kit.caps.call_monitor:
            _judge_keep_alive_on_slow_link(kit, sender, server, target)
    finally:
        injector.heal()
    with kit.sending("barrier"):
        kit.send(sender, target, {"key": "barrier"})
    kit.history.wait_received("barrier", kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, f"expected every send on the slow link delivered once, got {counts}"


def _judge_timeout_on_slow_link(kit: Kit, sender: Any) -> None:
    nominal = kit.timing.s(CALL_TIMEOUT)
    lower, upper = kit.timing.lower(nominal), kit.timing.upper(nominal)
    nobody = kit.names.target()
    pending = Pending(lambda: kit.send(sender, nobody, {"key": "unanswered"},
                                       wait_for_reply=True, timeout=nominal),
                      f"call(timeout={nominal:.2f}) nobody answers, on a slow link")
    error = ended_in_time(pending, upper + kit.timing.eventually)
    assert isinstance(error, oslo_messaging.MessagingTimeout), (
        f"{pending.what}: expected MessagingTimeout, got {error or pending.value!r}")
    assert lower <= pending.elapsed <= upper, (
        f"{pending.what}: expected MessagingTimeout after {nominal:.2f}s (between "
        f"{lower:.2f}s and {upper:.2f}s), it came after {pending.elapsed:.2f}s")


def _judge_keep_alive_on_slow_link(kit: Kit, sender: Any, server: Any, to: Any) -> None:
    """A call the server (which already answered before: its connections are up) works
    on for longer than ``call_monitor_timeout``, heartbeating, then answers."""
    cmt = kit.timing.s(CALL_MONITOR)
    seen = server.inbox.count()

    def call() -> Any:
        with kit.sending("slow"):
            return kit.send(sender, to, {"key": "slow"}, wait_for_reply=True,
                            timeout=kit.timing.s(4.0), call_monitor_timeout=cmt)

    pending = Pending(call, f"call(call_monitor_timeout={cmt:.2f}) kept alive on a slow link")
    message = server.inbox.wait_for(seen + 1, kit.timing.eventually)[seen]
    stop = threading.Event()
    beat_errors: list[BaseException] = []

    def beat() -> None:
        while not stop.wait(cmt / 4):
            try:
                kit.call(message.heartbeat, what="heartbeat()")
            except BaseException as exc:  # judged below
                beat_errors.append(exc)
                return

    beater = threading.Thread(target=beat, name="conformance-heartbeats", daemon=True)
    beater.start()
    ended_early = pending.done.wait(cmt * 1.5)
    stop.set()
    beater.join(kit.timing.call_bound)
    assert not beat_errors, f"expected heartbeat() never to raise, got {beat_errors!r}"
    assert not ended_early, (
        f"{pending.what}: expected the heartbeats (every {cmt / 4:.2f}s) to keep the call "
        f"open, it ended with {pending.error or pending.value!r}")
    kit.call(message.reply, {"done": "slowly"}, what="reply()")
    got = pending.result(kit.timing.eventually)
    assert got == {"done": "slowly"}, f"expected the reply {{'done': 'slowly'}}, got {got!r}"


# ---------------------------------------------------------------------------------------
# one host of a multi-host URL lost
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("listen.partition.failover-to-live-host")
def test_failover_to_other_host(kit: Kit) -> None:
    """When the host the drivers use goes away, they move to another and carry on.

    A listener subscribes to its topic, server and fanout addresses; a
    caller makes one call (its reply queue exists) and one cast to each
    address goes through.  Then the first host of the URL refuses and
    resets: casts with unlimited retry to each address and a call must then
    go through within :data:`FAILOVER` (the listener restored every
    subscription on another host, the caller its reply subscription).  The
    host comes back and the second one goes the same way, so every driver
    loses the host it is on at least once, whichever host it picked first (a
    driver may spread its connections over the hosts).  The delivery history
    is clean: what the backend accepted before, between or after is
    delivered once.
    """
    injector = kit.faults(HOST_OUTAGE)
    server = kit.driver()
    listen_target = kit.names.target(server=True)
    replier = Replier(kit)
    kit.listen(server, listen_target, inbox=replier.inbox("listener"))
    addresses = subscription_addresses(listen_target)
    sender = kit.driver()
    warm_call(kit, sender, addresses["topic"], "call-before")
    for name, address in addresses.items():
        with kit.sending(f"{name}-before"):
            kit.send(sender, address, {"key": f"{name}-before"})
    for name in addresses:
        kit.history.wait_received(f"{name}-before", kit.timing.eventually)
    for host in HOSTS_LOST:
        _judge_host_lost(kit, injector, host, sender, addresses)
    with kit.sending("barrier"):
        kit.send(sender, addresses["topic"], {"key": "barrier"}, retry=None)
    kit.history.wait_received("barrier", kit.timing.eventually)
    counts = kit.history.check()
    assert counts.clean, (f"expected every send accepted around the host outage delivered "
                          f"once, got {counts}")


def _judge_host_lost(kit: Kit, injector: Any, host: int, sender: Any,
                     addresses: dict[str, Any]) -> None:
    """Host ``host`` is lost: sends to every address and a call go through, then it heals."""
    bound = kit.timing.s(FAILOVER)
    deadline = Deadline(bound)
    kit.call(injector.lose_host, host, what=f"lose_host({host})")
    try:
        for name, address in addresses.items():
            with kit.sending(f"{name}-{host}"):
                kit.send(sender, address, {"key": f"{name}-{host}"}, retry=None,
                         bound=max(deadline.remaining(), kit.timing.short))
        missing = []
        for name in addresses:
            try:
                kit.history.wait_received(f"{name}-{host}", deadline.remaining())
            except AssertionError:
                missing.append(name)
        assert not missing, (
            f"expected sends to every address to arrive within {bound:.1f}s of losing host "
            f"{host}; nothing arrived for {missing}: those subscriptions were not restored "
            "on another host")
        with kit.sending(f"call-{host}"):
            got = kit.send(sender, addresses["topic"], {"key": f"call-{host}", "answer": True},
                           wait_for_reply=True, retry=None,
                           timeout=max(deadline.remaining(), kit.timing.short))
        assert got == {"key": f"call-{host}"}, (
            f"expected the call after losing host {host} to return its reply, got {got!r}")
    finally:
        injector.heal()
