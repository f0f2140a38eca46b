"""The proxy itself: one thread, one :mod:`selectors` loop, every connection's bytes.

A :class:`FaultProxy` forwards ``127.0.0.1:<port>`` to one upstream address
and applies the faults described in :mod:`driver_conformance.proxy` to the
connections it carries.  One thread runs a :mod:`selectors` loop over every
socket.  Control calls from other threads are queued to it and wait
(bounded) until the loop has applied them, so that when :meth:`FaultProxy.cut`
returns the connections are really gone.  Everything is bounded: the number
of connections, the bytes buffered per direction (reading stops when a
buffer is full, which pushes back on the sender the way a slow network
does), every wait for the loop, and the time :meth:`FaultProxy.stop` takes.

Told what its connections carry (``protocol="amqp"``), the proxy also reads
them as frames (:mod:`driver_conformance.proxy.amqp`): it counts publishes
and can lose the confirmation of the next N (:meth:`FaultProxy.lose_confirmations`),
the one fault that needs to know where a message ends.  Without a protocol
it never looks inside the bytes.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from driver_conformance.proxy.amqp import ConfirmBudget, ConfirmLoser
from driver_conformance.proxy.pipes import Direction, Pipe, ProxyStats, reset_socket

#: Bytes read from a socket at a time.
CHUNK = 64 * 1024
#: How long a control call waits for the loop to apply it.
CONTROL_TIMEOUT = 5.0
#: What a proxy can be told it carries (``protocol=``); None is bytes only.
PROTOCOLS = frozenset({None, "amqp"})
#: How long a connection whose confirmation is being lost waits for the broker's
#: answer before it is cut anyway.
ANSWER_PATIENCE = 5.0


class ProxyError(RuntimeError):
    """The proxy could not start, or its loop did not answer a control call in time."""


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``; see the module docstring.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    ``port`` 0 picks a free port; :attr:`address` tells which.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 256,
        buffer_limit: int = 4 * 1024 * 1024,
        connect_timeout: float = 3.0,
        name: str = "fault-proxy",
        protocol: str | None = None,
        budget: ConfirmBudget | None = None,
        answer_patience: float = ANSWER_PATIENCE,
    ) -> None:
        if listen_host not in ("127.0.0.1", "::1", "localhost"):
            # The proxy exists to break the kit's own connections; it must never
            # be reachable by anyone else.
            raise ValueError(f"the fault proxy listens on loopback only, not {listen_host!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; known: amqp (or None)")
        #: What the connections carry: ``"amqp"`` (0-9-1) lets the proxy count
        #: publishes and lose confirmations (:mod:`driver_conformance.proxy.amqp`).
        self.protocol = protocol
        #: Shared by the proxies of one backend: "the next N publishes" through any.
        self.budget = budget if budget is not None else ConfirmBudget()
        self.answer_patience = answer_patience
        self.upstream = upstream
        self.listen_host = listen_host
        self.requested_port = port
        self.max_connections = max_connections
        self.buffer_limit = buffer_limit
        self.connect_timeout = connect_timeout
        self.name = name
        self.stats = ProxyStats()
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        #: Bound, not listening: holds the port while connections are refused.
        self._placeholder: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], threading.Event,
                                                list[Any]]] = queue.SimpleQueue()
        self._pipes: list[Pipe] = []
        self._connect_deadline: dict[socket.socket, float] = {}
        self._refusing = False
        self._frozen = False
        self._delay = 0.0
        self._running = False
        self._stopped = threading.Event()
        self.address: tuple[str, int] = ("", 0)

    # -- lifecycle ------------------------------------------------------------------
    def _bind(self, port: int, listen: bool) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.listen_host, port))
            if listen:
                sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def start(self) -> FaultProxy:
        try:
            listener = self._bind(self.requested_port, listen=True)
        except OSError as exc:
            raise ProxyError(f"{self.name}: cannot listen on {self.listen_host}:"
                             f"{self.requested_port}: {exc.strerror or exc}") from None
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(listener, selectors.EVENT_READ, "listener")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"conformance-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = CONTROL_TIMEOUT) -> None:
        """Reset every connection, stop listening, and end the loop thread (bounded)."""
        if not self._running:
            return
        with contextlib.suppress(ProxyError):
            self._control(self._shutdown, timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.address[1]

    # -- faults (called from any thread; each returns once the loop applied it) -------
    def cut(self) -> int:
        """Reset every live connection once; returns how many were cut."""
        return self._control(self._cut_all)

    def refuse(self, refusing: bool = True) -> None:
        """Refuse new connections (until ``refuse(False)``); live ones are left alone."""
        self._control(lambda: self._set_refusing(refusing))

    def outage(self) -> int:
        """Refuse new connections and cut the live ones; returns how many were cut."""
        def apply() -> int:
            self._set_refusing(True)
            return self._cut_all()
        return self._control(apply)

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) moving bytes in both directions, closing nothing."""
        self._control(lambda: setattr(self, "_frozen", frozen))

    def set_delay(self, seconds: float) -> None:
        """Hold every chunk read from now on for ``seconds`` before passing it on."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        self._control(lambda: setattr(self, "_delay", float(seconds)))

    def lose_confirmations(self, count: int) -> None:
        """Let the next ``count`` publishes reach the broker and lose the answer to each.

        Each such publish's connection is cut once the broker's answer has
        arrived (see :mod:`driver_conformance.proxy.amqp`).  The count is kept
        in :attr:`budget`, shared with every proxy built with the same one;
        a new call replaces what is left of the last.
        """
        if self.protocol is None:
            raise ValueError(f"{self.name}: losing confirmations needs a protocol "
                             "(FaultProxy(..., protocol='amqp'))")
        self._control(lambda: self.budget.set(count))

    @property
    def confirm_group(self) -> int:
        """Proxies with equal groups share a budget: arm one of them, not each."""
        return id(self.budget)

    def heal(self) -> None:
        """End every fault: accept again, unfreeze, no delay, release held bytes now.

        Lost confirmations end too: nothing more is armed, and a connection
        whose publish is already doomed is cut at once (what its client sent
        after that publish has been dropped, so it cannot go on).
        """
        def apply() -> None:
            self._set_refusing(False)
            self._frozen = False
            self._delay = 0.0
            self.budget.set(0)
            now = time.monotonic()
            for pipe in list(self._pipes):
                if pipe.watch is not None and pipe.watch.doomed is not None:
                    self._lose_confirm(pipe, answered=False)
                    continue
                for d in (pipe.up, pipe.down):
                    d.chunks = collections.deque((min(at, now), b) for at, b in d.chunks)
        self._control(apply)

    def barrier(self) -> None:
        """Return once the loop has finished what it was doing (counters are then current)."""
        self._control(lambda: None)

    @property
    def live_connections(self) -> int:
        return self.stats.live

    # -- control plumbing -----------------------------------------------------------
    def _control(self, action: Callable[[], Any], timeout: float = CONTROL_TIMEOUT) -> Any:
        if not self._running or self._thread is None:
            raise ProxyError(f"{self.name} is not running")
        if threading.current_thread() is self._thread:
            return action()
        done = threading.Event()
        result: list[Any] = []
        self._commands.put((action, done, result))
        self._wake()
        if not done.wait(timeout):
            raise ProxyError(f"{self.name}: the proxy loop did not answer within {timeout}s")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    def _run_commands(self) -> None:
        while True:
            try:
                action, done, result = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                result.append(action())
            except Exception as exc:  # handed back to the caller's thread
                result.append(exc)
            finally:
                done.set()

    # -- the loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        assert self._sel is not None
        try:
            while self._running:
                self._update_interest()
                events = self._sel.select(self._select_timeout())
                for key, mask in events:
                    self._dispatch(key, mask)
                self._run_commands()
                self._expire_connects()
                self._expire_answers()
                self._reap()
        finally:
            # Also reached if the loop itself failed: the proxy is then stopped,
            # and says so, rather than silently forwarding nothing.
            self._running = False
            self._close_everything()
            # Anyone still waiting on a command gets an answer rather than a timeout.
            self._run_commands()
            self._stopped.set()

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        tag = key.data
        if tag == "wake":
            with contextlib.suppress(OSError):
                while self._wake_r is not None and self._wake_r.recv(4096):
                    pass
        elif tag == "listener":
            self._accept()
        else:
            pipe, sock = tag
            if pipe not in self._pipes:
                return
            if mask & selectors.EVENT_WRITE:
                self._on_writable(pipe, sock)
            if mask & selectors.EVENT_READ and pipe in self._pipes:
                self._on_readable(pipe, sock)

    def _select_timeout(self) -> float:
        timeout = 0.5
        now = time.monotonic()
        if not self._frozen:
            # Frozen, neither held bytes nor awaited answers are due (see _expire_answers).
            for pipe in self._pipes:
                for at in (pipe.up.next_due(), pipe.down.next_due(), pipe.answer_by):
                    if at is not None:
                        timeout = min(timeout, max(0.0, at - now))
        if self._connect_deadline:
            timeout = min(timeout, max(0.0, min(self._connect_deadline.values()) - now))
        return timeout

    def _update_interest(self) -> None:
        assert self._sel is not None
        now = time.monotonic()
        for pipe in self._pipes:
            for sock in pipe.sockets():
                mask = 0
                out = pipe.up if sock is pipe.client else pipe.down
                inc = pipe.down if sock is pipe.client else pipe.up
                if sock is pipe.upstream and not pipe.connected:
                    # Only the connect's completion matters until it is done.
                    self._set_mask(sock, selectors.EVENT_WRITE, (pipe, sock))
                    continue
                if not self._frozen and inc.due(now) and not inc.shut:
                    mask |= selectors.EVENT_WRITE
                if (not self._frozen and not out.eof
                        and out.buffered < self.buffer_limit):
                    mask |= selectors.EVENT_READ
                self._set_mask(sock, mask, (pipe, sock))

    def _set_mask(self, sock: socket.socket, mask: int, data: Any) -> None:
        assert self._sel is not None
        try:
            key = self._sel.get_key(sock)
        except KeyError:
            if mask:
                self._sel.register(sock, mask, data)
            return
        if mask == 0:
            self._sel.unregister(sock)
        elif key.events != mask:
            self._sel.modify(sock, mask, data)

    def _set_refusing(self, refusing: bool) -> None:
        """Close or reopen the listening socket (loop thread only).

        If the port cannot be held or taken back (something else bound it in
        the microseconds between two calls), the proxy keeps (or reopens) a
        listener and resets each new connection at once instead: the client
        still fails to connect, with ``ECONNRESET`` instead of ``ECONNREFUSED``.
        """
        assert self._sel is not None
        self._refusing = refusing
        self.stats.refusing = int(refusing)
        port = self.address[1]
        if refusing and self._listener is not None:
            self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
            try:
                self._placeholder = self._bind(port, listen=False)
            except OSError:
                self._placeholder = None
                self._reopen(port)
        elif not refusing and self._listener is None:
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            self._reopen(port)

    def _reopen(self, port: int) -> None:
        assert self._sel is not None
        try:
            self._listener = self._bind(port, listen=True)
        except OSError as exc:
            self._listener = None
            raise ProxyError(f"{self.name}: lost port {port}: {exc.strerror or exc}") from None
        self._sel.register(self._listener, selectors.EVENT_READ, "listener")

    def _accept(self) -> None:
        if self._listener is None:
            return
        for _ in range(64):
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self._refusing or len(self._pipes) >= self.max_connections:
                self.stats.refused += 1
                reset_socket(client)
                continue
            self.stats.accepted += 1
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            family = socket.AF_INET6 if ":" in self.upstream[0] else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = upstream.connect_ex(self.upstream)
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                self.stats.upstream_failures += 1
                reset_socket(client)
                upstream.close()
                continue
            watch = ConfirmLoser(self.budget) if self.protocol == "amqp" else None
            pipe = Pipe(client, upstream, watch)
            pipe.connected = err == 0
            if not pipe.connected:
                self._connect_deadline[upstream] = time.monotonic() + self.connect_timeout
            self._pipes.append(pipe)
            self.stats.live = len(self._pipes)

    def _expire_answers(self) -> None:
        if self._frozen:
            return  # a freeze closes nothing; the answer may still come after it
        now = time.monotonic()
        for pipe in list(self._pipes):
            if pipe.answer_by is not None and pipe.answer_by <= now:
                self._lose_confirm(pipe, answered=False)

    def _lose_confirm(self, pipe: Pipe, answered: bool) -> None:
        if answered:
            self.stats.confirms_lost += 1
        else:
            self.stats.answers_missed += 1
        self._drop(pipe)

    def _expire_connects(self) -> None:
        now = time.monotonic()
        for pipe in list(self._pipes):
            at = self._connect_deadline.get(pipe.upstream)
            if at is not None and at <= now:
                self.stats.upstream_failures += 1
                self._drop(pipe)

    def _on_writable(self, pipe: Pipe, sock: socket.socket) -> None:
        if sock is pipe.upstream and not pipe.connected:
            self._connect_deadline.pop(sock, None)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.stats.upstream_failures += 1
                self._drop(pipe)
                return
            pipe.connected = True
            if pipe.up.eof and not pipe.up.chunks and not pipe.up.shut:
                # The client hung up before the upstream connection was made.
                pipe.up.shut = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            return
        d = pipe.down if sock is pipe.client else pipe.up
        now = time.monotonic()
        while d.due(now):
            at, data = d.chunks[0]
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(pipe)
                return
            if d is pipe.up:
                self.stats.bytes_to_upstream += sent
                if pipe.watch is not None and pipe.watch.client_sent(sent):
                    # The doomed publish is with the broker: its answer may come.
                    pipe.answer_by = now + self.answer_patience
            else:
                self.stats.bytes_to_client += sent
            d.buffered -= sent
            if sent < len(data):
                d.chunks[0] = (at, data[sent:])
                return
            d.chunks.popleft()
        if d.eof and not d.chunks and not d.shut:
            d.shut = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    def _on_readable(self, pipe: Pipe, sock: socket.socket) -> None:
        d = pipe.up if sock is pipe.client else pipe.down
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pipe)
            return
        if not data:
            d.eof = True
            if not d.chunks and pipe.connected and not d.shut:
                d.shut = True
                with contextlib.suppress(OSError):
                    d.dst.shutdown(socket.SHUT_WR)
            return
        if pipe.watch is not None:
            data = self._watched(pipe, d, data)
            if not data:
                return
        d.chunks.append((time.monotonic() + self._delay, data))
        d.buffered += len(data)

    def _watched(self, pipe: Pipe, d: Direction, data: bytes) -> bytes:
        """What of ``data`` to pass on once the protocol watcher has seen it."""
        watch = pipe.watch
        assert watch is not None
        if d is pipe.up:
            confirmed = watch.confirmed
            data, count = watch.client_data(data)
            self.stats.publishes += count
            self.stats.confirmed_publishes += watch.confirmed - confirmed
        else:
            data, cut = watch.broker_data(data)
            if cut:
                self._lose_confirm(pipe, answered=True)
        if watch.session.error and not pipe.error_counted:
            pipe.error_counted = True
            self.stats.protocol_errors += 1
        return data

    def _reap(self) -> None:
        for pipe in list(self._pipes):
            if pipe.finished():
                self._drop(pipe, reset=False)

    def _drop(self, pipe: Pipe, reset: bool = True) -> None:
        assert self._sel is not None
        if pipe not in self._pipes:
            return
        self._pipes.remove(pipe)
        self._connect_deadline.pop(pipe.upstream, None)
        for sock in pipe.sockets():
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            if reset:
                reset_socket(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        self.stats.live = len(self._pipes)

    def _cut_all(self) -> int:
        count = len(self._pipes)
        for pipe in list(self._pipes):
            self._drop(pipe)
        self.stats.cut += count
        return count

    def _shutdown(self) -> None:
        self._running = False

    def _close_everything(self) -> None:
        for pipe in list(self._pipes):
            self._drop(pipe)
        if self._listener is not None:
            if self._sel is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(self._listener)
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._placeholder is not None:
            with contextlib.suppress(OSError):
                self._placeholder.close()
        if self._sel is not None:
            with contextlib.suppress(Exception):
                self._sel.close()

