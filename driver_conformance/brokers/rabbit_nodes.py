"""What one node of the kit's private RabbitMQ cluster is, and what it needs to run.

The installation (Debian's real scripts in ``/usr/lib/rabbitmq/bin``, not the
``/usr/sbin`` wrappers that switch to the ``rabbitmq`` user and its HOME, where
the machine node's Erlang cookie lives; and Erlang's ``erl_call``), free
loopback ports, the AMQP readiness probe, and :class:`Node`.  The cluster
itself is :mod:`driver_conformance.brokers.rabbit_cluster`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
from pathlib import Path

_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"

#: Where Debian (and the generic Unix packages) keep the real scripts; ``/usr/sbin``'s
#: are wrappers that switch to the ``rabbitmq`` user and its HOME (the machine's cookie).
RABBITMQ_BIN_DIRS = ("/usr/lib/rabbitmq/bin",)
#: Environment variable naming a directory with ``rabbitmq-server`` and ``rabbitmqctl``.
BIN_ENV = "DRIVER_CONFORMANCE_RABBITMQ_BIN"
#: The erl argument that marks a kit node on its command line (``pgrep -f dc-n1``).
MARKER = "-driver_conformance_node"
#: ``rabbitmqctl`` listens on one port of this range while it runs (RabbitMQ's default).
CTL_PORT_RANGE = range(35672, 35683)

class ClusterUnavailable(RuntimeError):
    """The cluster cannot be had here: not installed, or a node did not boot (one line)."""


class ClusterError(RuntimeError):
    """A cluster operation failed (a ``rabbitmqctl`` call, a node that does not come back)."""


@dataclasses.dataclass(frozen=True)
class Installation:
    """The RabbitMQ scripts a cluster is run with, and Erlang's ``erl_call``."""

    server: str
    ctl: str
    #: Erlang's C client: evaluates one expression on a node in about 20 ms, where
    #: each ``rabbitmqctl`` call boots an Erlang VM and Elixir (2-3 s here).
    erl_call: str

    @classmethod
    def find(cls) -> Installation:
        """The installed scripts, or :class:`ClusterUnavailable` saying what is missing."""
        explicit = os.environ.get(BIN_ENV)
        dirs = [explicit] if explicit else list(RABBITMQ_BIN_DIRS)
        found: tuple[str, str] | None = None
        for directory in dirs:
            server = Path(directory, "rabbitmq-server")
            ctl = Path(directory, "rabbitmqctl")
            if os.access(server, os.X_OK) and os.access(ctl, os.X_OK):
                found = (str(server), str(ctl))
                break
        if found is None and explicit:
            raise ClusterUnavailable(f"{BIN_ENV}={explicit} holds no executable "
                                     "rabbitmq-server and rabbitmqctl")
        if found is None:
            on_path = shutil.which("rabbitmq-server")
            ctl_on_path = shutil.which("rabbitmqctl")
            if on_path is None:
                raise ClusterUnavailable("rabbitmq-server is not installed "
                                         "(apt-get install rabbitmq-server)")
            if ctl_on_path is None or "/sbin/" in on_path:
                raise ClusterUnavailable(f"found only the {on_path} wrapper, not RabbitMQ's "
                                         f"own scripts; set {BIN_ENV} to their directory")
            found = (on_path, ctl_on_path)
        erl_call = find_erl_call()
        if erl_call is None:
            raise ClusterUnavailable("Erlang's erl_call is not installed (erlang-base)")
        return cls(found[0], found[1], erl_call)


def find_erl_call() -> str | None:
    """Erlang's ``erl_call`` (in the ERTS or erl_interface directory), or None."""
    roots = [Path("/usr/lib/erlang")]
    erl = shutil.which("erl")
    if erl:
        roots.append(Path(os.path.realpath(erl)).parent.parent)
    for root in roots:
        for pattern in ("erts-*/bin/erl_call", "lib/erl_interface-*/bin/erl_call"):
            for candidate in sorted(root.glob(pattern), reverse=True):
                if os.access(candidate, os.X_OK):
                    return str(candidate)
    return shutil.which("erl_call")


def unavailable_reason() -> str | None:
    """Why no cluster can be started here (one line), or None when one can."""
    try:
        Installation.find()
    except ClusterUnavailable as exc:
        return str(exc)
    return None


def amqp_ready(port: int, timeout: float = 2.0) -> bool:
    """Whether 127.0.0.1:``port`` answers the AMQP 0-9-1 header with ``connection.start``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(_AMQP_HEADER)
            sock.settimeout(timeout)
            return sock.recv(7)[:1] == b"\x01"
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nothing listens on now, outside ``rabbitmqctl``'s.

    All are bound at the same time before any is released, so they differ
    from each other; another process could still take one before the node
    binds it, which makes that node fail to boot with the port named.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            held.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in CTL_PORT_RANGE:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


@dataclasses.dataclass
class Node:
    """One node of the cluster; ``index`` is its 0-based place in the transport URL."""

    index: int
    name: str
    amqp_port: int
    dist_port: int
    dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        """``n1``, ``n2``, ... as people count them."""
        return f"n{self.index + 1}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 4) -> str:
        """The last lines of the node's logs, for a one-line error."""
        text: list[str] = []
        for path in [self.dir / "console.log", *sorted((self.dir / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                text += [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                         if ln.strip()]
        interesting = [ln for ln in text if "[error]" in ln or "error" in ln.lower()]
        return " | ".join((interesting or text)[-lines:])[-600:]
