"""Notifications: addressing by topic.priority, single copy, pools, store-and-forward,
and the message arriving exactly as sent.

Notification listeners subscribe to ``f"{topic}.{priority}"`` on an exchange and
ignore the target's server and fanout flag; each subscription (or each pool)
gets one copy.  As in the addressing scenarios, listeners sit on addresses that
differ in one part, every notification carries a unique ``key``, and the
assertion is the exact set of listeners each key reached.

Through the public API the Notifier swallows every driver error, so the retry
scenario here is driver level only; everything else is checked through
``Notifier`` and notification listeners too.
"""

from __future__ import annotations

import threading
from typing import Any

import oslo_messaging
import pytest

from driver_conformance import faults, outcomes
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import (
    EVENT,
    STYLES,
    Tally,
    assert_at,
    busy,
    key_of,
    publish,
    target,
)
from driver_conformance.scenarios.envelope import sample_message


class NoteRecorder:
    """A public-API notification endpoint for ``priorities``, recording payload keys."""

    def __init__(self, tally: Tally, name: str, *, priorities: tuple[str, ...] = ("info",),
                 hold: threading.Event | None = None) -> None:
        self.tally = tally
        self.name = name
        self.hold = hold
        for priority in priorities:
            setattr(self, priority, self._record)

    def _record(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                metadata: Any) -> None:
        self.tally.record(self.name, key_of(payload))
        if self.hold is not None:
            self.hold.wait(self.tally.kit.timing.call_bound)


def require_pool(kit: Kit, pool: str | None) -> str | None:
    """A fresh pool name for the pooled variant (UNSUPPORTED without pools), else None."""
    if pool is None:
        return None
    kit.require("pools")
    return kit.names.pool()


def assert_one_per_pool(tally: Tally, keys: list[str]) -> None:
    """Each key reached one ``foo`` member, one ``bar`` member and the pool-less listener."""
    for key in keys:
        at = tally.where(key)
        groups = {g: [n for n in at if n.startswith(g)] for g in ("foo", "bar", "plain")}
        assert all(len(v) == 1 for v in groups.values()), (
            f"notification {key}: expected one foo member, one bar member and the "
            f"pool-less listener; reached {at}")


# -- driver API: addressing ---------------------------------------------------------------

@pytest.mark.clause("notify-listen.address.topic-priority", "notify.address.exchange-and-topic")
def test_topic_priority_and_exchange_select_listeners(kit: Kit) -> None:
    """Hypothesis: a listener subscribes to each (exchange, topic.priority) pair it names
    and nothing else.  L1 on [(ex, t, info), (ex, t, error), (ex, u, info)], L2 on
    [(ex-b, t, info)], L3 on [(ex, v, error)].  Each publish differs from a subscribed
    address by one part (priority, topic or exchange), so a driver that drops the priority
    or the exchange delivers one of the strays."""
    driver = kit.driver()
    ex, ex_b = kit.names.exchange(), kit.names.exchange()
    t, u, v = kit.names.topic(), kit.names.topic(), kit.names.topic()
    tally = Tally(kit, history=False)
    kit.listen_notifications(
        kit.driver(), [(target(ex, t), "info"), (target(ex, t), "error"),
                       (target(ex, u), "info")], inbox=tally.inbox("L1"))
    kit.listen_notifications(kit.driver(), [(target(ex_b, t), "info")],
                             inbox=tally.inbox("L2"))
    last = kit.listen_notifications(kit.driver(), [(target(ex, v), "error")],
                                    inbox=tally.inbox("L3"))
    sends = [
        (ex, t, "info", "ex/t.info"), (ex, t, "error", "ex/t.error"),
        (ex, u, "info", "ex/u.info"), (ex, t, "warn", "ex/t.warn"),
        (ex_b, t, "info", "ex-b/t.info"), (ex_b, t, "error", "ex-b/t.error"),
        (ex, v, "info", "ex/v.info"), (ex, v, "error", "ex/v.error"),
        (ex, u, "error", "ex/u.error"),
    ]
    for exchange, topic, priority, key in sends:
        publish(kit, driver, exchange, topic, priority, key, record=False)
    tally.gather(5, kit.timing.eventually)
    last.inbox.quiet(kit.timing.quiet)
    with kit.clause("notify.address.exchange-and-topic", soft=True):
        crossed = {n: [k for k in tally.keys(n) if k.startswith("ex-b/") != (n == "L2")]
                   for n in ("L1", "L2", "L3")}
        crossed = {n: keys for n, keys in crossed.items() if keys}
        assert not crossed, (f"notifications reached listeners on another exchange: {crossed} "
                             "(L2 listens on ex-b, L1 and L3 on ex)")
        # And a notification reaches its own exchange's listener at all: a driver that
        # publishes to the wrong exchange delivers nothing to either.
        missing = {n: k for n, k in (("L1", "ex/t.info"), ("L2", "ex-b/t.info"))
                   if k not in tally.keys(n)}
        assert not missing, (f"notifications published to a listener's own exchange, topic "
                             f"and priority never reached it: {missing}")
    with kit.clause("notify-listen.address.topic-priority", soft=True):
        assert_at(tally, {"L1": {"ex/t.info", "ex/t.error", "ex/u.info"},
                          "L2": {"ex-b/t.info"}, "L3": {"ex/v.error"}})


