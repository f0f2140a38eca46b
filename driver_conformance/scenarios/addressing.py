"""Addressing: which listeners a message sent to a target reaches.

The contract derives every backend address from ``(exchange, topic, server)``
plus the fanout flag.  Each scenario here puts listeners on addresses that
differ in exactly one of those parts, sends to one address, and checks the
exact set of listeners it reached: a driver that drops a part of the address
(ignores the exchange, the server, the fanout flag) delivers to a listener it
must not, and a driver that builds the address inconsistently between
``send`` and ``listen`` delivers to none.

Messages carry a unique ``key``; :class:`Tally` records, per listener, the
keys it received, so one wait (for the total expected) and one quiet window
(for anything extra) cover all the listeners of a scenario.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_messaging.transport import TransportOptions

from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import (
    STYLES,
    Tally,
    assert_at,
    attempt,
    busy,
    key_of,
    send_keyed,
    target,
)


class Recorder:
    """A public-API RPC endpoint that records the casts it runs and names its server."""

    def __init__(self, tally: Tally, name: str, hold: threading.Event | None = None) -> None:
        self.tally = tally
        self.name = name
        self.hold = hold

    def whoami(self, ctxt: dict[str, Any]) -> str:
        return self.name

    def mark(self, ctxt: dict[str, Any], key: str) -> None:
        self.tally.record(self.name, key)
        if self.hold is not None:
            self.hold.wait(self.tally.kit.timing.call_bound)


# -- driver API ---------------------------------------------------------------------------

@pytest.mark.clause("send.address.topic-exchange-server", "listen.address.exchange-topic-server")
def test_each_address_part_selects_listeners(kit: Kit) -> None:
    """Hypothesis: a driver that drops any part of the address reaches a listener it must
    not.  A=(ex, t, s1) and B=(ex, t, s2) differ by server, C=(ex-b, t, s1) differs from A
    by exchange only.  Sends: (ex, t, s1) -> A only; (ex, other) and (ex, other, s1) ->
    nobody; fanout (ex, t) -> A and B, not C; (ex, t) -> one of A/B; (ex-b, t, s1) -> C
    (so C is shown to be listening)."""
    driver = kit.driver()
    ex, ex_b, t, other = kit.names.exchange(), kit.names.exchange(), kit.names.topic(), \
        kit.names.topic()
    s1, s2 = kit.names.server(), kit.names.server()
    tally = Tally(kit, history=False)
    for name, tgt in (("A", target(ex, t, s1)), ("B", target(ex, t, s2)),
                      ("C", target(ex_b, t, s1))):
        last = kit.listen(kit.driver(), tgt, inbox=tally.inbox(name))
    sends = {
        "to-s1": target(ex, t, s1),
        "other-topic": target(ex, other),
        "other-topic-s1": target(ex, other, s1),
        "fanout": target(ex, t, fanout=True),
        "topic": target(ex, t),
        "ex-b-s1": target(ex_b, t, s1),
    }
    for key, to in sends.items():
        send_keyed(kit, driver, to, key, record=False)
    tally.gather(5, kit.timing.eventually)
    last.inbox.quiet(kit.timing.quiet)
    # What reached a listener it must not: the sender built a wrong address.
    allowed = {"to-s1": ["A"], "other-topic": [], "other-topic-s1": [],
               "fanout": ["A", "B"], "topic": ["A", "B"], "ex-b-s1": ["C"]}
    with kit.clause("send.address.topic-exchange-server", soft=True):
        stray = {key: [n for n in tally.where(key) if n not in ok]
                 for key, ok in allowed.items()}
        stray = {key: names for key, names in stray.items() if names}
        assert not stray, (
            f"sends reached listeners whose (exchange, topic, server) differs: {stray} "
            f"(A=(ex, t, s1), B=(ex, t, s2), C=(ex-b, t, s1)); all: {tally.describe()}")
    # What did not reach the listener addressed by its server: no server subscription.
    with kit.clause("listen.address.exchange-topic-server", soft=True):
        assert tally.where("to-s1") == ["A"] and tally.where("ex-b-s1") == ["C"], (
            "a send to (ex, t, s1) must reach the listener on (ex, t, s1) once, and one to "
            f"(ex-b, t, s1) the listener on (ex-b, t, s1); reached {tally.where('to-s1')} "
            f"and {tally.where('ex-b-s1')}")


@pytest.mark.clause("listen.address.exchange-topic")
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("with_server", [True, False], ids=["server", "no-server"])
def test_listener_gets_topic_and_fanout(kit: Kit, style: str, with_server: bool) -> None:
    """Hypothesis: the topic subscription and the fanout subscription are both made, with
    or without a server in the listener's target (a server-less listen is reachable only
    through the driver API; the public API always sets one)."""
    driver = kit.driver(listener_style=style)
    ex, t = kit.names.exchange(), kit.names.topic()
    server = kit.names.server() if with_server else None
    sub = kit.listen(driver, target(ex, t, server))
    kit.send(driver, target(ex, t), {"key": "topic"})
    kit.send(driver, target(ex, t, fanout=True), {"key": "fanout"})
    got = sub.inbox.wait_for(2, kit.timing.eventually)
    assert sorted(key_of(m.message) for m in got) == ["fanout", "topic"], (
        f"listener on (ex, t, {server}): expected the topic cast and the fanout, "
        f"got {[m.message for m in got]}")


@pytest.mark.clause("send.fanout.all-subscribers", "send.one-of-many.single-copy")
def test_fanout_to_all_plain_to_one(kit: Kit) -> None:
    """Hypothesis: with three listeners on (ex, t), each fanout reaches all three exactly
    once and each plain cast exactly one of them.  Listeners use separate driver instances,
    as separate services would; a driver sharing one subscription per process cannot pass
    by accident."""
    sender = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    tally = Tally(kit)
    names = ["L1", "L2", "L3"]
    for name in names:
        last = kit.listen(kit.driver(), target(ex, t, kit.names.server()),
                          inbox=tally.inbox(name))
    fanouts, plains = ["f1", "f2"], ["c1", "c2", "c3"]
    for key in fanouts:
        send_keyed(kit, sender, target(ex, t, fanout=True), key, copies=len(names))
    for key in plains:
        send_keyed(kit, sender, target(ex, t), key)
    tally.gather(len(fanouts) * 3 + len(plains), kit.timing.eventually)
    last.inbox.quiet(kit.timing.quiet)
    with kit.clause("send.fanout.all-subscribers", soft=True):
        for key in fanouts:
            assert tally.where(key) == names, (
                f"fanout {key}: expected once at each of {names}, reached {tally.where(key)}")
    with kit.clause("send.one-of-many.single-copy", soft=True):
        for key in plains:
            assert len(tally.where(key)) == 1, (
                f"cast {key} to (ex, t): expected exactly one of {names}, "
                f"reached {tally.where(key)}")


@pytest.mark.clause("send.one-of-many.balanced")
@pytest.mark.parametrize("style", STYLES)
def test_busy_listener_does_not_hoard(kit: Kit, style: str) -> None:
    """Hypothesis: k listeners whose callbacks block after the first message; k casts. A
    balanced driver hands each idle listener one; a driver that gives a busy listener more
    (prefetch, sticky routing) leaves some listener with nothing.  No statistics needed."""
    k = 3
    sender = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    tally = Tally(kit)
    names = [f"L{i}" for i in range(1, k + 1)]
    with busy() as released:
        for name in names:
            kit.listen(kit.driver(listener_style=style), target(ex, t, kit.names.server()),
                       inbox=tally.inbox(name, hold=released))
        for i in range(k):
            send_keyed(kit, sender, target(ex, t), f"c{i}")
        tally.wait_each(names, 1, kit.timing.eventually)
        counts = {n: len(tally.keys(n)) for n in names}
    assert all(c == 1 for c in counts.values()), (
        f"{k} casts to {k} busy listeners: expected one each, got {counts}")
    delivery = kit.history.check()
    assert delivery.clean, f"expected each cast delivered once: {delivery}"


@pytest.mark.clause("driver.init.default-exchange")
def test_no_exchange_means_default_exchange(kit: Kit) -> None:
    """Hypothesis: ``exchange=None`` must mean the driver's ``default_exchange`` on both
    sides, for RPC and notifications, and must not fall back to some other shared exchange:
    (None, t) and (X, t) reach each other in both directions; (Y, t) is apart.

    Each route carries three messages: a driver that puts (None, t) and (Y, t) on
    one queue hands them out between the two listeners, and with one message per
    route it would sometimes hand each to the right one by chance (about one run
    in eight); with three, that chance is below one in eighty for RPC alone.
    """
    driver = kit.driver()
    x = driver.conf.control_exchange
    y = kit.names.exchange()
    t, t2 = kit.names.topic(), kit.names.topic()
    s = kit.names.server()
    copies = range(3)
    tally = Tally(kit, history=False)
    kit.listen(driver, target(None, t, s), inbox=tally.inbox("none-t"))
    kit.listen(driver, target(x, t2, s), inbox=tally.inbox("x-t2"))
    last = kit.listen(driver, target(y, t, s), inbox=tally.inbox("y-t"))
    routes = {"none-t": [(x, t, "x-to-none"), (None, t, "none-to-none")],
              "x-t2": [(None, t2, "none-to-x")], "y-t": [(y, t, "y-to-y")]}

    def each_copy(table: dict[str, list[tuple[str | None, str, str]]]
                  ) -> Iterator[tuple[str | None, str, dict[str, str]]]:
        for sends in table.values():
            for exchange, topic, key in sends:
                for i in copies:
                    yield exchange, topic, {"key": f"{key}-{i}"}

    for exchange, topic, body in each_copy(routes):
        kit.send(driver, target(exchange, topic, s), body)
    if kit.caps.notifications:
        n, n2 = kit.names.topic(), kit.names.topic()
        kit.listen_notifications(driver, [(target(None, n), "info")],
                                 inbox=tally.inbox("n-none"))
        kit.listen_notifications(driver, [(target(x, n2), "info")], inbox=tally.inbox("n-x"))
        last = kit.listen_notifications(driver, [(target(y, n), "info")],
                                        inbox=tally.inbox("n-y"))
        notified = {"n-none": [(x, n, "nx-to-none"), (None, n, "nnone-to-none")],
                    "n-x": [(None, n2, "nnone-to-x")], "n-y": [(y, n, "ny-to-y")]}
        for exchange, topic, body in each_copy(notified):
            kit.notify(driver, target(exchange, f"{topic}.info"), body)
        routes |= notified
    expected = {name: {f"{key}-{i}" for _, _, key in sends for i in copies}
                for name, sends in routes.items()}
    tally.wait_total(sum(len(v) for v in expected.values()), kit.timing.eventually)
    last.inbox.quiet(kit.timing.quiet)
    assert_at(tally, expected)


@pytest.mark.clause("send.transport-options.accepted")
@pytest.mark.parametrize("options", [None, TransportOptions(at_least_once=True)],
                         ids=["none", "at-least-once"])
def test_transport_options_accepted(kit: Kit, options: TransportOptions | None) -> None:
    """Hypothesis: ``RPCClient`` always passes ``transport_options``; a driver whose
    ``send`` lacks the keyword, or misroutes when it is set, fails both a cast and a call."""
    driver = kit.driver()
    to = kit.names.target(server=True)

    def reply(message: Any) -> None:
        if message.message.get("reply"):
            message.reply({"echo": message.message["key"]})

    sub = kit.listen(kit.driver(), to, inbox=Inbox("server", on_message=reply))
    kit.send(driver, to, {"key": "cast"}, transport_options=options)
    result = kit.send(driver, to, {"key": "call", "reply": True}, wait_for_reply=True,
                      timeout=kit.timing.eventually, transport_options=options)
    assert result == {"echo": "call"}, f"call: expected reply {{'echo': 'call'}}, got {result!r}"
    got = sorted(key_of(m.message) for m in sub.inbox.wait_for(2, kit.timing.eventually))
    assert got == ["call", "cast"], f"expected the cast and the call delivered, got {got}"


# -- public API ---------------------------------------------------------------------------

@pytest.mark.clause("send.address.topic-exchange-server", "listen.address.exchange-topic-server",
                    "listen.address.exchange-topic")
def test_public_calls_reach_the_addressed_server(kit: Kit) -> None:
    """Hypothesis: through RPCClient/RPCServer, a call to (ex, t, s1) is always answered by
    the server on (ex, t, s1), never by its namesake on another exchange nor by s2; a call
    without server is answered by one of the (ex, t) servers.  Calls are synchronous, so
    no quiet window is needed."""
    transport = kit.rpc_transport()
    ex, ex_b, t = kit.names.exchange(), kit.names.exchange(), kit.names.topic()
    s1, s2 = kit.names.server(), kit.names.server()
    tally = Tally(kit, history=False)
    for name, tgt in (("A", target(ex, t, s1)), ("B", target(ex, t, s2)),
                      ("C", target(ex_b, t, s1))):
        kit.rpc_server(kit.rpc_transport(), tgt, [Recorder(tally, name)])
    client = kit.rpc_client(transport, target(ex, t), timeout=kit.timing.eventually)
    answers = {
        "(ex, t, s1)": [attempt(lambda: client.prepare(server=s1).call({}, "whoami"))
                        for _ in range(3)],
        "(ex, t, s2)": [attempt(lambda: client.prepare(server=s2).call({}, "whoami"))],
        "(ex-b, t, s1)": [attempt(
            lambda: client.prepare(exchange=ex_b, server=s1).call({}, "whoami"))],
        "(ex, t)": [attempt(lambda: client.call({}, "whoami"))],
    }
    addressed = {"(ex, t, s1)": {"A"}, "(ex, t, s2)": {"B"}, "(ex-b, t, s1)": {"C"},
                 "(ex, t)": {"A", "B"}}
    with kit.clause("send.address.topic-exchange-server", soft=True):
        wrong = {k: v for k, got in answers.items()
                 for v in [[a for a in got if isinstance(a, str) and a not in addressed[k]]]
                 if v}
        assert not wrong, (f"calls answered by a server on another address (A=(ex, t, s1), "
                           f"B=(ex, t, s2), C=(ex-b, t, s1)): {wrong}")
    with kit.clause("listen.address.exchange-topic-server", soft=True):
        unanswered = {k: [repr(a) for a in answers[k] if not isinstance(a, str)]
                      for k in ("(ex, t, s1)", "(ex, t, s2)", "(ex-b, t, s1)")}
        unanswered = {k: v for k, v in unanswered.items() if v}
        assert not unanswered, f"calls to a server's own address went unanswered: {unanswered}"
    with kit.clause("listen.address.exchange-topic", soft=True):
        failed = [a for a in answers["(ex, t)"] if not isinstance(a, str)]
        assert not failed, f"a call to (ex, t) without server went unanswered: {failed}"


@pytest.mark.clause("send.fanout.all-subscribers", "send.one-of-many.single-copy")
def test_public_fanout_and_cast(kit: Kit) -> None:
    """Hypothesis: three RPCServers on one topic: a fanout cast runs on each exactly once,
    a plain cast on exactly one of them (RPCClient.cast through the driver's send).  The
    check runs as soon as six runs are in, without a quiet window: a driver that copies
    casts to everyone or fanouts to one is off by then; late duplicates are left to the
    driver-level scenario."""
    ex, t = kit.names.exchange(), kit.names.topic()
    tally = Tally(kit)
    names = ["S1", "S2", "S3"]
    for name in names:
        kit.rpc_server(kit.rpc_transport(), target(ex, t, kit.names.server()),
                       [Recorder(tally, name)])
    client = kit.rpc_client(kit.rpc_transport(), target(ex, t))
    with kit.sending("fan", copies=len(names)):
        client.prepare(fanout=True).cast({}, "mark", key="fan")
    for key in ("c1", "c2", "c3"):
        with kit.sending(key):
            client.cast({}, "mark", key=key)
    tally.gather(6, kit.timing.eventually)
    with kit.clause("send.fanout.all-subscribers", soft=True):
        assert tally.where("fan") == names, (
            f"fanout cast: expected once on each of {names}, ran on {tally.where('fan')}")
    with kit.clause("send.one-of-many.single-copy", soft=True):
        for key in ("c1", "c2", "c3"):
            assert len(tally.where(key)) == 1, (
                f"cast {key}: expected to run on exactly one server, ran on "
                f"{tally.where(key)}")
        # Late duplicates are left to the driver-level scenario (see the docstring).
        kit.history.check()


@pytest.mark.clause("send.one-of-many.balanced")
def test_public_servers_share_casts(kit: Kit) -> None:
    """Hypothesis: k RPCServers on one topic, each busy in its first cast; k casts: each
    server runs exactly one.  The public server hands work to an executor, so this checks
    the driver's spread across subscribers rather than its flow control (the driver-level
    scenario checks that)."""
    k = 3
    ex, t = kit.names.exchange(), kit.names.topic()
    tally = Tally(kit)
    names = [f"S{i}" for i in range(1, k + 1)]
    with busy() as released:
        for name in names:
            kit.rpc_server(kit.rpc_transport(), target(ex, t, kit.names.server()),
                           [Recorder(tally, name, hold=released)])
        client = kit.rpc_client(kit.rpc_transport(), target(ex, t))
        for i in range(k):
            with kit.sending(f"c{i}"):
                client.cast({}, "mark", key=f"c{i}")
        tally.wait_total(k, kit.timing.eventually)
        counts = {n: len(tally.keys(n)) for n in names}
    assert all(c == 1 for c in counts.values()), (
        f"{k} casts to {k} busy servers: expected one each, got {counts}")


@pytest.mark.clause("driver.init.default-exchange")
def test_public_default_exchange(kit: Kit) -> None:
    """Hypothesis: the public API leaves the exchange unset and relies on the transport's
    control_exchange; a client naming it explicitly reaches a server that does not, and the
    other way round, and a Notifier (which never sets an exchange) reaches a listener on
    the named control exchange."""
    transport = kit.rpc_transport()
    x = transport.conf.control_exchange
    t, t2 = kit.names.topic(), kit.names.topic()
    s = kit.names.server()
    tally = Tally(kit, history=False)
    kit.rpc_server(transport, target(None, t, s), [Recorder(tally, "none")])
    kit.rpc_server(transport, target(x, t2, s), [Recorder(tally, "x")])
    client = kit.rpc_client(transport, target(x, t, s), timeout=kit.timing.eventually)
    assert client.call({}, "whoami") == "none", "call to (X, t, s) should reach (None, t, s)"
    client2 = kit.rpc_client(transport, target(None, t2, s), timeout=kit.timing.eventually)
    assert client2.call({}, "whoami") == "x", "call to (None, t2, s) should reach (X, t2, s)"
    if kit.caps.notifications:
        n = kit.names.topic()
        ntransport = kit.notification_transport()

        class Endpoint:
            def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                     metadata: Any) -> None:
                tally.record("listener", key_of(payload))

        kit.notification_listener(ntransport, [target(x, n)], [Endpoint()])
        kit.notifier(ntransport, topics=[n]).info({}, "conformance.test", {"key": "n1"})
        tally.wait_total(1, kit.timing.eventually)
        assert tally.keys("listener") == ["n1"]


@pytest.mark.clause("send.transport-options.accepted")
def test_public_client_with_transport_options(kit: Kit) -> None:
    """Hypothesis: an RPCClient built with TransportOptions(at_least_once=True) hands them
    to send() on every cast and call; both must still work."""
    to = kit.names.target(server=True)
    tally = Tally(kit, history=False)
    kit.rpc_server(kit.rpc_transport(), to, [Recorder(tally, "server")])
    client = kit.rpc_client(kit.rpc_transport(), to, timeout=kit.timing.eventually,
                            transport_options=TransportOptions(at_least_once=True))
    client.cast({}, "mark", key="cast")
    assert client.call({}, "whoami") == "server"
    tally.wait_total(1, kit.timing.eventually)
    assert tally.keys("server") == ["cast"]


