"""The fault proxy against a local echo server: it forwards, and every fault does what it says.

These run without any broker.  Each test waits for outcomes with deadlines
(socket timeouts), never with fixed sleeps, except where "nothing arrives
for a while" is the very property checked (freeze), which uses one short
bounded window.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from driver_conformance import faults
from driver_conformance.proxy import (
    FaultProxy,
    ProxyError,
    ProxyFaults,
    ProxyProcess,
    proxies_for,
)

WAIT = 3.0


class EchoServer:
    """A threaded echo server on a free loopback port; counts the connections it saw."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            t = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            t.start()

    def _echo(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)
        self.closed.set()
        with contextlib.suppress(OSError):
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", echo.port)) as p:
        yield p


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def is_dead(sock: socket.socket) -> bool:
    """Whether the peer closed or reset ``sock`` (within the socket's timeout)."""
    try:
        sock.sendall(b"ping")
        return sock.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return True
    except TimeoutError:
        return False


def attempt_fails(proxy: FaultProxy) -> bool:
    """Whether a new connection through ``proxy`` fails (at connect time or just after)."""
    try:
        sock = connect(proxy)
    except OSError:
        return True
    return is_dead(sock)


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
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(16)
    assert proxy.live_connections == 1, "a freeze closes nothing"
    proxy.heal()
    sock.settimeout(WAIT)
    assert sock.recv(16) == b"held"


def test_delay_holds_each_chunk(proxy: FaultProxy) -> None:
    sock = connect(proxy)
    assert roundtrip(sock, b"warm") == b"warm"
    proxy.set_delay(0.2)
    started = time.monotonic()
    assert roundtrip(sock, b"slow") == b"slow"
    elapsed = time.monotonic() - started
    assert 0.38 <= elapsed < 2.0, f"expected ~0.4s (0.2s each way), took {elapsed:.3f}s"
    proxy.heal()
    started = time.monotonic()
    assert roundtrip(sock, b"fast") == b"fast"
    assert time.monotonic() - started < 0.2


def test_heal_releases_delayed_bytes_at_once(proxy: FaultProxy) -> None:
    sock = connect(proxy)
    proxy.set_delay(30)
    sock.sendall(b"late")
    proxy.heal()
    assert sock.recv(16) == b"late"


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
    assert echo.closed.wait(WAIT), "the upstream must see the client hang up"
    deadline = time.monotonic() + WAIT
    while proxy.live_connections and time.monotonic() < deadline:
        proxy.barrier()
    assert proxy.live_connections == 0


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
    started = time.monotonic()
    p.stop()
    p.stop()
    assert time.monotonic() - started < 1.0
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
        injector.cut_connections()
        assert all(is_dead(s) for s in socks)
        with injector.outage():
            assert all(attempt_fails(p) for p in proxies)
        assert all(roundtrip(connect(p), b"ok") == b"ok" for p in proxies)
        assert injector.stats["cut"] == 2
        with pytest.raises(faults.FaultNotSupported):
            injector.lose_confirmations(1)
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
        assert echo.closed.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while own_sockets() - before and time.monotonic() < deadline:
            time.sleep(0.01)  # the echo thread closes its side just after signalling
        assert own_sockets() - before == set()
        assert proxy.stats.accepted == 1
        proxy.set_delay(0.2)
        started = time.monotonic()
        assert roundtrip(connect(proxy), b"slow") == b"slow"
        assert time.monotonic() - started >= 0.38
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