@pytest.mark.clause("notify.delivery.single-copy", "notify-listen.address.server-fanout-ignored")
def test_one_copy_among_listeners(kit: Kit) -> None:
    """Hypothesis: pool-less listeners on the same (exchange, topic, priority) share one
    subscription, whatever server and fanout their targets carry: every notification is
    received by exactly one of them.  Topic t has three plain listeners (single copy);
    topic u has two whose targets carry different servers and fanout=True (a driver that
    folds the server into the address reaches neither, one that honours fanout both).
    One quiet window serves both groups."""
    driver = kit.driver()
    ex, t, u = kit.names.exchange(), kit.names.topic(), kit.names.topic()
    tally = Tally(kit)
    for name in ("t1", "t2", "t3"):
        kit.listen_notifications(kit.driver(), [(target(ex, t), "info")],
                                 inbox=tally.inbox(name))
    for name in ("u1", "u2"):
        last = kit.listen_notifications(
            kit.driver(), [(target(ex, u, kit.names.server(), fanout=True), "info")],
            inbox=tally.inbox(name))
    sent = {t: [f"t-n{i}" for i in range(3)], u: [f"u-n{i}" for i in range(3)]}
    for topic, keys in sent.items():
        for key in keys:
            publish(kit, driver, ex, topic, "info", key)
    tally.gather(6, kit.timing.eventually)
    last.inbox.quiet(kit.timing.quiet)

    def not_once(topic: str) -> dict[str, list[str]]:
        return {key: tally.where(key) for key in sent[topic] if len(tally.where(key)) != 1}

    with kit.clause("notify.delivery.single-copy", soft=True):
        assert not not_once(t), ("expected each notification received by exactly one of "
                                 f"three plain listeners of its topic; got {not_once(t)}")
    with kit.clause("notify-listen.address.server-fanout-ignored", soft=True):
        assert not not_once(u), (
            "expected each notification received by exactly one of two listeners whose "
            f"targets carry a server and fanout=True (both ignored); got {not_once(u)}")


