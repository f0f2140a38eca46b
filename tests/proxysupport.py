"""Helpers for the fault proxy's tests: local servers to proxy to, sockets, AMQP frames.

Everything waits with a bound: sockets carry timeouts, servers signal on
conditions, and :func:`eventually` polls the proxy's loop instead of
sleeping.  Durations are scaled by ``DRIVER_CONFORMANCE_TEST_TIME_SCALE``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from driver_conformance.proxy import amqp
from driver_conformance.timing import Deadline, Timing

TIMING = Timing(scale=float(os.environ.get("DRIVER_CONFORMANCE_TEST_TIME_SCALE") or 1.0))
#: Ceiling for every positive outcome (bytes echoed, a connection closed).
WAIT = TIMING.eventually
#: The window in which "nothing arrives" is checked.
QUIET = TIMING.s(0.3)
#: The delay the delay tests inject, each way.
DELAY = TIMING.s(0.2)


def eventually(condition: Callable[[], bool], step: Callable[[], object],
               timeout: float = WAIT) -> bool:
    """Whether ``condition`` holds within ``timeout``; ``step`` paces the polling.

    ``step`` is a proxy's ``barrier`` (or ``stats``): it returns once the
    proxy's loop has come round, so each check sees what the loop did since
    the last one, and the wait needs no sleep.
    """
    deadline = Deadline(timeout)
    while not condition():
        if deadline.expired():
            return condition()
        step()
    return True


class EchoServer:
    """A threaded echo server on a free loopback port; counts the connections it saw."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._closed = 0
        self._changed = threading.Condition()
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
        # Closed before it is counted, so a waiter sees the socket gone too.
        with contextlib.suppress(OSError):
            conn.close()
        with self._changed:
            self._closed += 1
            self._changed.notify_all()

    def wait_closed(self, count: int = 1, timeout: float = WAIT) -> bool:
        """Whether ``count`` connections have ended on the server's side within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._closed >= count, timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()



def connect(proxy: Any) -> socket.socket:
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


def attempt_fails(proxy: Any) -> bool:
    """Whether a new connection through ``proxy`` fails (at connect time or just after)."""
    try:
        sock = connect(proxy)
    except OSError:
        return True
    return is_dead(sock)



# -- AMQP 0-9-1 frames, a client and a broker that speak just enough of it ------------------


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def method(channel: int, ids: tuple[int, int], args: bytes = b"") -> bytes:
    return frame(amqp.FRAME_METHOD, channel, struct.pack(">HH", *ids) + args)


def publish(channel: int, body: bytes, pieces: int = 1) -> bytes:
    """basic.publish + content header + the body in ``pieces`` body frames."""
    exchange, key = b"x", b"k"
    args = (struct.pack(">HB", 0, len(exchange)) + exchange + struct.pack(">B", len(key)) + key
            + b"\0")
    header = frame(amqp.FRAME_HEADER, channel, struct.pack(">HHQH", 60, 0, len(body), 0))
    step = max(1, -(-len(body) // pieces))
    bodies = b"".join(frame(amqp.FRAME_BODY, channel, body[i:i + step])
                      for i in range(0, len(body), step))
    return method(channel, amqp.BASIC_PUBLISH, args) + header + bodies


def ack(channel: int, tag: int, multiple: bool = False, nack: bool = False) -> bytes:
    return method(channel, amqp.BASIC_NACK if nack else amqp.BASIC_ACK,
                  struct.pack(">QB", tag, int(multiple)))


HEARTBEAT = frame(amqp.FRAME_HEARTBEAT, 0, b"")
CONFIRM_SELECT = method(1, amqp.CONFIRM_SELECT, b"\0")
CONFIRM_SELECT_OK = method(1, (85, 11))


def client_stream() -> bytes:
    """What a confirming AMQP client sends: every frame kind, bodies small and large."""
    return (amqp.PROTOCOL_HEADER + method(0, (10, 11), b"\0" * 40) + method(1, amqp.CHANNEL_OPEN,
                                                                            b"\0")
            + CONFIRM_SELECT + publish(1, b"hello") + HEARTBEAT + publish(1, b"")
            + publish(2, bytes(200_000), pieces=4) + publish(1, b"x" * 70, pieces=3))



class FakeAmqpBroker:
    """Enough of an AMQP 0-9-1 broker to be lied to: takes publishes, acks confirming ones.

    It reads frames with blocking reads of exact sizes (independently of the
    proxy's reader), records every complete publish body, and answers each
    publish on a channel in confirm mode with a ``basic.ack`` of its
    delivery tag -- or with a heartbeat, or not at all (``answer``).
    """

    def __init__(self, answer: str = "ack") -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.bodies: list[bytes] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn: socket.socket) -> None:
        confirming: dict[int, int] = {}
        body: dict[int, bytearray] = {}
        left: dict[int, int] = {}
        with contextlib.suppress(OSError, EOFError), conn:
            assert self._read(conn, 8) == amqp.PROTOCOL_HEADER
            while True:
                kind, channel, size = struct.unpack(">BHI", self._read(conn, 7))
                payload = self._read(conn, size)
                assert self._read(conn, 1) == b"\xce"
                done = False
                if kind == amqp.FRAME_METHOD:
                    ids = struct.unpack_from(">HH", payload)
                    if ids == amqp.CONFIRM_SELECT:
                        confirming[channel] = 0
                        conn.sendall(method(channel, (85, 11)))
                    elif ids == amqp.BASIC_PUBLISH:
                        body[channel] = bytearray()
                elif kind == amqp.FRAME_HEADER:
                    left[channel] = struct.unpack_from(">Q", payload, 4)[0]
                    done = left[channel] == 0
                elif kind == amqp.FRAME_BODY:
                    body[channel] += payload
                    left[channel] -= size
                    done = left[channel] == 0
                if done:
                    with self._changed:
                        self.bodies.append(bytes(body.pop(channel)))
                        self._changed.notify_all()
                    if channel in confirming and self.answer == "ack":
                        confirming[channel] += 1
                        conn.sendall(ack(channel, confirming[channel]))
                    elif self.answer == "heartbeat":
                        conn.sendall(HEARTBEAT)

    def wait_bodies(self, count: int, timeout: float = WAIT) -> list[bytes]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()



def amqp_client(address: tuple[str, int], confirm: bool = True) -> socket.socket:
    """A connection through the proxy that has said hello and, if asked, selected confirms."""
    sock = socket.create_connection(address, timeout=WAIT)
    sock.settimeout(WAIT)
    sock.sendall(amqp.PROTOCOL_HEADER)
    if confirm:
        sock.sendall(CONFIRM_SELECT)
        assert recv_exactly(sock, len(CONFIRM_SELECT_OK)) == CONFIRM_SELECT_OK
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def is_cut(sock: socket.socket) -> bool:
    """Whether the proxy ended ``sock`` (reset or closed) instead of answering it."""
    try:
        return sock.recv(64) == b""
    except (ConnectionResetError, ConnectionAbortedError):
        return True
    except TimeoutError:
        return False
