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
import socket
import subprocess
from collections.abc import Iterable
from typing import Any

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
        try:
            out = subprocess.run(
                [self.executable, *args, "--formatter", "json", "-q"],
                capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RabbitCtlUnavailable(f"rabbitmqctl {args[0]}: {exc}") from None
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