@pytest.mark.clause("notify.address.server-fanout-ignored")
@pytest.mark.parametrize("pool", [None, "pool"], ids=["no-pool", "pool"])
def test_send_target_server_and_fanout_ignored(kit: Kit, pool: str | None) -> None:
    """Hypothesis: a notification whose target carries a server, fanout=True or both is
    delivered as any notification: once to one of two listeners on (ex, t, info) (in one
    pool for the pooled variant, which adds a pool-less listener that must get each once).
    A driver routing by server (RPC's topic.server address) delivers none, one routing by
    fanout a copy to every listener, or none where no notification listener binds its
    fanout address.  A plain notification first shows every listener subscribed (NOT RUN
    otherwise: the join of a consumer group, not the address, would be judged)."""
    pool = require_pool(kit, pool)
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    tally = Tally(kit, history=False)
    members = ["L1", "L2"]
    for name in members:
        kit.listen_notifications(kit.driver(), [(target(ex, t), "info")], pool=pool,
                                 inbox=tally.inbox(name))
    if pool is not None:
        kit.listen_notifications(kit.driver(), [(target(ex, t), "info")],
                                 inbox=tally.inbox("plain"))
    groups = {"members": members} | ({"plain": ["plain"]} if pool is not None else {})
    publish(kit, driver, ex, t, "info", "control", record=False)
    tally.gather(len(groups), kit.timing.eventually)
    if not all(set(tally.where("control")) & set(names) for names in groups.values()):
        outcomes.not_run(f"a notification to the plain target reached only "
                         f"{tally.where('control')} of {groups}: not every listener was "
                         "subscribed yet")
    sends = {"server": {"server": kit.names.server()}, "fanout": {"fanout": True},
             "both": {"server": kit.names.server(), "fanout": True}}
    for key, extra in sends.items():
        kit.notify(driver, target(ex, f"{t}.info", **extra),
                   {"key": key, "event_type": EVENT, "priority": "INFO", "payload": {}})
    tally.gather((1 + len(sends)) * len(groups), kit.timing.eventually)
    tally.quiet(kit.timing.quiet)
    wrong = {key: tally.where(key) for key in sends
             if any(len([n for n in tally.where(key) if n in names]) != 1
                    for names in groups.values())}
    assert not wrong, (
        f"expected each notification (target with a server, fanout, or both) to reach "
        f"exactly one of {members}{' and the pool-less listener' if pool else ''}; "
        f"got {wrong}")


@pytest.mark.clause("notify.delivery.balanced")
@pytest.mark.parametrize("style", STYLES)
def test_busy_listener_does_not_hoard(kit: Kit, style: str) -> None:
    """Hypothesis: k pool-less listeners whose callbacks block after the first
    notification; k notifications: a balanced driver hands one to each, a hoarding one
    leaves an idle listener without any."""
    each_busy_listener_gets_one(kit, style, None, "busy listeners")


def each_busy_listener_gets_one(kit: Kit, style: str, pool: str | None, what: str) -> None:
    """k listeners (in ``pool``) whose callbacks block after the first notification, and
    k notifications: each listener must get exactly one."""
    k = 3
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    tally = Tally(kit)
    names = [f"L{i}" for i in range(1, k + 1)]
    with busy() as released:
        for name in names:
            kit.listen_notifications(kit.driver(listener_style=style),
                                     [(target(ex, t), "info")], pool=pool,
                                     inbox=tally.inbox(name, hold=released))
        for i in range(k):
            publish(kit, driver, ex, t, "info", f"n{i}")
        tally.wait_each(names, 1, kit.timing.eventually)
        counts = {n: len(tally.keys(n)) for n in names}
    assert all(c == 1 for c in counts.values()), (
        f"{k} notifications to {k} {what}: expected one each, got {counts}")


# -- driver API: pools --------------------------------------------------------------------

