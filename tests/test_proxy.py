"""The fault proxy against local servers: it forwards, and every fault does what it says.

These run without any broker: an echo server stands in for bytes-only
upstreams, and a fake AMQP 0-9-1 broker (:mod:`proxysupport`) for the
frame parser and lost confirmations, which are also tested on synthetic
frames split at every byte.  Nothing sleeps to synchronise: a positive
outcome is waited for on a condition with a deadline (a socket timeout, an
event, or the proxy's counters polled through :meth:`FaultProxy.barrier`,
which returns once the proxy's loop has come round), and "nothing arrives"
(freeze) is one short bounded window.  Every duration is scaled by
``DRIVER_CONFORMANCE_TEST_TIME_SCALE`` (default 1) and every timing assertion
uses the kit's own tolerances (:class:`~driver_conformance.timing.Timing`:
a lower bound a little under nominal, an upper bound with generous slack),
so the tests hold on a loaded two-core machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest
from proxysupport import (
    CONFIRM_SELECT,
    DELAY,
    HEARTBEAT,
    QUIET,
    TIMING,
    WAIT,
    EchoServer,
    FakeAmqpBroker,
    ack,
    amqp_client,
    attempt_fails,
    client_stream,
    connect,
    eventually,
    is_cut,
    is_dead,
    method,
    publish,
    recv_exactly,
    roundtrip,
)

from driver_conformance import faults
from driver_conformance.proxy import (
    FaultProxy,
    ProxyError,
    ProxyFaults,
    ProxyProcess,
    amqp,
    proxies_for,
)
from driver_conformance.timing import Stopwatch


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", echo.port)) as p:
        yield p



def test_forwards_both_ways(proxy: FaultProxy) -> None:
    socks = [connect(proxy) for _ in range(5)]
    big = bytes(range(256)) * 4096  # 1 MiB: exercises partial sends and buffering
    for i, sock in enumerate(socks):
        assert roundtrip(sock, f"hello {i}".encode()) == f"hello {i}".encode()
    assert roundtrip(socks[0], big) == big
    proxy.barrier()
    assert proxy.stats.accepted == 5
    assert proxy.stats.bytes_to_upstream == proxy.stats.bytes_to_client
    for sock in socks:
        sock.close()


def test_listens_on_loopback_only(echo: EchoServer) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(("127.0.0.1", echo.port), listen_host="0.0.0.0")
    with FaultProxy(("127.0.0.1", echo.port)) as p:
        assert p.address[0] == "127.0.0.1"


def test_cut_resets_live_connections_once(proxy: FaultProxy) -> None:
    a, b = connect(proxy), connect(proxy)
    assert roundtrip(a, b"x") == b"x" and roundtrip(b, b"y") == b"y"
    assert proxy.cut() == 2
    assert is_dead(a) and is_dead(b)
    fresh = connect(proxy)
    assert roundtrip(fresh, b"after") == b"after", "a cut is once: new connections work"
    assert proxy.stats.cut == 2


def test_outage_refuses_until_healed(proxy: FaultProxy, echo: EchoServer) -> None:
    live = connect(proxy)
    assert roundtrip(live, b"x") == b"x"
    assert proxy.outage() == 1
    assert is_dead(live)
    before = echo.connections
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=WAIT).close()
    assert echo.connections == before, "nothing reaches the upstream during an outage"
    proxy.outage()  # a second outage while one is in force changes nothing
    squatter = socket.socket()
    with pytest.raises(OSError):  # the port stays the proxy's during the outage
        squatter.bind(proxy.address)
    squatter.close()
    proxy.heal()
    healed = connect(proxy)
    assert roundtrip(healed, b"back") == b"back"


def test_refuse_leaves_live_connections_alone(proxy: FaultProxy) -> None:
    live = connect(proxy)
    proxy.refuse()
    assert attempt_fails(proxy)
    assert roundtrip(live, b"still here") == b"still here"
    proxy.refuse(False)
    assert roundtrip(connect(proxy), b"new") == b"new"


def test_freeze_holds_bytes_without_closing(proxy: FaultProxy) -> None:
    sock = connect(proxy)
    assert roundtrip(sock, b"warm") == b"warm"
    proxy.freeze()
    sock.sendall(b"held")
    sock.settimeout(QUIET)  # the quiet window: nothing may come back within it
    with pytest.raises(TimeoutError):
        sock.recv(16)
    assert proxy.live_connections == 1, "a freeze closes nothing"
    proxy.heal()
    sock.settimeout(WAIT)
    assert sock.recv(16) == b"held"


def assert_delayed_roundtrip(sock: socket.socket, delay: float) -> None:
    """A round trip through a proxy delaying ``delay`` each way takes about twice that.

    The lower bound is the property (the bytes were held); it may be at most
    a little early (clock granularity), never early by a whole delay.  The
    upper bound only has to catch a proxy holding bytes far too long, so its
    slack is generous.
    """
    watch = Stopwatch()
    assert roundtrip(sock, b"slow") == b"slow"
    elapsed, nominal = watch.elapsed(), 2 * delay
    assert TIMING.lower(nominal) <= elapsed <= TIMING.upper(nominal), (
        f"expected about {nominal:.2f}s ({delay:.2f}s each way), took {elapsed:.3f}s")


def test_delay_holds_each_chunk(proxy: FaultProxy) -> None:
    sock = connect(proxy)
    assert roundtrip(sock, b"warm") == b"warm"
    proxy.set_delay(DELAY)
    assert_delayed_roundtrip(sock, DELAY)
    proxy.heal()
    assert roundtrip(sock, b"fast") == b"fast"


def test_heal_releases_delayed_bytes_at_once(proxy: FaultProxy) -> None:
    """Bytes held by a delay far longer than any bound here leave as soon as the delay ends.

    The delay (10 minutes) is long enough that passing within the socket's
    timeout can only mean the heal released them, however loaded the machine.
    """
    sock = connect(proxy)
    proxy.set_delay(600)
    sock.sendall(b"late")
    proxy.heal()
    assert sock.recv(16) == b"late"
    assert roundtrip(sock, b"after") == b"after", "new bytes after a heal are not delayed"


def test_connection_limit_is_enforced(echo: EchoServer) -> None:
    with FaultProxy(("127.0.0.1", echo.port), max_connections=2) as p:
        a, b = connect(p), connect(p)
        assert roundtrip(a, b"1") == b"1" and roundtrip(b, b"2") == b"2"
        assert attempt_fails(p)
        assert p.stats.refused == 1


def test_client_close_is_passed_on(proxy: FaultProxy, echo: EchoServer) -> None:
    sock = connect(proxy)
    assert roundtrip(sock, b"bye") == b"bye"
    sock.close()
    assert echo.wait_closed(1), "the upstream must see the client hang up"
    assert eventually(lambda: proxy.live_connections == 0, proxy.barrier), (
        f"the proxy still holds {proxy.live_connections} connection(s)")


def test_unreachable_upstream_fails_the_client() -> None:
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()  # nothing listens there now
    with FaultProxy(("127.0.0.1", port)) as p:
        assert attempt_fails(p)
        assert p.stats.upstream_failures == 1


def test_stop_closes_everything_and_is_idempotent(echo: EchoServer) -> None:
    p = FaultProxy(("127.0.0.1", echo.port)).start()
    sock = connect(p)
    assert roundtrip(sock, b"x") == b"x"
    watch = Stopwatch()
    p.stop()
    p.stop()
    # Stopping is one loop round trip and two joins; the bound only catches a
    # stop that waited for a timeout (CONTROL_TIMEOUT is 5 s).
    assert watch.elapsed() <= TIMING.upper(TIMING.s(1.0))
    assert is_dead(sock)
    with pytest.raises(OSError):
        socket.create_connection(p.address, timeout=1).close()
    with pytest.raises(ProxyError):
        p.cut()


def test_proxy_faults_drives_every_proxy(echo: EchoServer) -> None:
    with proxies_for([("127.0.0.1", echo.port)] * 2) as proxies:
        injector = ProxyFaults(proxies)
        assert injector.kinds == {faults.OUTAGE, faults.CUT, faults.FREEZE, faults.DELAY}
        socks = [connect(p) for p in proxies]
        # A round trip first: a connection still in the accept queue is not live yet.
        assert all(roundtrip(sock, b"live") == b"live" for sock in socks)
        injector.cut_connections()
        assert all(is_dead(s) for s in socks)
        with injector.outage():
            assert all(attempt_fails(p) for p in proxies)
        assert all(roundtrip(connect(p), b"ok") == b"ok" for p in proxies)
        assert injector.stats["cut"] == 2
        with pytest.raises(faults.FaultNotSupported):
            injector.lose_confirmations(1)
        assert injector.publish_attempts() is None, "a byte proxy cannot count publishes"
    injector.heal()  # after stop: must not raise (the kit heals after every scenario)


def own_sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:"):
                found.add(link)
    return found


def test_proxy_process_keeps_its_sockets_out_of_this_process(echo: EchoServer) -> None:
    """The lanes' proxies run in a child: a connection through one costs this process one socket.

    In-process, the proxy's two sockets per connection would outlive the
    driver's by a moment after a close, and a scenario counting the
    process's sockets would blame the driver for them.
    """
    process = ProxyProcess([("127.0.0.1", echo.port)], name="t").start()
    try:
        (proxy,) = process.proxies()
        before = own_sockets()
        sock = socket.create_connection(proxy.address, timeout=WAIT)
        sock.settimeout(WAIT)
        assert roundtrip(sock, b"x") == b"x"
        # The client and the echo server's side; an in-process proxy would add two.
        assert len(own_sockets() - before) == 2
        sock.close()
        assert echo.wait_closed(1)  # the echo thread counts a connection once it closed it
        assert own_sockets() - before == set()
        assert proxy.stats.accepted == 1
        proxy.set_delay(DELAY)
        assert_delayed_roundtrip(connect(proxy), DELAY)
        proxy.heal()
        with pytest.raises(ProxyError, match="unknown operation"):
            process.call("explode")
    finally:
        process.stop()
    assert process.process.returncode is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", process.ports[0]), timeout=1).close()
    with pytest.raises(ProxyError):
        process.call("cut")


def test_proxy_process_exits_when_its_parent_goes(echo: EchoServer) -> None:
    process = ProxyProcess([("127.0.0.1", echo.port)], name="t").start()
    process.process.stdin.close()  # what the parent's death looks like to the child
    assert process.process.wait(WAIT) == 0
    process.stop()


def test_in_process_variant_for_tests(echo: EchoServer) -> None:
    with proxies_for([("127.0.0.1", echo.port)], out_of_process=False) as (proxy,):
        assert isinstance(proxy, FaultProxy)
        assert roundtrip(connect(proxy), b"in") == b"in"


def test_proxied_puts_a_proxy_in_front_of_every_host() -> None:
    """The adapter helper: each host of a multi-host URL gets its own proxy; credentials stay."""
    from driver_conformance.proxy import proxied
    from driver_conformance.urls import network_hosts

    first, second = EchoServer(), EchoServer()
    url = (f"rabbit://u:s%40cret@127.0.0.1:{first.port},"
           f"v:other@127.0.0.1:{second.port}/vhost?ssl=0")
    try:
        with proxied(url, 5672, name="t") as (proxy_url, injector):
            ports = [port for _, port in network_hosts(proxy_url)]
            assert proxy_url == (f"rabbit://u:s%40cret@127.0.0.1:{ports[0]},"
                                 f"v:other@127.0.0.1:{ports[1]}/vhost?ssl=0")
            assert isinstance(injector, ProxyFaults) and len(injector.proxies) == 2
            assert {first.port, second.port}.isdisjoint(ports)
            for port in ports:
                sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                sock.settimeout(WAIT)
                assert roundtrip(sock, b"through") == b"through"
                sock.close()
            assert (first.connections, second.connections) == (1, 1), (
                "the i-th proxy leads to the i-th host")
            assert injector.describe() == (f"127.0.0.1:{ports[0]} -> 127.0.0.1:{first.port}, "
                                           f"127.0.0.1:{ports[1]} -> 127.0.0.1:{second.port}")
            socks = [connect(p) for p in injector.proxies]
            # A round trip first: a connection still in the accept queue is not live yet.
            assert all(roundtrip(sock, b"live") == b"live" for sock in socks)
            injector.cut_connections()
            assert all(is_dead(sock) for sock in socks)
        assert attempt_fails(injector.proxies[0]), "the proxies stop with the block"
    finally:
        first.close()
        second.close()


def test_proxied_defaults_the_port_and_refuses_a_url_without_hosts(echo: EchoServer) -> None:
    from driver_conformance.proxy import proxied

    with proxied("mq://127.0.0.1/", echo.port, name="t", out_of_process=False) as proxy:
        assert proxy.faults.describe().endswith(f"-> 127.0.0.1:{echo.port}")
        assert "secret" not in str(proxy.facts)
        (port,) = proxy.ports
        assert roundtrip(connect(proxy.faults.proxies[0]), b"x") == b"x"
        assert proxy.url == f"mq://127.0.0.1:{port}/"
    with pytest.raises(ValueError, match="no network host") as info:
        with proxied("mq://user:secret@/", 1):
            pass
    assert "secret" not in str(info.value)


def test_proxied_docstring_example_is_a_working_adapter(echo: EchoServer) -> None:
    """The adapter in :func:`proxied`'s docstring runs as written."""
    import inspect
    import textwrap

    from driver_conformance.proxy import proxied

    doc = inspect.getdoc(proxied) or ""
    block = doc.split("scheme ``mq``::", 1)[1].split("\n(", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(textwrap.dedent(block), "proxied-example", "exec"), namespace)
    adapter = namespace["MyAdapter"]()
    with adapter.backend(f"mq://user:secret@127.0.0.1:{echo.port}/", "p") as backend:
        assert faults.CUT in backend.faults.kinds
        assert backend.url.startswith("mq://user:secret@127.0.0.1:")
        assert "secret" not in str(backend.facts)
        sock = socket.create_connection(backend.faults.proxies[0].address, timeout=WAIT)
        sock.settimeout(WAIT)
        assert roundtrip(sock, b"adapter") == b"adapter"
        backend.faults.cut_connections()
        assert is_dead(sock)


