"""A loopback TCP proxy that breaks the kit's own connections to a real broker, on demand.

Retry, no-duplication and failover clauses can only be observed while the
network misbehaves.  On a shared broker the kit may not stop the broker or
close anyone else's connections, so every connection a driver under test
makes goes through one of these proxies instead (the adapter rewrites the
transport URL to point at it), and the faults act on the proxy alone:

* **cut** -- every live connection is reset on both sides, once;
* **refuse** -- new connections are refused (``ECONNREFUSED``, as from a
  host where the broker is down); with live ones cut, this is an *outage*.
  The listening socket is closed for it, and a bound socket that does not
  listen holds the port meanwhile, so that no other socket of the machine
  can take the port before the proxy listens on it again;
* **freeze** -- nothing is read or written any more, in either direction,
  and nothing is closed: a silent partition that only heartbeats or
  timeouts can detect;
* **delay** -- every chunk is held for a fixed time before it is passed on.

The lanes run their proxies in a child process (:class:`ProxyProcess`,
driven over its stdin and stdout), so that the proxy's own sockets and
threads are never mistaken for the driver's (``driver.cleanup.releases-
resources`` counts the sockets the kit's process holds) and the proxy does
not wait for the GIL of the process whose driver it is breaking.

In the proxy, one thread runs a :mod:`selectors` loop over every socket.  Control calls
from other threads are queued to it and wait (bounded) until the loop has
applied them, so that when :meth:`FaultProxy.cut` returns the connections
are really gone.  Everything is bounded: the number of connections, the
bytes buffered per direction (reading stops when a buffer is full, which
pushes back on the sender the way a slow network does), every wait for the
loop, and the time :meth:`FaultProxy.stop` takes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import queue
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from driver_conformance import faults

#: Bytes read from a socket at a time.
CHUNK = 64 * 1024
#: How long a control call waits for the loop to apply it.
CONTROL_TIMEOUT = 5.0


class ProxyError(RuntimeError):
    """The proxy could not start, or its loop did not answer a control call in time."""


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

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset, so the peer learns at once and nothing lingers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Direction:
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


class _Pipe:
    """One proxied connection: the client's socket, the upstream socket, two directions."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.up = _Direction(client, upstream)
        self.down = _Direction(upstream, client)

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        return self.client, self.upstream

    def finished(self) -> bool:
        return all(d.eof and not d.chunks for d in (self.up, self.down))


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
    ) -> None:
        if listen_host not in ("127.0.0.1", "::1", "localhost"):
            # The proxy exists to break the kit's own connections; it must never
            # be reachable by anyone else.
            raise ValueError(f"the fault proxy listens on loopback only, not {listen_host!r}")
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
        self._pipes: list[_Pipe] = []
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

    def heal(self) -> None:
        """End every fault: accept again, unfreeze, no delay, release held bytes now."""
        def apply() -> None:
            self._set_refusing(False)
            self._frozen = False
            self._delay = 0.0
            now = time.monotonic()
            for pipe in self._pipes:
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
            for pipe in self._pipes:
                for d in (pipe.up, pipe.down):
                    at = d.next_due()
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
                _reset(client)
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
                _reset(client)
                upstream.close()
                continue
            pipe = _Pipe(client, upstream)
            pipe.connected = err == 0
            if not pipe.connected:
                self._connect_deadline[upstream] = time.monotonic() + self.connect_timeout
            self._pipes.append(pipe)
            self.stats.live = len(self._pipes)

    def _expire_connects(self) -> None:
        now = time.monotonic()
        for pipe in list(self._pipes):
            at = self._connect_deadline.get(pipe.upstream)
            if at is not None and at <= now:
                self.stats.upstream_failures += 1
                self._drop(pipe)

    def _on_writable(self, pipe: _Pipe, sock: socket.socket) -> None:
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

    def _on_readable(self, pipe: _Pipe, sock: socket.socket) -> None:
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
        d.chunks.append((time.monotonic() + self._delay, data))
        d.buffered += len(data)

    def _reap(self) -> None:
        for pipe in list(self._pipes):
            if pipe.finished():
                self._drop(pipe, reset=False)

    def _drop(self, pipe: _Pipe, reset: bool = True) -> None:
        assert self._sel is not None
        if pipe not in self._pipes:
            return
        self._pipes.remove(pipe)
        self._connect_deadline.pop(pipe.upstream, None)
        for sock in pipe.sockets():
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            if reset:
                _reset(sock)
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


