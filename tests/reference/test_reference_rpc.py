"""RPC through the public oslo.messaging API on ``reference://`` transports."""

from __future__ import annotations

import threading
import time
import uuid

import oslo_messaging
import pytest
from refsupport import EVENTUALLY, QUIET, SCALE, Inbox, joined, rpc_server, running


class AppError(Exception):
    """An exception from a module the client allows to be rebuilt."""


class Endpoint:
    def __init__(self, name: str = "", inbox: Inbox | None = None) -> None:
        self.name = name
        self.inbox = inbox or Inbox()
        self.release = threading.Event()

    def echo(self, ctxt, value):
        self.inbox.put((self.name, value))
        return value

    def whoami(self, ctxt):
        return self.name

    def fail(self, ctxt, kind):
        if kind == "app":
            raise AppError("application failure", 42)
        raise ValueError("bad value")

    def block(self, ctxt, value):
        self.inbox.put((self.name, value))
        self.release.wait(5 * SCALE)
        return value

    def slow(self, ctxt, seconds):
        threading.Event().wait(seconds)  # the remote method's own (long) work
        return "done"


def topic() -> str:
    return f"topic-{uuid.uuid4().hex[:8]}"


def test_call_cast_and_server_addressing(make_transport) -> None:
    server_transport, client_transport = make_transport(), make_transport()
    name = topic()
    inbox = Inbox()
    a, b = Endpoint("a", inbox), Endpoint("b", inbox)
    servers = [rpc_server(server_transport, oslo_messaging.Target(topic=name, server=e.name), [e])
               for e in (a, b)]
    client = oslo_messaging.get_rpc_client(client_transport, oslo_messaging.Target(topic=name),
                                           timeout=5 * SCALE)
    with running(*servers):
        assert client.call({}, "echo", value={"k": [1, 2]}) == {"k": [1, 2]}
        assert client.prepare(server="b").call({}, "whoami") == "b"
        assert client.prepare(server="a").call({}, "whoami") == "a"
        inbox.drain()
        assert client.cast({}, "echo", value="cast") is None
        assert inbox.get()[1] == "cast"
        inbox.assert_quiet()


def test_fanout_reaches_every_server_once(make_transport) -> None:
    transport = make_transport()
    name = topic()
    inbox = Inbox()
    endpoints = [Endpoint(f"s{i}", inbox) for i in range(3)]
    servers = [rpc_server(transport, oslo_messaging.Target(topic=name, server=e.name), [e])
               for e in endpoints]
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=name))
    with running(*servers):
        client.prepare(fanout=True).cast({}, "echo", value="all")
        assert sorted(inbox.take(3)) == [("s0", "all"), ("s1", "all"), ("s2", "all")]
        inbox.assert_quiet()


def test_exchanges_are_kept_apart(make_transport) -> None:
    transport = make_transport()
    name = topic()
    inbox = Inbox()
    server = rpc_server(
        transport, oslo_messaging.Target(exchange="x1", topic=name, server="s"),
        [Endpoint("x1", inbox)])
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=name))
    with running(server):
        client.prepare(exchange="x2").cast({}, "echo", value="wrong exchange")
        client.prepare(exchange="x1").cast({}, "echo", value="right exchange")
        assert inbox.get() == ("x1", "right exchange")
        inbox.assert_quiet()


def test_balanced_delivery_to_blocked_servers(make_transport) -> None:
    transport = make_transport()
    name = topic()
    inbox = Inbox()
    endpoints = [Endpoint(f"s{i}", inbox) for i in range(3)]
    servers = [rpc_server(transport, oslo_messaging.Target(topic=name, server=e.name), [e])
               for e in endpoints]
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=name))
    with running(*servers):
        try:
            for i in range(3):
                client.cast({}, "block", value=i)
            received = inbox.take(3)
            assert sorted(name for name, _ in received) == ["s0", "s1", "s2"]
        finally:
            for endpoint in endpoints:
                endpoint.release.set()