# -- AMQP 0-9-1: the frame reader, the publish tracker, lost confirmations -----------------


@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
def test_frame_reader_survives_any_split(split: str) -> None:
    import random

    stream = client_stream()
    if split == "whole":
        chunks = [stream]
    elif split == "bytes":
        chunks = [stream[i:i + 1] for i in range(len(stream))]
    else:
        rng, chunks, i = random.Random(7), [], 0
        while i < len(stream):
            n = rng.choice([1, 2, 3, 7, 8, 100, 4096, 65536])
            chunks.append(stream[i:i + n])
            i += n
    reader, frames, ends, offset = amqp.FrameReader(), [], [], 0
    for chunk in chunks:
        for f in reader.feed(chunk):
            frames.append((f.type, f.channel, f.size, f.prefix))
            ends.append(offset + f.end)
        offset += len(chunk)
    whole = amqp.FrameReader()
    expected = [(f.type, f.channel, f.size, f.prefix) for f in whole.feed(stream)]
    assert reader.error is None and frames == expected
    assert len(frames) == 20 and ends[-1] == len(stream)
    assert all(len(p) <= amqp.PREFIX for *_, p in frames), "payloads are not kept"


def test_frame_reader_stops_at_a_framing_error() -> None:
    reader = amqp.FrameReader()
    good = ack(1, 1)
    assert len(reader.feed(good + good[:-1] + b"\x00")) == 1
    assert reader.error and "frame end" in reader.error
    assert reader.feed(good) == [], "nothing more is interpreted after an error"
    junk = amqp.FrameReader()
    assert junk.feed(b"GET / HTTP/1.1\r\n\r\n") == [] and "not AMQP" in (junk.error or "")