class ProxyFaults(faults.FaultInjector):
    """The kit's :class:`~driver_conformance.faults.FaultInjector` over one or more proxies.

    A multi-host transport URL gets one proxy per host; every fault applies to
    all of them, so an outage is an outage of the whole cluster as the driver
    sees it.  A lost confirmation cannot be produced by a proxy (it would have
    to understand the protocol), so :data:`~driver_conformance.faults.LOST_CONFIRM`
    is not declared.
    """

    kinds: ClassVar[frozenset[str]] = frozenset(
        {faults.OUTAGE, faults.CUT, faults.FREEZE, faults.DELAY})

    def __init__(self, proxies: list[Any]) -> None:
        # FaultProxy objects, or RemoteProxy objects of a ProxyProcess.
        self.proxies = proxies

    def start_outage(self) -> None:
        for proxy in self.proxies:
            proxy.outage()

    def cut_connections(self) -> None:
        for proxy in self.proxies:
            proxy.cut()

    def freeze(self) -> None:
        for proxy in self.proxies:
            proxy.freeze(True)

    def delay(self, seconds: float) -> None:
        for proxy in self.proxies:
            proxy.set_delay(seconds)

    def heal(self) -> None:
        for proxy in self.proxies:
            with contextlib.suppress(ProxyError):
                proxy.heal()

    @property
    def stats(self) -> dict[str, int]:
        """Counters summed over every proxy (for evidence in findings)."""
        total: collections.Counter[str] = collections.Counter()
        for proxy in self.proxies:
            total.update(proxy.stats.as_dict())
        return dict(total)


# -- the proxy in its own process ---------------------------------------------------------
#
# The drivers' own behaviour is judged partly by what they leave open in the
# kit's process (``driver.cleanup.releases-resources`` counts its sockets), and
# a proxy thread in that process would be counted with them: the proxy closes
# its side of a connection only after it has seen the driver close its own.
# It also competes for the GIL with the scenario it is breaking.  So the lanes
# run the proxies in a child process, driven over its stdin/stdout, one JSON
# line per command and per answer.


class ProxyProcess:
    """A child process running one :class:`FaultProxy` per upstream; see :class:`RemoteProxy`.

    The child exits when its stdin closes, so it cannot outlive the kit's
    process; :meth:`stop` ends it by its PID if it does not exit when asked.
    """

    def __init__(self, upstreams: list[tuple[str, int]], name: str = "fault-proxy",
                 start_timeout: float = 10.0) -> None:
        self.upstreams = upstreams
        self.name = name
        self.start_timeout = start_timeout
        self.process: Any = None
        self.ports: list[int] = []
        self._lock = threading.Lock()

    def start(self) -> ProxyProcess:
        import json
        import subprocess
        import sys

        args = [sys.executable, "-m", "driver_conformance.proxy", "--name", self.name]
        for host, port in self.upstreams:
            args += ["--upstream", f"{host}:{port}"]
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, bufsize=1)
        hello = self._read(self.start_timeout)
        if hello is None or "ports" not in hello:
            self.stop()
            raise ProxyError(f"{self.name}: the proxy process did not start "
                             f"({json.dumps(hello) if hello else 'no answer'})")
        self.ports = list(hello["ports"])
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _read(self, timeout: float) -> dict[str, Any] | None:
        import json
        import select

        stdout = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            return None
        line = stdout.readline()
        return json.loads(line) if line else None

    def call(self, op: str, *args: Any, index: int | None = None,
             timeout: float = CONTROL_TIMEOUT) -> Any:
        """Run ``op`` on the proxy ``index`` (or all of them) in the child; its result."""
        import json

        with self._lock:
            if self.process is None or self.process.poll() is not None:
                raise ProxyError(f"{self.name}: the proxy process is not running")
            try:
                self.process.stdin.write(json.dumps(
                    {"op": op, "args": list(args), "index": index}) + "\n")
                self.process.stdin.flush()
            except OSError as exc:
                raise ProxyError(f"{self.name}: cannot reach the proxy process: {exc}") from None
            answer = self._read(timeout)
        if answer is None:
            raise ProxyError(f"{self.name}: no answer to {op!r} within {timeout}s")
        if not answer.get("ok"):
            raise ProxyError(f"{self.name}: {op} failed: {answer.get('error')}")
        return answer.get("result")

    def stop(self, timeout: float = CONTROL_TIMEOUT) -> None:
        import os
        import signal
        import subprocess

        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProxyError):
            self.call("stop", timeout=timeout)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        with contextlib.suppress(OSError):
            proc.stdout.close()

    def proxies(self) -> list[RemoteProxy]:
        return [RemoteProxy(self, i) for i in range(len(self.ports))]


