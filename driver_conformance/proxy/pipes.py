"""What the proxy's loop keeps per connection, and the counters it keeps for evidence.

A :class:`Pipe` is one proxied connection: the client's socket, the
upstream socket, and a :class:`Direction` for each way the bytes go, whose
chunks wait there until they are due (a delay) and the other socket can take
them (back-pressure).  Only the loop thread of
:class:`~driver_conformance.proxy.FaultProxy` touches them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import socket
import struct

from driver_conformance.proxy.amqp import ConfirmLoser


@dataclasses.dataclass
class ProxyStats:
    """Counters kept by the loop; read them for evidence ("3 connections cut")."""

    accepted: int = 0
    refused: int = 0
    cut: int = 0
    upstream_failures: int = 0
    bytes_to_upstream: int = 0
    bytes_to_client: int = 0
    live: int = 0
    #: 1 while new connections are refused (a gauge, like ``live``).
    refusing: int = 0
    #: Complete publishes the clients sent (counted only with a protocol).
    publishes: int = 0
    #: Of those, the ones sent on a channel in confirm mode (AMQP ``confirm.select``).
    confirmed_publishes: int = 0
    #: Connections cut once the broker's answer to a doomed publish arrived.
    confirms_lost: int = 0
    #: Connections cut because that answer did not come within ANSWER_PATIENCE.
    answers_missed: int = 0
    #: Connections whose bytes stopped making sense as the protocol.
    protocol_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def reset_socket(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset, so the peer learns at once and nothing lingers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class Direction:
    """Bytes travelling one way through a pipe, each chunk with the time it may leave."""

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.shut = False

    def due(self, now: float) -> bool:
        return bool(self.chunks) and self.chunks[0][0] <= now

    def next_due(self) -> float | None:
        return self.chunks[0][0] if self.chunks else None


class Pipe:
    """One proxied connection: the client's socket, the upstream socket, two directions."""

    def __init__(self, client: socket.socket, upstream: socket.socket,
                 watch: ConfirmLoser | None = None) -> None:
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.up = Direction(client, upstream)
        self.down = Direction(upstream, client)
        #: The protocol watcher (``protocol="amqp"``), else None.
        self.watch = watch
        self.error_counted = False
        #: When the broker's answer to a doomed publish is due, once it may come.
        self.answer_by: float | None = None

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        return self.client, self.upstream

    def finished(self) -> bool:
        return all(d.eof and not d.chunks for d in (self.up, self.down))