@pytest.mark.clause("notify-listen.pool.one-copy-per-pool")
def test_one_copy_per_pool(kit: Kit) -> None:
    """Hypothesis: two listeners in pool foo, two in bar and one without pool on the same
    targets: each notification reaches exactly one foo member, exactly one bar member and
    the pool-less listener (three copies, one per subscription)."""
    kit.require("pools")
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    foo, bar = kit.names.pool(), kit.names.pool()
    tally = Tally(kit)
    members = {"foo1": foo, "foo2": foo, "bar1": bar, "bar2": bar, "plain": None}
    for name, pool in members.items():
        last = kit.listen_notifications(kit.driver(), [(target(ex, t), "info")], pool=pool,
                                        inbox=tally.inbox(name))
    keys = [f"n{i}" for i in range(3)]
    for key in keys:
        publish(kit, driver, ex, t, "info", key, copies=3)
    tally.wait_total(3 * len(keys), kit.timing.eventually)
    last.inbox.quiet(kit.timing.quiet)
    assert_one_per_pool(tally, keys)


@pytest.mark.clause("notify-listen.pool.per-target")
def test_one_pool_name_on_two_topics(kit: Kit) -> None:
    """Hypothesis: pool P's listener on (ex, a, info) and pool P's listener on (ex, b, info)
    hold two subscriptions, not one: four notifications to each topic, and each listener
    gets exactly its own topic's.  A driver that names the shared subscription after the
    pool alone (one queue bound to both topics) hands about half of a's to b's listener."""
    kit.require("pools")
    driver = kit.driver()
    ex, a, b = kit.names.exchange(), kit.names.topic(), kit.names.topic()
    pool = kit.names.pool()
    tally = Tally(kit)
    for name, topic in (("A", a), ("B", b)):
        kit.listen_notifications(kit.driver(), [(target(ex, topic), "info")], pool=pool,
                                 inbox=tally.inbox(name))
    # All of a's, then all of b's: on one shared queue, alternating sends would meet
    # round-robin consumers in step and land on the right listeners by chance.
    for topic in (a, b):
        for i in range(4):
            publish(kit, driver, ex, topic, "info", f"{'a' if topic == a else 'b'}{i}")
    tally.gather(8, kit.timing.eventually)
    tally.quiet(kit.timing.quiet)
    assert_at(tally, {"A": {f"a{i}" for i in range(4)}, "B": {f"b{i}" for i in range(4)}})


@pytest.mark.clause("notify-listen.pool.balanced")
@pytest.mark.parametrize("style", STYLES)
def test_busy_pool_member_does_not_hoard(kit: Kit, style: str) -> None:
    """Hypothesis: as for pool-less listeners, k busy members of one pool and k
    notifications: each member gets exactly one."""
    kit.require("pools")
    each_busy_listener_gets_one(kit, style, kit.names.pool(), "busy members of one pool")


# -- driver API: store and forward --------------------------------------------------------

def published_meanwhile_reach_next_listener(kit: Kit, pool: str | None, *,
                                            start_first: bool) -> None:
    """A first listener on (targets, pool), started and cleaned up or never started;
    two notifications published; a second listener on the same targets and pool gets both.

    The never-started case is not given a store-and-forward control: no public
    observation tells a driver that keeps nothing for an absent subscriber from
    one whose listeners consume before ``start()`` (the control's own later
    listener would drop what it finds), so a driver with either bug fails both
    clauses, each of which it breaks.
    """
    pool = require_pool(kit, pool)
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    pairs = [(target(ex, t), "info")]
    first = kit.listen_notifications(kit.driver(), pairs, pool=pool, start=start_first)
    if start_first:
        first.cleanup()
    keys = ["n1", "n2"]
    for key in keys:
        publish(kit, driver, ex, t, "info", key)
    later = kit.listen_notifications(kit.driver(), pairs, pool=pool)
    got = sorted(key_of(m.message) for m in later.inbox.wait_for(len(keys),
                                                                 kit.timing.eventually))
    assert got == keys, f"expected the notifications published meanwhile {keys}, got {got}"