class RemoteProxy:
    """One proxy of a :class:`ProxyProcess`, with :class:`FaultProxy`'s fault methods."""

    def __init__(self, process: ProxyProcess, index: int) -> None:
        self.process = process
        self.index = index
        self.address = ("127.0.0.1", process.ports[index])

    @property
    def port(self) -> int:
        return self.address[1]

    def _call(self, op: str, *args: Any) -> Any:
        return self.process.call(op, *args, index=self.index)

    def cut(self) -> int:
        return self._call("cut")

    def refuse(self, refusing: bool = True) -> None:
        self._call("refuse", refusing)

    def outage(self) -> int:
        return self._call("outage")

    def freeze(self, frozen: bool = True) -> None:
        self._call("freeze", frozen)

    def set_delay(self, seconds: float) -> None:
        self._call("set_delay", seconds)

    def heal(self) -> None:
        self._call("heal")

    def barrier(self) -> None:
        self._call("barrier")

    @property
    def stats(self) -> ProxyStats:
        return ProxyStats(**self._call("stats"))

    @property
    def live_connections(self) -> int:
        return self.stats.live


_OPS = {"cut", "refuse", "outage", "freeze", "set_delay", "heal", "barrier", "stats"}


def serve(upstreams: list[tuple[str, int]], name: str) -> int:
    """The child's side of :class:`ProxyProcess`: proxies, then commands until stdin closes."""
    import json
    import sys

    proxies = [FaultProxy(u, name=f"{name}-{i}").start() for i, u in enumerate(upstreams)]

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ports": [p.port for p in proxies]})
    try:
        for line in sys.stdin:
            try:
                command = json.loads(line)
                op = command["op"]
                if op == "stop":
                    answer({"ok": True, "result": None})
                    break
                if op not in _OPS:
                    raise ValueError(f"unknown operation {op!r}")
                index = command.get("index")
                targets = proxies if index is None else [proxies[index]]
                results = []
                for proxy in targets:
                    if op == "stats":
                        results.append(proxy.stats.as_dict())
                    else:
                        results.append(getattr(proxy, op)(*command.get("args", [])))
                answer({"ok": True, "result": results[0] if index is not None else results})
            except Exception as exc:  # reported to the parent, which raises ProxyError
                answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        for proxy in proxies:
            proxy.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m driver_conformance.proxy",
                                     description="loopback fault proxies driven over stdin")
    parser.add_argument("--upstream", action="append", required=True, metavar="HOST:PORT")
    parser.add_argument("--name", default="fault-proxy")
    args = parser.parse_args(argv)
    upstreams = []
    for item in args.upstream:
        host, _, port = item.rpartition(":")
        upstreams.append((host.strip("[]"), int(port)))
    return serve(upstreams, args.name)


@contextlib.contextmanager
def proxies_for(hosts: list[tuple[str, int]], name: str = "fault-proxy", *,
                out_of_process: bool = True) -> Iterator[list[Any]]:
    """One started proxy per ``(host, port)``, all stopped when the block ends.

    By default they run in a child process (see :class:`ProxyProcess`); the
    in-process variant is for tests of the proxy itself.
    """
    if out_of_process:
        process = ProxyProcess(hosts, name=name).start()
        try:
            yield process.proxies()
        finally:
            process.stop()
        return
    started: list[FaultProxy] = []
    try:
        for i, (host, port) in enumerate(hosts):
            started.append(FaultProxy((host, port), name=f"{name}-{i}").start())
        yield started
    finally:
        for proxy in reversed(started):
            proxy.stop()


if __name__ == "__main__":
    raise SystemExit(main())