def test_remote_exceptions(conf, make_transport) -> None:
    server_transport = make_transport()
    client_transport = oslo_messaging.get_rpc_transport(
        conf, url=server_transport._driver._url, allowed_remote_exmods=[__name__])
    try:
        name = topic()
        server = rpc_server(server_transport, oslo_messaging.Target(topic=name, server="s"),
                            [Endpoint()])
        allowed = oslo_messaging.get_rpc_client(client_transport,
                                                oslo_messaging.Target(topic=name))
        plain = oslo_messaging.get_rpc_client(server_transport, oslo_messaging.Target(topic=name))
        with running(server):
            with pytest.raises(AppError) as rebuilt:
                allowed.call({}, "fail", kind="app")
            assert rebuilt.value.args[:2] == ("application failure", 42)
            with pytest.raises(oslo_messaging.RemoteError) as remote:
                plain.call({}, "fail", kind="app")
            assert remote.value.exc_type == "AppError"
            with pytest.raises(ValueError):  # builtins are always rebuilt
                plain.call({}, "fail", kind="builtin")
            with pytest.raises(oslo_messaging.RemoteError) as missing:
                plain.call({}, "no_such_method")
            assert missing.value.exc_type == "NoSuchMethod"
    finally:
        client_transport.cleanup()


def test_call_timeout_without_server(make_transport) -> None:
    transport = make_transport()
    name = topic()
    # A queue exists (a server listened once) but nobody consumes it any more.
    server = rpc_server(transport, oslo_messaging.Target(topic=name, server="s"), [Endpoint()])
    with running(server):
        pass
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=name),
                                           timeout=0.5 * SCALE)
    started = time.monotonic()
    with pytest.raises(oslo_messaging.MessagingTimeout):
        client.call({}, "echo", value=1)
    elapsed = time.monotonic() - started
    assert 0.45 * SCALE <= elapsed < 0.5 * SCALE + QUIET


def test_concurrent_calls_get_their_own_replies(make_transport) -> None:
    transport = make_transport()
    name = topic()
    servers = [rpc_server(transport, oslo_messaging.Target(topic=name, server=f"s{i}"),
                          [Endpoint(f"s{i}")]) for i in range(2)]
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=name),
                                           timeout=5 * SCALE)
    results: dict[int, list] = {}

    def caller(n: int) -> None:
        results[n] = [client.call({}, "echo", value=[n, i]) for i in range(20)]

    with running(*servers):
        threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + EVENTUALLY
        for thread in threads:
            joined(thread, max(0.0, deadline - time.monotonic()))
    assert results == {n: [[n, i] for i in range(20)] for n in range(8)}


def test_call_monitor_heartbeats_keep_a_long_call_alive(make_transport) -> None:
    """cmt=2 (scaled): the server heartbeats every cmt/2 s, so a 1.25 * cmt method succeeds.

    oslo's watchdog heartbeats every ``int(cmt) / 2`` seconds and not at all
    below one second, so the scaled value stays a whole number of at least 2.
    """
    cmt = max(2, round(2 * SCALE))
    transport = make_transport()
    name = topic()
    server = rpc_server(transport, oslo_messaging.Target(topic=name, server="s"), [Endpoint()])
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=name),
                                           timeout=5 * cmt, call_monitor_timeout=cmt)
    with running(server):
        assert client.call({}, "slow", seconds=1.25 * cmt) == "done"


def test_call_monitor_times_out_without_heartbeats(make_driver) -> None:
    """Driver level: a server that never heartbeats is given up after cmt."""
    driver = make_driver()
    name = topic()
    listener = driver.listen(oslo_messaging.Target(topic=name, server="s"), 1, None)
    inbox = Inbox()
    listener.start(inbox.put)
    try:
        started = time.monotonic()
        with pytest.raises(oslo_messaging.MessagingTimeout):
            driver.send(oslo_messaging.Target(topic=name), {}, {"method": "x"},
                        wait_for_reply=True, timeout=EVENTUALLY,
                        call_monitor_timeout=0.4 * SCALE)
        assert time.monotonic() - started < 0.4 * SCALE + QUIET
        (incoming,) = inbox.get()
        assert incoming.client_timeout == pytest.approx(0.4 * SCALE)
    finally:
        listener.stop()
        listener.cleanup()