@pytest.mark.clause("notify.store-and-forward.subscriber-absent")
@pytest.mark.parametrize("pool", [None, "pool"], ids=["no-pool", "pool"])
def test_published_while_listener_absent(kit: Kit, pool: str | None) -> None:
    """Hypothesis (MUST, weak reading): once a subscription exists, notifications published
    while no consumer runs (a listener ran, was stopped and cleaned up) are kept for the
    next listener on the same targets and pool."""
    published_meanwhile_reach_next_listener(kit, pool, start_first=True)


@pytest.mark.clause("listener.start.nothing-taken-before-start")
@pytest.mark.parametrize("pool", [None, "pool"], ids=["no-pool", "pool"])
def test_never_started_listener_takes_nothing(kit: Kit, pool: str | None) -> None:
    """Hypothesis (SHOULD, start() 'should cause the driver to start receiving'): a listener
    created but never started (and left so) takes none of the notifications published to
    its subscription; the next listener on the same targets and pool gets them all."""
    published_meanwhile_reach_next_listener(kit, pool, start_first=False)


@pytest.mark.clause("notify.store-and-forward.before-first-listener")
def test_published_before_any_listener(kit: Kit) -> None:
    """Hypothesis (MUST, strong reading): a notification published to a topic nobody
    ever subscribed to is kept until the first pool-less listener arrives."""
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    publish(kit, driver, ex, t, "info", "early")
    sub = kit.listen_notifications(kit.driver(), [(target(ex, t), "info")])
    got = [key_of(m.message) for m in sub.inbox.wait_for(1, kit.timing.eventually)]
    assert got == ["early"], f"expected the notification published earlier, got {got}"


# -- driver API: retry ----------------------------------------------------------------------

@pytest.mark.clause("notify.retry.honoured")
@pytest.mark.parametrize("retry", [0, 2, -1, None])
def test_retry_during_outage(kit: Kit, retry: int | None) -> None:
    """Hypothesis: with the backend down, retry=0 and retry=N give up with a
    MessagingException (N: MessageDeliveryFailure) within the call bound, while None/-1
    keep trying: still blocked a moment later, then done once the backend is back, and the
    notification is delivered once (to a listener started after the heal)."""
    injector = kit.faults(faults.OUTAGE)
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    body = {"key": "r", "event_type": EVENT, "priority": "INFO", "payload": {}}
    to = target(ex, f"{t}.info")
    injector.start_outage()
    if retry is not None and retry >= 0:
        # kit.notify is bounded by the call bound: a driver that keeps
        # retrying fails with DriverHung, naming the call, not by a timer here.
        expected = oslo_messaging.MessageDeliveryFailure if retry else \
            oslo_messaging.MessagingException
        with pytest.raises(expected):
            kit.notify(driver, to, body, retry=retry)
        return
    done = threading.Event()
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            with kit.sending("r"):
                kit.notify(driver, to, body, retry=retry)
            result["ok"] = True
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=send, daemon=True, name="conformance-notify").start()
    gave_up = done.wait(kit.timing.s(0.3))
    injector.heal()
    assert not gave_up, (
        f"retry={retry}: expected send_notification to keep retrying during the outage; "
        f"it returned {result}")
    assert done.wait(kit.timing.eventually), f"retry={retry}: no return after the heal"
    assert result.get("ok"), f"retry={retry}: expected success after the heal, got {result}"
    # Both were published before any listener: the control, sent after the heal, shows
    # the driver keeps such a notification, so a missing "r" is the retry's loss.
    publish(kit, driver, ex, t, "info", "control", record=False)
    sub = kit.listen_notifications(kit.driver(), [(target(ex, t), "info")])
    keys = [key_of(m.message) for m in sub.inbox.gather(2, kit.timing.eventually)]
    with kit.relying_on("notify.store-and-forward.before-first-listener"):
        assert "control" in keys, (
            f"expected the notification published after the heal, got {keys}")
    for key in keys:
        if key != "control":
            kit.history.received(key, "listener")
    assert kit.history.check().clean, f"retry={retry}: {kit.history.check()}"


# -- public API -----------------------------------------------------------------------------