def test_session_numbers_publishes_per_channel_in_confirm_mode() -> None:
    session = amqp.AmqpSession()
    got = session.from_client(client_stream())
    # Channel 1 is in confirm mode (tags 1, 2, 3); channel 2 is not.
    assert [(p.channel, p.seq) for p in got] == [(1, 1), (1, 2), (2, None), (1, 3)]
    # Interleaved publishes on two channels, and a reopened channel starting afresh.
    a, b = publish(3, b"aaaa", pieces=2), publish(4, b"bb")
    a_frames = [a[:a.index(b"\xce") + 1]]
    stream = method(3, amqp.CONFIRM_SELECT, b"\0") + a_frames[0] + b[:len(b) // 2]
    got = session.from_client(stream)
    got += session.from_client(b[len(b) // 2:] + a[len(a_frames[0]):])
    assert [(p.channel, p.seq) for p in got] == [(4, None), (3, 1)]
    got = session.from_client(method(3, amqp.CHANNEL_CLOSE, b"\0" * 6)
                              + method(3, amqp.CHANNEL_OPEN, b"\0") + publish(3, b"z"))
    assert [(p.channel, p.seq) for p in got] == [(3, None)], "a reopened channel is not confirming"


@pytest.mark.parametrize(("answer", "answers"), [
    (ack(1, 2), True),
    (ack(1, 5, multiple=True), True),
    (ack(1, 0, multiple=True), True),
    (ack(1, 2, nack=True), True),
    (method(1, amqp.CHANNEL_CLOSE, b"\0" * 6), True),
    (method(0, amqp.CONNECTION_CLOSE, b"\0" * 6), True),
    (ack(1, 1), False),
    (ack(1, 1, multiple=True), False),
    (ack(2, 2), False),
    (HEARTBEAT, False),
])
def test_session_recognises_the_answer_to_a_confirmed_publish(answer: bytes,
                                                              answers: bool) -> None:
    session = amqp.AmqpSession()
    published = session.from_client(CONFIRM_SELECT + publish(1, b"a") + publish(1, b"b"))
    session.await_answer(published[-1])
    assert session.from_broker(answer) is answers


def test_session_outside_confirm_mode_takes_the_next_frame_as_the_answer() -> None:
    session = amqp.AmqpSession()
    assert session.from_broker(HEARTBEAT[:3]) is False, "nothing awaited yet"
    (sent,) = session.from_client(publish(1, b"a"))
    assert sent.seq is None
    session.await_answer(sent)
    assert session.from_broker(HEARTBEAT[3:]) is True


@pytest.fixture
def broker() -> Iterator[FakeAmqpBroker]:
    server = FakeAmqpBroker()
    yield server
    server.close()



@pytest.fixture
def amqp_proxy(broker: FakeAmqpBroker) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", broker.port), protocol="amqp") as p:
        yield p


def test_lost_confirmation_reaches_the_broker_and_never_the_client(
        amqp_proxy: FaultProxy, broker: FakeAmqpBroker) -> None:
    sock = amqp_client(amqp_proxy.address)
    sock.sendall(publish(1, b"one"))
    assert recv_exactly(sock, len(ack(1, 1))) == ack(1, 1), "healthy: the ack comes back"
    amqp_proxy.lose_confirmations(1)
    # Two publishes in one write: the first is doomed, the second must never leave.
    sock.sendall(publish(1, b"two", pieces=2) + publish(1, b"three"))
    assert is_cut(sock), "the client must be cut instead of getting its ack"
    assert broker.wait_bodies(2)[:2] == [b"one", b"two"], "the doomed publish reached the broker"
    stats = amqp_proxy.stats
    assert (stats.confirms_lost, stats.answers_missed, stats.protocol_errors) == (1, 0, 0)
    fresh = amqp_client(amqp_proxy.address)
    fresh.sendall(publish(1, b"four"))
    assert recv_exactly(fresh, len(ack(1, 1))) == ack(1, 1), "one publish lost, no more"
    assert broker.wait_bodies(3) == [b"one", b"two", b"four"], "nothing after the doomed one"
    amqp_proxy.barrier()
    assert amqp_proxy.stats.publishes == 3
    assert amqp_proxy.stats.confirmed_publishes == 3


def test_lost_confirmation_outside_confirm_mode_cuts_on_the_next_frame() -> None:
    server = FakeAmqpBroker(answer="heartbeat")
    try:
        with FaultProxy(("127.0.0.1", server.port), protocol="amqp") as p:
            sock = amqp_client(p.address, confirm=False)
            p.lose_confirmations(1)
            sock.sendall(publish(1, b"plain"))
            assert is_cut(sock)
            assert server.wait_bodies(1) == [b"plain"]
            assert p.stats.confirms_lost == 1 and p.stats.confirmed_publishes == 0
    finally:
        server.close()


def test_an_answer_that_never_comes_is_waited_for_with_a_bound() -> None:
    server = FakeAmqpBroker(answer="none")
    patience = TIMING.s(0.3)
    try:
        with FaultProxy(("127.0.0.1", server.port), protocol="amqp",
                        answer_patience=patience) as p:
            sock = amqp_client(p.address)
            p.lose_confirmations(1)
            watch = Stopwatch()
            sock.sendall(publish(1, b"silence"))
            assert is_cut(sock), "a silent broker must not keep the connection forever"
            assert watch.elapsed() >= TIMING.lower(patience)
            assert p.stats.answers_missed == 1 and p.stats.confirms_lost == 0
    finally:
        server.close()


def test_heal_disarms_lost_confirmations(amqp_proxy: FaultProxy) -> None:
    sock = amqp_client(amqp_proxy.address)
    amqp_proxy.lose_confirmations(2)
    amqp_proxy.heal()
    sock.sendall(publish(1, b"safe"))
    assert recv_exactly(sock, len(ack(1, 1))) == ack(1, 1)
    assert amqp_proxy.stats.confirms_lost == 0


@pytest.mark.parametrize("out_of_process", [False, True])
def test_proxy_faults_lose_n_confirmations_across_a_cluster(broker: FakeAmqpBroker,
                                                            out_of_process: bool) -> None:
    """Two hosts, one budget: ``lose_confirmations(1)`` loses one publish, not one per host."""
    hosts = [("127.0.0.1", broker.port)] * 2
    with proxies_for(hosts, protocol="amqp", out_of_process=out_of_process) as proxies:
        injector = ProxyFaults(proxies)
        assert injector.kinds == ProxyFaults.kinds_for("amqp")
        assert faults.LOST_CONFIRM in injector.kinds
        assert injector.publish_attempts() == 0
        first, second = (amqp_client(p.address) for p in proxies)
        injector.lose_confirmations(1)
        first.sendall(publish(1, b"lost"))
        assert is_cut(first)
        second.sendall(publish(1, b"kept"))
        assert recv_exactly(second, len(ack(1, 1))) == ack(1, 1)
        assert broker.wait_bodies(2) == [b"lost", b"kept"]
        assert injector.publish_attempts() == 2
        assert injector.stats["confirms_lost"] == 1
        with injector.outage():
            assert injector.publish_attempts() is None, (
                "refused attempts are invisible, so no count during an outage")
        assert injector.publish_attempts() == 2
        with pytest.raises(ValueError):
            injector.lose_confirmations(-1)


def test_non_amqp_bytes_are_forwarded_and_counted(echo: EchoServer) -> None:
    with FaultProxy(("127.0.0.1", echo.port), protocol="amqp") as p:
        assert roundtrip(connect(p), b"not amqp at all") == b"not amqp at all"
        assert eventually(lambda: p.stats.protocol_errors == 1, p.barrier)
        assert p.stats.publishes == 0


def test_protocol_is_explicit(echo: EchoServer) -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        FaultProxy(("127.0.0.1", echo.port), protocol="http")
    with pytest.raises(ValueError, match="unknown protocol"):
        ProxyProcess([("127.0.0.1", echo.port)], protocol="http")
    with FaultProxy(("127.0.0.1", echo.port)) as p:
        with pytest.raises(ValueError, match="needs a protocol"):
            p.lose_confirmations(1)
