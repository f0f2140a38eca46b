"""Failover with real node loss: a node of a clustered backend goes away mid-run.

Hypothesis: when the node leading the queue of the topic a driver uses is
lost, and with it every connection through that node, the driver reconnects
to another host of its multi-host transport URL and restores every
subscription, so messages
sent afterwards to the topic, the server and the fanout address arrive, and
calls get their replies.  Where the backend replicates its queues, nothing the
backend accepted before the loss is lost (messages still queued on it are
delivered from a surviving replica) and nothing is delivered twice, although
sends in flight are retried across the failover.  Where it does not (a classic
RabbitMQ queue lives on one node), what was queued on the lost node is lost
with it: the scenarios report that as the loss it is, and a lane whose
backend is configured that way says so in its expectations file.

Every scenario here needs the adapter's ``node-loss`` fault
(:meth:`~driver_conformance.faults.FaultInjector.lose_node`) and is NOT RUN
without it, before any driver is built.  The node lost is the one leading the
scenario's own queue, found by asking the backend, not assumed.  Each
scenario brings the node back itself (``heal``, bounded), so the next one
starts on a whole cluster.

Bounds: a message sent after the loss must arrive within :data:`FAILOVER`
(seconds, scaled): long enough for the driver to see its connection die, wait
its reconnect interval, connect to the next host, redeclare its queues and
consume again, and for the backend to elect new queue leaders.  Restarting
the node (:data:`RESTART`) is the backend's affair and bounded separately.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest

from driver_conformance import faults
from driver_conformance.kit import Kit
from driver_conformance.scenarios import _support as support
from driver_conformance.scenarios._support import Tally, target
from driver_conformance.timing import Deadline

#: Nominal seconds a message sent after a node loss may take to arrive.
FAILOVER = 15.0
#: Nominal seconds the adapter may take to restart the lost node and see it rejoin.
RESTART = 180.0
#: Casts a stream must deliver after the loss before it is stopped.
AFTER_LOSS = 20
#: Messages queued on the lost node before it goes, in the store-and-forward scenarios.
QUEUED = 10
#: Nominal seconds a probe waits to arrive before the next one is sent.
PROBE_WAIT = 0.5


@contextlib.contextmanager
def node_lost(kit: Kit, topic: str) -> Iterator[int]:
    """The node leading ``topic``'s queue is down inside the block, back (rejoined) after it."""
    injector = kit.faults(faults.NODE_LOSS)
    index = kit.call(injector.lose_node, "leader", topic=topic,
                     what=f"lose_node('leader', topic={topic!r})")
    try:
        yield index
    finally:
        kit.call(injector.heal, what="heal() (restart the lost node)",
                 bound=kit.timing.s(RESTART))