@pytest.mark.clause("notify-listen.address.topic-priority")
def test_public_listener_gets_only_its_priorities(kit: Kit) -> None:
    """Hypothesis: two notification listeners on one topic, one with an info endpoint and
    one with an error endpoint; a Notifier sends several of each.  A driver that ignores
    the priority puts both on one subscription, and some info notification lands on the
    error listener, whose dispatcher drops it: the info listener never gets them all."""
    transport = kit.notification_transport()
    t = kit.names.topic()
    tally = Tally(kit, history=False)
    kit.notification_listener(kit.notification_transport(), [target(None, t)],
                              [NoteRecorder(tally, "info", priorities=("info",))])
    kit.notification_listener(kit.notification_transport(), [target(None, t)],
                              [NoteRecorder(tally, "error", priorities=("error",))])
    notifier = kit.notifier(transport, topics=[t])
    for i in range(4):
        notifier.info({}, EVENT, {"key": f"i{i}"})
        notifier.error({}, EVENT, {"key": f"e{i}"})
    tally.wait_each(["info", "error"], 4, kit.timing.eventually)
    assert_at(tally, {"info": {f"i{i}" for i in range(4)},
                      "error": {f"e{i}" for i in range(4)}})


@pytest.mark.clause("notify-listen.address.server-fanout-ignored")
def test_public_listener_target_with_server_and_fanout(kit: Kit) -> None:
    """Hypothesis: a notification listener whose target carries a server and fanout=True
    still receives what a Notifier (which sets neither) publishes on the topic."""
    t = kit.names.topic()
    tally = Tally(kit, history=False)
    kit.notification_listener(
        kit.notification_transport(),
        [oslo_messaging.Target(topic=t, server=kit.names.server(), fanout=True)],
        [NoteRecorder(tally, "listener")])
    kit.notifier(kit.notification_transport(), topics=[t]).info({}, EVENT, {"key": "n"})
    tally.wait_total(1, kit.timing.eventually)
    assert tally.keys("listener") == ["n"]


@pytest.mark.parametrize("pool", [
    pytest.param(None, id="no-pool", marks=pytest.mark.clause("notify.delivery.balanced")),
    pytest.param("pool", id="pool", marks=pytest.mark.clause("notify-listen.pool.balanced")),
])
def test_public_listeners_share_notifications(kit: Kit, pool: str | None) -> None:
    """Hypothesis: k notification listeners (no pool, or all in one pool), each busy with
    its first notification; a Notifier sends k: each listener handles exactly one."""
    pool = require_pool(kit, pool)
    k = 3
    t = kit.names.topic()
    tally = Tally(kit)
    names = [f"L{i}" for i in range(1, k + 1)]
    with busy() as released:
        for name in names:
            kit.notification_listener(kit.notification_transport(), [target(None, t)],
                                      [NoteRecorder(tally, name, hold=released)], pool=pool)
        notifier = kit.notifier(kit.notification_transport(), topics=[t])
        for i in range(k):
            with kit.sending(f"n{i}"):
                notifier.info({}, EVENT, {"key": f"n{i}"})
        tally.wait_total(k, kit.timing.eventually)
        counts = {n: len(tally.keys(n)) for n in names}
    assert all(c == 1 for c in counts.values()), (
        f"{k} notifications to {k} busy listeners (pool={pool}): expected one each, "
        f"got {counts}")


