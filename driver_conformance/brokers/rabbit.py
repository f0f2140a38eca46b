"""RabbitMQ for the ``rabbit`` lane: is it there, what did this run leave on it, delete that.

The broker is shared with other users, so nothing here is broker-wide:

* reachability is one AMQP 0-9-1 protocol header sent to the port (a TCP
  connect alone would accept a half-started node);
* listing uses ``rabbitmqctl`` (the management HTTP API may not be enabled),
  only for a broker on this machine, and only reads;
* deletion is by exact name over a fresh AMQP connection, and only of names
  that start with the run's prefix or that the run's drivers are known to
  have declared (their ``reply_<uuid>`` queues);
* connections are never closed here: the kit's own go through its fault
  proxy and end when the proxy stops.  :func:`own_connections` only lets a
  test check that none survived.

``rabbitmqctl`` costs about half a second a call, so the listings a cleanup
needs run concurrently.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from driver_conformance.stored import StoredView

#: The AMQP 0-9-1 protocol header a client opens with.
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def amqp_unreachable_reason(host: str, port: int, timeout: float = 3.0) -> str | None:
    """Why ``host:port`` is not an AMQP 0-9-1 broker ready for clients, or None if it is.

    A ready broker answers the protocol header with a ``connection.start``
    method frame (frame type 1); a node still booting accepts TCP but closes
    or stays silent.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(AMQP_HEADER)
            sock.settimeout(timeout)
            first = sock.recv(7)
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    if not first:
        return f"{host}:{port}: closed the connection without answering AMQP"
    if first[:1] != b"\x01":
        return f"{host}:{port}: does not speak AMQP 0-9-1 (answered {first[:8]!r})"
    return None


@dataclasses.dataclass
class Connection:
    """One broker connection as ``rabbitmqctl list_connections`` shows it."""

    pid: str
    name: str
    connection_name: str


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, read from ``/proc`` (none where there is no /proc).

    su puts the shell it starts in a process group of its own, so neither killing
    the group nor the child reaches the Erlang VM underneath.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class RabbitCtlUnavailable(RuntimeError):
    """``rabbitmqctl`` cannot list this broker (not local, not installed, not permitted)."""