class Replier(support.Replier):
    """A replier (see ``_support``) that keeps probes apart.

    Probes (keys starting ``probe-``) are counted apart and kept out of the
    history: they are sent until one gets through, so those sent before the
    subscription was back are not losses the history should judge.
    """

    def __init__(self, kit: Kit) -> None:
        super().__init__(kit)
        self._probes: set[str] = set()

    def record(self, where: str, key: str) -> None:
        if key.startswith("probe-"):
            with self._cond:
                self._probes.add(key)
                self._cond.notify_all()
            return
        super().record(where, key)


    def wait_probe(self, prefix: str, timeout: float) -> bool:
        """Whether a probe whose key starts with ``prefix`` arrived within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(k.startswith(prefix) for k in self._probes), timeout)


def probe_until_delivered(kit: Kit, replier: Replier, sender: Any, to: Any, name: str,
                          bound: float) -> tuple[int, float]:
    """Send probes to ``to`` until one arrives: (probes sent, seconds it took).

    Each probe waits :data:`PROBE_WAIT` for itself or an earlier one to arrive
    before the next is sent; the whole is bounded by ``bound``.
    """
    deadline = Deadline(bound)
    prefix = f"probe-{name}-"
    sent = 0
    while True:
        kit.send(sender, to, {"key": f"{prefix}{sent}"}, retry=None,
                 bound=max(deadline.remaining(), kit.timing.short))
        sent += 1
        wait = min(kit.timing.s(PROBE_WAIT), deadline.remaining())
        if replier.wait_probe(prefix, wait):
            return sent, bound - deadline.remaining()
        if deadline.expired():
            raise AssertionError(f"no probe sent to the {name} address arrived within "
                                 f"{bound:.0f}s ({sent} sent)")


def wait_keys(tally: Tally, keys: list[str], timeout: float) -> list[str]:
    """Wait (one deadline for all) until each key arrived somewhere; the keys that did not."""
    deadline = Deadline(timeout)
    missing = []
    for key in keys:
        try:
            tally.kit.history.wait_received(key, deadline.remaining())
        except AssertionError:
            missing.append(key)
    return missing


# ---------------------------------------------------------------------------------------
# subscriptions and replies
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("listen.failover.restores-subscriptions", "send.wait-for-reply.returns-reply")
def test_subscriptions_and_replies_survive_node_loss(kit: Kit,
                                                     request: pytest.FixtureRequest) -> None:
    """After the node leading the topic's queue is lost, every address delivers again.

    A listener subscribes to its topic, server and fanout addresses; a
    caller has made a call, so its reply queue exists too.  With the node
    leading the topic queue down, probes are sent to each address until one
    arrives (bounded by :data:`FAILOVER`): the driver reconnected to another
    host and restored that subscription.  Probes sent before that are not
    judged here (whether the backend kept them is the queued-message
    scenarios' question).  Then one recorded send to each address and a new
    call must go through, once each: the caller's reply subscription was
    restored too.
    """
    kit.faults(faults.NODE_LOSS)
    server = kit.driver()
    listen_target = kit.names.target(server=True)
    replier = Replier(kit)
    kit.listen(server, listen_target, inbox=replier.inbox("listener"))
    exchange, topic = listen_target.exchange, listen_target.topic
    addresses = {
        "topic": target(exchange, topic),
        "server": target(exchange, topic, listen_target.server),
        "fanout": target(exchange, topic, fanout=True),
    }
    sender = kit.driver()
    with kit.sending("call-before"):
        got = kit.send(sender, addresses["topic"], {"key": "call-before", "answer": True},
                       wait_for_reply=True, timeout=kit.timing.eventually)
    assert got == {"key": "call-before"}, f"expected the first call's reply, got {got!r}"
    bound = kit.timing.s(FAILOVER)
    with node_lost(kit, topic) as lost:
        with kit.clause("listen.failover.restores-subscriptions"):
            deadline = Deadline(bound)
            restored: dict[str, str] = {}
            for name, address in addresses.items():
                try:
                    probes, took = probe_until_delivered(kit, replier, sender, address, name,
                                                         deadline.remaining())
                except AssertionError:
                    raise AssertionError(
                        f"expected the listener's {name} subscription to deliver again within "
                        f"{bound:.0f}s of losing node {lost}; it did not (restored so far: "
                        f"{restored or 'none'})") from None
                restored[name] = f"{probes} probe(s), {took:.1f}s"
            request.node.user_properties.append(("failover", dict(restored, lost=lost)))
            for name, address in addresses.items():
                with kit.sending(name):
                    kit.send(sender, address, {"key": name}, retry=None, bound=bound)
            missing = wait_keys(replier, list(addresses), bound)
            assert not missing, (f"after the failover ({restored}), sends to {missing} did "
                                 f"not arrive within {bound:.0f}s")
        with kit.clause("send.wait-for-reply.returns-reply"), kit.sending("call-after"):
            got = kit.send(sender, addresses["topic"], {"key": "call-after", "answer": True},
                           wait_for_reply=True, timeout=bound, retry=None,
                           bound=bound + kit.timing.slack)
            assert got == {"key": "call-after"}, (
                f"expected the reply to a call made with node {lost} down, got {got!r}")
    with kit.clause("listen.failover.restores-subscriptions"):
        counts = kit.history.check()
        assert counts.clean, f"subscriptions across a node loss: expected nothing lost or " \
                             f"duplicated, got {counts}"


# ---------------------------------------------------------------------------------------
# a stream of casts across the loss
# ---------------------------------------------------------------------------------------


class CastStream:
    """Casts keyed ``c-0``, ``c-1``, ... one after another on a thread until stopped.

    Each cast is recorded in the history with its outcome, and with the wall
    clock interval it took (to match the driver's log records against);
    ``retry=None``, so a cast in flight when the node goes is retried through
    the failover.
    """

    def __init__(self, kit: Kit, driver: Any, to: oslo_messaging.Target,
                 limit: int = 5000) -> None:
        self.kit = kit
        self.driver = driver
        self.to = to
        self.limit = limit
        self.stop = threading.Event()
        self.sent_ok = 0
        self.error: BaseException | None = None
        #: key -> (wall-clock start, end) of its send.
        self.windows: dict[str, tuple[float, float]] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="conformance-cast-stream",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        bound = self.kit.timing.s(FAILOVER)
        try:
            for n in range(self.limit):
                if self.stop.is_set():
                    return
                key = f"c-{n}"
                began = time.time()
                try:
                    with self.kit.sending(key):
                        self.kit.send(self.driver, self.to, {"key": key}, retry=None,
                                      bound=bound)
                finally:
                    self.windows[key] = (began, time.time())
                with self._cond:
                    self.sent_ok += 1
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the scenario
            self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def wait_sent(self, count: int, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.sent_ok >= count or self.error is not None
                                       or not self._thread.is_alive(), timeout):
                raise AssertionError(f"expected {count} casts to be sent within "
                                     f"{timeout:.0f}s, {self.sent_ok} were")
        if self.error is not None:
            raise AssertionError(f"a cast with retry=None failed: {self.error!r}") \
                from self.error

    def finish(self, timeout: float) -> None:
        self.stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the cast stream did not stop within {timeout:.0f}s")
        if self.error is not None:
            raise AssertionError(f"a cast with retry=None failed: {self.error!r}") \
                from self.error

    def retried(self, records: list[logging.LogRecord]) -> set[str]:
        """The keys whose send the driver logged a failed attempt of, and retried.

        The rabbit driver logs each failed attempt ("AMQP server on ... is
        unreachable ... Trying again") on the thread of the send, which is the
        kit's bounded call; a record from such a thread within a send's
        interval belongs to that send (the stream sends one at a time).
        """
        failed = [r.created for r in records
                  if r.threadName.startswith("conformance-call:driver.send")
                  and "unreachable" in r.getMessage()]
        return {key for key, (a, b) in self.windows.items() if any(a <= t <= b for t in failed)}


@pytest.mark.clause("send.retry.no-duplicates", "send.one-of-many.single-copy",
                    "listen.failover.restores-subscriptions")
def test_cast_stream_across_node_loss(kit: Kit, request: pytest.FixtureRequest,
                                      caplog: pytest.LogCaptureFixture) -> None:
    """Casts streamed while the topic queue's leader is lost arrive once each, none lost.

    Two listeners (two servers, each with its own driver, as two RPC servers
    of a service) consume the topic.  Casts with ``retry=None`` flow without
    pause; once they are arriving the node goes, and the stream goes on until
    :data:`AFTER_LOSS` more casts were sent.  A last cast after the stream is
    the barrier.  Every cast whose send returned must arrive (the backend
    accepted it), and none may arrive twice, counted across both listeners
    (each listener drops duplicates it recognises itself, so only a copy that
    reaches the *other* listener shows).  A duplicate of a cast whose send the
    driver retried disproves ``send.retry.no-duplicates``; one of a cast sent
    once is a redelivery -- its first copy was acknowledged, the backend never
    kept the acknowledgement -- and disproves ``send.one-of-many.single-copy``.
    """
    kit.faults(faults.NODE_LOSS)
    tally = Tally(kit)
    exchange, topic = kit.names.exchange(), kit.names.topic()
    for n in range(2):
        kit.listen(kit.driver(), target(exchange, topic, kit.names.server()),
                   inbox=tally.inbox(f"server-{n}"))
    to = target(exchange, topic)
    stream = CastStream(kit, kit.driver(), to)
    try:
        tally.wait_total(10, kit.timing.eventually)
        before_loss = stream.sent_ok
        with node_lost(kit, topic) as lost, kit.clause("listen.failover.restores-subscriptions"):
            at_loss = stream.sent_ok
            stream.wait_sent(at_loss + AFTER_LOSS, kit.timing.s(FAILOVER) + kit.timing.eventually)
            stream.finish(kit.timing.s(FAILOVER))
            with kit.sending("barrier"):
                kit.send(stream.driver, to, {"key": "barrier"}, retry=None,
                         bound=kit.timing.s(FAILOVER))
            missing = wait_keys(tally, ["barrier"], kit.timing.s(FAILOVER))
            assert not missing, "expected the barrier cast to arrive after the failover"
            tally.quiet(kit.timing.quiet)
    finally:
        stream.stop.set()
    # The evidence, then one judgment per clause (each recorded, the first failure raised).
    retried = stream.retried(caplog.records)
    dropped = sum("ignoring duplicate message" in r.getMessage() for r in caplog.records)
    twice = {key: where for n in range(stream.sent_ok)
             if len(where := kit.history.receivers(key := f"c-{n}")) > 1}
    never = [f"c-{n}" for n in range(stream.sent_ok) if not kit.history.receivers(f"c-{n}")]
    request.node.user_properties.append(("failover", {
        "lost node": lost, "sent while it went": f"c-{before_loss}..c-{at_loss}",
        "sends retried": sorted(retried), "duplicates dropped by a listener": dropped,
        "twice": twice, "never": never}))
    counts = kit.history.check()
    context = (f"{stream.sent_ok} casts streamed across the loss of node {lost} "
               f"(c-{before_loss}..c-{at_loss} in flight as it went; sends retried: "
               f"{sorted(retried) or 'none'}; duplicates dropped by a listener: {dropped}; "
               f"{counts})")
    with kit.clause("listen.failover.restores-subscriptions", soft=True):
        assert not never and not counts.lost, (
            f"{context}: expected every cast whose send returned to arrive; never: "
            f"{', '.join(never[:5])}{' ...' if len(never) > 5 else ''}")
    copies = [f"{k} at {w}" for k, w in twice.items() if k in retried]
    with kit.clause("send.retry.no-duplicates", soft=True):
        assert not copies, (f"{context}: a retried send delivered twice: "
                            f"{'; '.join(copies)}")
    redelivered = [f"{k} at {w}" for k, w in twice.items() if k not in retried]
    with kit.clause("send.one-of-many.single-copy", soft=True):
        assert not redelivered, (
            f"{context}: sent once, delivered to two listeners (redelivered after its first "
            f"copy was acknowledged): {'; '.join(redelivered)}")


# ---------------------------------------------------------------------------------------
# messages queued on the lost node
# ---------------------------------------------------------------------------------------


@pytest.mark.clause("listen.failover.restores-subscriptions")
def test_queued_casts_survive_node_loss(kit: Kit) -> None:
    """Casts queued while no listener consumes are delivered after the queue's leader is lost.

    A listener subscribes and goes (stopped and cleaned up), so its queue
    exists with nobody consuming; casts are sent to it, and each send
    returns (the backend took them).  Then the node leading that queue goes.
    A new listener on the same target must receive every one of them, once:
    a failover that brings the subscription back without what it held has
    not restored it.  (Stands in for a clause of its own; see the findings.)
    """
    kit.faults(faults.NODE_LOSS)
    listen_target = kit.names.target(server=True)
    first = kit.listen(kit.driver(), listen_target)
    first.cleanup()
    sender = kit.driver()
    to = target(listen_target.exchange, listen_target.topic)
    keys = [f"q-{n}" for n in range(QUEUED)]
    for key in keys:
        with kit.sending(key):
            kit.send(sender, to, {"key": key})
    tally = Tally(kit)
    with node_lost(kit, listen_target.topic) as lost:
        kit.listen(kit.driver(), listen_target, inbox=tally.inbox("listener"))
        missing = wait_keys(tally, keys, kit.timing.s(FAILOVER))
        tally.quiet(kit.timing.quiet)
        assert not missing, (
            f"expected the {QUEUED} casts queued before node {lost} (leading the topic's "
            f"queue) was lost to arrive after the failover; {len(missing)} never did: "
            f"{missing[:5]}")
    counts = kit.history.check()
    assert counts.clean, f"queued casts across a node loss: {counts}"


@pytest.mark.clause("notify.store-and-forward.subscriber-absent",
                    "notify.send.blocks-until-accepted")
def test_queued_notifications_survive_node_loss(kit: Kit) -> None:
    """Notifications stored for an absent listener survive the loss of the node holding them.

    Store and forward: a listener subscribed and went, notifications were
    published (each send returned: the backend "accepts ownership"), then
    the node leading the notification queue goes.  A new listener on the same
    target must receive every one, once.
    """
    kit.faults(faults.NODE_LOSS)
    exchange, topic = kit.names.exchange(), kit.names.topic()
    pairs = [(target(exchange, topic), "info")]
    kit.listen_notifications(kit.driver(), pairs).cleanup()
    sender = kit.driver()
    keys = [f"n-{n}" for n in range(QUEUED)]
    for key in keys:
        body = {"key": key, "event_type": "conformance.event", "priority": "INFO",
                "payload": {}}
        with kit.sending(key):
            kit.notify(sender, target(exchange, f"{topic}.info"), body, retry=-1)
    tally = Tally(kit)
    with node_lost(kit, f"{topic}.info") as lost:
        kit.listen_notifications(kit.driver(), pairs, inbox=tally.inbox("listener"))
        missing = wait_keys(tally, keys, kit.timing.s(FAILOVER))
        tally.quiet(kit.timing.quiet)
    counts = kit.history.check()
    message = (f"expected the {QUEUED} notifications stored before node {lost} (leading "
               f"their queue) was lost to arrive once each after the failover; "
               f"{len(missing)} never did {missing[:5]}; {counts}")
    for clause in ("notify.store-and-forward.subscriber-absent",
                   "notify.send.blocks-until-accepted"):
        with kit.clause(clause, soft=True):
            assert not missing and counts.clean, message