@pytest.mark.clause("notify-listen.pool.one-copy-per-pool")
def test_public_pools_each_get_a_copy(kit: Kit) -> None:
    """Hypothesis: notification listeners in pools foo (2), bar (2) and one without pool:
    each notification is handled once per pool and once by the pool-less listener.  No
    quiet window: late duplicates are the driver-level scenario's job; here the public
    listeners must each have handled what their pool was sent."""
    kit.require("pools")
    t = kit.names.topic()
    foo, bar = kit.names.pool(), kit.names.pool()
    tally = Tally(kit)
    for name, pool in {"foo1": foo, "foo2": foo, "bar1": bar, "bar2": bar,
                       "plain": None}.items():
        kit.notification_listener(kit.notification_transport(), [target(None, t)],
                                  [NoteRecorder(tally, name)], pool=pool)
    notifier = kit.notifier(kit.notification_transport(), topics=[t])
    keys = ["n1", "n2"]
    for key in keys:
        with kit.sending(key, copies=3):
            notifier.info({}, EVENT, {"key": key})
    tally.wait_total(3 * len(keys), kit.timing.eventually)
    assert_one_per_pool(tally, keys)


@pytest.mark.clause("notify.store-and-forward.subscriber-absent")
@pytest.mark.parametrize("pool", [
    pytest.param(None, id="no-pool",
                 marks=pytest.mark.clause("notify.store-and-forward.before-first-listener")),
    pytest.param("pool", id="pool"),
])
def test_public_notifications_wait_for_listener(kit: Kit, pool: str | None) -> None:
    """Hypothesis: a notification listener runs and is stopped; a Notifier publishes; a new
    listener on the same topic and pool gets it.  Without a pool, a notification published
    to a topic nobody has listened on yet is also kept for the first listener."""
    pool = require_pool(kit, pool)
    t, fresh = kit.names.topic(), kit.names.topic()
    tally = Tally(kit, history=False)
    first = kit.notification_listener(kit.notification_transport(), [target(None, t)],
                                      [NoteRecorder(tally, "first")], pool=pool)
    kit.stop_servers([first])
    notifier = kit.notifier(kit.notification_transport(), topics=[t, fresh])
    notifier.info({}, EVENT, {"key": "meanwhile"})
    kit.notification_listener(kit.notification_transport(), [target(None, t)],
                              [NoteRecorder(tally, "later")], pool=pool)
    if pool is None:
        kit.notification_listener(kit.notification_transport(), [target(None, fresh)],
                                  [NoteRecorder(tally, "fresh")])
    tally.gather(2 if pool is None else 1, kit.timing.eventually)
    with kit.clause("notify.store-and-forward.subscriber-absent", soft=True):
        assert_at(tally, {"first": set(), "later": {"meanwhile"}})
    if pool is None:
        with kit.clause("notify.store-and-forward.before-first-listener", soft=True):
            assert_at(tally, {"fresh": {"meanwhile"}})


class RedactableContext(dict):
    """A ctxt the Notifier keeps: it drops plain dicts and sends ``redacted_copy()``."""

    def redacted_copy(self) -> dict[str, Any]:
        return dict(self)


@pytest.mark.clause("notify.envelope.transparent")
@pytest.mark.parametrize("notifier_driver", ["messaging", "messagingv2"])
def test_public_notification_arrives_as_sent(kit: Kit, notifier_driver: str) -> None:
    """Hypothesis: the Notifier's 'messaging' driver sends version 1.0 and 'messagingv2'
    version 2.0; either way the endpoint gets the payload, event type, publisher and ctxt
    as given (the listener's dispatcher reads them straight from the message)."""
    t = kit.names.topic()
    seen: list[tuple[Any, ...]] = []
    arrived = threading.Event()

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            seen.append((ctxt, publisher_id, event_type, payload))
            arrived.set()

    kit.notification_listener(kit.notification_transport(), [target(None, t)], [Endpoint()])
    ctxt, message = sample_message(notifier_driver)
    kit.notifier(kit.notification_transport(), topics=[t], driver=notifier_driver).info(
        RedactableContext(ctxt), EVENT, message["payload"])
    assert arrived.wait(kit.timing.eventually), f"{notifier_driver}: nothing arrived"
    expected = (ctxt, "conformance", EVENT, message["payload"])
    assert seen == [expected], f"{notifier_driver}: expected {expected!r}, got {seen!r}"