class RabbitCtl:
    """Read-only listings of one virtual host through ``rabbitmqctl``."""

    def __init__(self, vhost: str = "/", timeout: float = 20.0,
                 executable: str = "rabbitmqctl") -> None:
        self.vhost = vhost or "/"
        self.timeout = timeout
        self.executable = executable

    @classmethod
    def for_host(cls, host: str, vhost: str = "/") -> RabbitCtl:
        """A lister for ``host``, or :class:`RabbitCtlUnavailable` saying why not.

        ``rabbitmqctl`` talks to the node on this machine, so for any other
        host its answer would describe the wrong broker.
        """
        if host not in LOOPBACK_HOSTS:
            raise RabbitCtlUnavailable(f"the broker {host} is not on this machine")
        if shutil.which("rabbitmqctl") is None:
            raise RabbitCtlUnavailable("rabbitmqctl is not installed")
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise RabbitCtlUnavailable("rabbitmqctl needs root (the node's Erlang cookie)")
        return cls(vhost)

    def _json(self, *args: str) -> list[dict[str, Any]]:
        # rabbitmqctl run as root re-executes itself through su as the broker's user, and
        # the Erlang VM doing the work is a grandchild: on a timeout every process below
        # goes, or that VM would outlive the run, holding a connection to the node.
        try:
            proc = subprocess.Popen(
                [self.executable, *args, "--formatter", "json", "-q"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            raise RabbitCtlUnavailable(f"rabbitmqctl {args[0]}: {exc}") from None
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *_descendants(proc.pid)]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            proc.communicate()
            raise RabbitCtlUnavailable(
                f"rabbitmqctl {args[0]}: no answer within {self.timeout:g}s") from None
        out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if out.returncode != 0:
            detail = (out.stderr or out.stdout).strip().splitlines()
            raise RabbitCtlUnavailable(
                f"rabbitmqctl {args[0]} exited {out.returncode}: "
                f"{detail[-1] if detail else 'no output'}")
        text = out.stdout.strip()
        return json.loads(text) if text else []

    def queues(self) -> list[str]:
        return [row["name"] for row in self._json("list_queues", "-p", self.vhost, "name")]

    def exchanges(self) -> list[str]:
        return [row["name"] for row in self._json("list_exchanges", "-p", self.vhost, "name")]

    def connections(self) -> list[Connection]:
        rows = self._json("list_connections", "pid", "name", "client_properties", "vhost")
        found = []
        for row in rows:
            if row.get("vhost", self.vhost) != self.vhost:
                continue
            props = {p[0]: p[2] for p in row.get("client_properties", []) if len(p) == 3}
            found.append(Connection(pid=str(row.get("pid", "")), name=str(row.get("name", "")),
                                    connection_name=str(props.get("connection_name", ""))))
        return found

    def snapshot(self) -> tuple[list[str], list[str], list[Connection]]:
        """Queues, exchanges and connections, listed concurrently (about 1 s, not 3)."""
        with concurrent.futures.ThreadPoolExecutor(3, "conformance-rabbitmqctl") as pool:
            q = pool.submit(self.queues)
            x = pool.submit(self.exchanges)
            c = pool.submit(self.connections)
            return q.result(), x.result(), c.result()


def own_connections(connections: Iterable[Connection], pid: int | None = None) -> list[Connection]:
    """Connections opened by oslo.messaging's rabbit driver in process ``pid`` (default: this one).

    The driver names each connection ``<argv0>:<pid>:<uuid>``.
    """
    marker = f":{os.getpid() if pid is None else pid}:"
    return [c for c in connections if marker in c.connection_name]


def is_run_name(name: str, prefix: str, extra: Iterable[str] = ()) -> bool:
    """Whether ``name`` was declared by the run with ``prefix`` (or is one of ``extra``).

    The kit's names are ``<prefix>-<kind>-<uuid>`` (and ``<prefix>-default``);
    matching the dash too keeps worker ``gw1`` off worker ``gw10``'s names.
    """
    return name.startswith(f"{prefix}-") or name in set(extra)


@dataclasses.dataclass
class CleanupResult:
    """What a cleanup deleted and what it could not see or delete (for the run's facts)."""

    queues: list[str] = dataclasses.field(default_factory=list)
    exchanges: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    listed: bool = False
    prefix: str = ""
    #: Every ``reply_<uuid>`` queue the run's drivers named (deleted if they existed).
    reply_queues: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        text = f"deleted {len(self.queues)} queues, {len(self.exchanges)} exchanges"
        if not self.listed:
            text += " (broker not listable: only names known to the run)"
        if self.problems:
            text += "; problems: " + "; ".join(self.problems[:3])
        return text


def delete_by_name(host: str, port: int, *, userid: str, password: str, vhost: str,
                   queues: Iterable[str], exchanges: Iterable[str],
                   timeout: float = 5.0) -> list[str]:
    """Delete exactly these queues and exchanges; returns the problems met (never raises).

    Deleting a name that no longer exists is not an error in RabbitMQ 3.x, so
    a name listed just before another client removed it costs nothing.
    """
    import amqp

    problems: list[str] = []
    conn = amqp.Connection(f"{host}:{port}", userid=userid, password=password,
                           virtual_host=vhost or "/", connect_timeout=timeout,
                           read_timeout=timeout, write_timeout=timeout,
                           client_properties={"connection_name": "driver-conformance-cleanup"})
    try:
        conn.connect()
    except Exception as exc:
        return [f"cleanup connection to {host}:{port}: {exc}"]
    try:
        channel = conn.channel()
        for name in queues:
            try:
                channel.queue_delete(name)
            except Exception as exc:
                problems.append(f"queue {name}: {exc}")
                channel = conn.channel()
        for name in exchanges:
            try:
                channel.exchange_delete(name)
            except Exception as exc:
                problems.append(f"exchange {name}: {exc}")
                channel = conn.channel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return problems


class RabbitStoredView(StoredView):
    """Notifications as RabbitMQ stores them, read over a connection of its own.

    The rabbit driver stores a notification for ``(exchange, "<topic>.<priority>")``
    in the durable queue of that name, which it declares bound to the exchange
    when it publishes.  The view consumes from that queue with auto-ack, so what
    it reads is taken off the broker (the queue itself goes with the run's
    cleanup), and closes its connection before returning.  It connects to the
    broker directly, not through the kit's proxy, so the faults a scenario
    injects do not reach it.
    """

    def __init__(self, *, host: str, port: int, userid: str, password: str,
                 vhost: str) -> None:
        self._address = f"{host}:{port}"
        self._login = {"userid": userid, "password": password, "virtual_host": vhost or "/"}

    def stored_notifications(self, exchange: str, topic: str, *, timeout: float
                             ) -> list[bytes]:
        import amqp

        bodies: list[bytes] = []
        deadline = time.monotonic() + timeout
        conn = amqp.Connection(self._address, connect_timeout=3, read_timeout=3,
                               write_timeout=3, **self._login,
                               client_properties={"connection_name":
                                                  "driver-conformance-stored-view"})
        conn.connect()
        try:
            channel = conn.channel()
            try:
                channel.basic_consume(queue=topic, no_ack=True, callback=lambda m: bodies.append(
                    m.body if isinstance(m.body, bytes) else str(m.body).encode()))
            except amqp.exceptions.NotFound:
                return []  # the driver declared no queue: nothing was stored
            while not bodies and (remaining := deadline - time.monotonic()) > 0:
                with contextlib.suppress(socket.timeout):
                    conn.drain_events(timeout=min(remaining, 0.5))
            return bodies
        finally:
            with contextlib.suppress(Exception):
                conn.close()


class ReplyQueueTracker:
    """Records the ``reply_<uuid>`` queue names the run's drivers choose.

    Reply queues carry no run prefix, so cleanup can only find the run's own
    by remembering them.  The rabbit driver picks the name in
    ``_get_reply_queue_name()``; wrapping that method on each instance the
    run builds observes the name without changing it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: set[str] = set()

    def watch(self, driver: Any) -> Any:
        original: Callable[[], str] | None = getattr(driver, "_get_reply_queue_name", None)
        if original is None:
            return driver

        def named() -> str:
            name = original()
            with self._lock:
                self.names.add(name)
            return name

        driver._get_reply_queue_name = named
        return driver

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self.names)


#: Every cleanup this process ran, newest last (the kit's own tests inspect them).
CLEANUPS: list[CleanupResult] = []


class RabbitJanitor:
    """Deletes what a run declared on a RabbitMQ broker (see :mod:`.janitor`).

    It lists the broker's queues and exchanges with ``rabbitmqctl`` when the
    broker is on this machine, and deletes those under the run's prefix plus
    the reply queues the run's drivers named; where it cannot list, it
    deletes the names the run knows (the default exchange, the reply queues)
    and says so.
    """

    cleans = True

    def __init__(self, url: str, prefix: str) -> None:
        from oslo_config import cfg

        from driver_conformance.urls import parse_url

        transport_url = parse_url(cfg.ConfigOpts(), url)
        host = transport_url.hosts[0]
        self.broker = {
            "host": host.hostname or "127.0.0.1", "port": host.port or 5672,
            "userid": host.username or "guest", "password": host.password or "guest",
            "vhost": transport_url.virtual_host or "/",
        }
        self.prefix = prefix
        self.replies = ReplyQueueTracker()
        self.description = (f"queues and exchanges named {prefix}-*, and the run's reply "
                            f"queues, deleted from {self.broker['host']}:"
                            f"{self.broker['port']} when the run ends")
        self.result: CleanupResult | None = None

    def watch(self, driver: Any) -> Any:
        return self.replies.watch(driver)

    def clean(self) -> str:
        """Delete what the run declared; never raises (it runs at the end of every run)."""
        broker, prefix = self.broker, self.prefix
        result = CleanupResult(prefix=prefix)
        replies = self.replies.snapshot()
        queues: list[str] = sorted(replies)
        exchanges: list[str] = [f"{prefix}-default"]
        try:
            ctl = RabbitCtl.for_host(broker["host"], broker["vhost"])
            listed_q, listed_x, _ = ctl.snapshot()
            result.listed = True
            queues = sorted(n for n in listed_q if is_run_name(n, prefix, replies))
            exchanges = sorted(n for n in listed_x if is_run_name(n, prefix))
        except RabbitCtlUnavailable as exc:
            result.problems.append(f"not listed: {exc}")
        except Exception as exc:  # an unreadable listing must not fail the run's end
            result.problems.append(f"not listed: {type(exc).__name__}: {exc}")
        try:
            result.problems += delete_by_name(
                broker["host"], broker["port"], userid=broker["userid"],
                password=broker["password"], vhost=broker["vhost"],
                queues=queues, exchanges=exchanges)
        except Exception as exc:
            result.problems.append(f"delete: {type(exc).__name__}: {exc}")
        result.queues, result.exchanges = queues, exchanges
        result.reply_queues = sorted(replies)
        self.result = result
        CLEANUPS.append(result)
        return result.summary()
