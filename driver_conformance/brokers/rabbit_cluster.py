"""A private RabbitMQ cluster on this machine, for the ``rabbit-cluster`` lanes.

Failover clauses ("in the case of failover, the driver must restore the
subscription(s)") can only be seen when a node of a clustered backend really
goes away.  The machine's own RabbitMQ (``rabbit@localhost`` on 5672) is
shared and must never be stopped, joined or reconfigured, so this module
starts a cluster of its own, next to it, from the same installation:

* **Names and ports**: nodes ``dc-n1-<token>@localhost`` ... (the token is
  random per cluster, so xdist workers and other users' runs never meet), each
  with its own AMQP port and Erlang distribution port, chosen free on
  127.0.0.1 and outside the range ``rabbitmqctl`` takes its own ports from.
* **Loopback only**: AMQP listeners on 127.0.0.1, distribution bound to
  127.0.0.1 (``inet_dist_use_interface``), ``ERL_EPMD_ADDRESS=127.0.0.1``.  The
  nodes register with the machine's epmd like any Erlang node (distinct names,
  so that is harmless); if no epmd runs, the first node starts one, and epmd,
  a daemon shared by every Erlang node of the machine, is left running.
* **Nothing of the machine's node is read or written**: Debian's
  ``/usr/sbin`` wrappers ``su`` to the ``rabbitmq`` user, whose HOME holds the
  machine node's Erlang cookie, so the real scripts in
  ``/usr/lib/rabbitmq/bin`` are run instead, with a private HOME holding a
  private cookie (a file, not ``-setcookie``, so the cookie never shows in
  ``ps``), a private ``rabbitmq-env.conf`` (the machine's sets
  ``NODENAME=rabbit@localhost``), config file, enabled-plugins file (no
  plugins: no management port), mnesia and log directories, all under one
  temporary directory.  ``rabbitmqctl`` gets the same HOME and env file.
* **Clustering at boot**: node 1 boots first; then nodes 2 and 3 boot
  together, naming node 1 in classic-config peer discovery, so they join it
  while booting instead of booting, then ``stop_app``/``join_cluster``/
  ``start_app`` each (about 12 s more here, ``rabbitmqctl`` being slow).
  Booting all three at once was no faster on two cores (boot is CPU-bound)
  and raced: a node joining node 1 while node 1 still enabled the feature
  flags of its fresh database failed with ``schema_integrity_check_failed``
  (2 boots in 8 under load).  Membership is then checked once; a node that
  booted alone anyway is joined the ``rabbitmqctl`` way.
* **Readiness** is the AMQP 0-9-1 protocol header answered with
  ``connection.start`` (as ``.ci/run`` does), polled with a bound; a node
  whose process exits meanwhile fails at once, with its log's last lines.

Nodes never outlive the run:

* :meth:`RabbitCluster.stop` (the context manager's exit, an ``atexit`` hook
  for a cluster still running at interpreter exit, and pytest's unwinding on
  Ctrl-C) terminates every node's process group, kills what is left after a
  bound, and removes the directory;
* a **watchdog** process (:mod:`driver_conformance.brokers.watchdog`, in its
  own session) is told every node's process group as it starts; when the owning
  process dies without saying goodbye -- SIGKILL, SIGTERM (Python runs no
  cleanup on it), a crash -- the watchdog's stdin reaches end-of-file and it
  kills the nodes it was told about (checking first that each process group
  is still that node, so a reused PID is never signalled) and removes the
  directory;
* only if the watchdog itself is SIGKILLed as well (``kill -9`` of both,
  the OOM killer) do nodes survive; ``python -m
  driver_conformance.brokers.rabbit_cluster --reap`` then finds them by the
  marker every node carries on its command line and removes them.

The cluster's lifecycle costs on this machine (2 cores shared with other
work) are measured in :attr:`RabbitCluster.timings`.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from driver_conformance.brokers import watchdog
from driver_conformance.brokers.rabbit_nodes import (
    BIN_ENV,
    CTL_PORT_RANGE,
    MARKER,
    ClusterError,
    ClusterUnavailable,
    Installation,
    Node,
    amqp_ready,
    free_ports,
    unavailable_reason,
)

__all__ = [
    "BIN_ENV", "BOOT_TIMEOUT", "CTL_PORT_RANGE", "MARKER", "STOP_TIMEOUT", "ClusterError",
    "ClusterUnavailable", "Installation", "Node", "RabbitCluster", "amqp_ready", "free_ports",
    "running_cluster", "shared", "sharing", "unavailable_reason",
]

#: How long one node may take to answer AMQP.  Three booting at once on two busy
#: cores took 17-25 s here; a node restarted next to two running ones about 10 s.
BOOT_TIMEOUT = 120.0
#: How long a node may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0
#: The bound of one ``rabbitmqctl`` call (about 1-2 s each here).
CTL_TIMEOUT = 60.0
#: Seconds between two readiness probes of a booting node.
PROBE_INTERVAL = 0.1

_LIVE: weakref.WeakSet[RabbitCluster] = weakref.WeakSet()
_ATEXIT_LOCK = threading.Lock()
_atexit_registered = False


def _stop_at_exit() -> None:
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):
            cluster.stop()


class RabbitCluster:
    """A RabbitMQ cluster of ``size`` nodes on loopback; see the module docstring.

    Use as a context manager, or :meth:`start` / :meth:`stop`.  Node indexes
    are 0-based and follow the order of :attr:`hosts` (and of the URL's hosts).
    """

    def __init__(self, size: int = 3, *, boot_timeout: float = BOOT_TIMEOUT,
                 installation: Installation | None = None,
                 parent_dir: str | None = None) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one node, not {size}")
        self.size = size
        self.boot_timeout = boot_timeout
        self.installation = installation or Installation.find()
        self.token = secrets.token_hex(3)
        self.base = Path(tempfile.mkdtemp(prefix="dc-rabbit-cluster-", dir=parent_dir))
        self.home = self.base / "home"
        self.nodes: list[Node] = []
        #: Seconds each lifecycle step took: ``boot n1`` (the first node answering
        #: AMQP), ``boot`` (all of them), ``cluster`` (membership checked), ``start``
        #: (all of it), ``stop``, and the last ``stop_node`` / ``start_node``.
        self.timings: dict[str, float] = {}
        self._watchdog: watchdog.Watchdog | None = None
        self._lock = threading.RLock()
        self._started = False
        self._stopped = False

    # -- description ---------------------------------------------------------------------
    @property
    def hosts(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.amqp_port) for n in self.nodes]

    def url(self, userinfo: str = "guest:guest", vhost: str = "") -> str:
        """The multi-host transport URL of every node, in index order."""
        return "rabbit://" + ",".join(f"{userinfo}@{h}:{p}" for h, p in self.hosts) \
            + f"/{vhost}"

    def index_of(self, node_name: str) -> int:
        for node in self.nodes:
            if node.name == node_name:
                return node.index
        raise ClusterError(f"{node_name} is not a node of this cluster "
                           f"({', '.join(n.name for n in self.nodes)})")

    def running(self) -> list[int]:
        """Indexes of the nodes whose process runs."""
        return [n.index for n in self.nodes if n.running]

    @property
    def started(self) -> bool:
        return self._started

    @property
    def stopped(self) -> bool:
        return self._stopped

    def describe(self) -> str:
        return ", ".join(f"{n.name} amqp 127.0.0.1:{n.amqp_port} dist {n.dist_port}"
                         for n in self.nodes)

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RabbitCluster:
        """Boot every node at once and check they form one cluster; bounded, cleans up on error."""
        global _atexit_registered
        with self._lock:
            if self._started:
                return self
            self._started = True
        with _ATEXIT_LOCK:
            if not _atexit_registered:
                atexit.register(_stop_at_exit)
                _atexit_registered = True
        _LIVE.add(self)
        began = time.monotonic()
        try:
            self._prepare()
            self._watchdog = watchdog.Watchdog(self.base)
            # Node 1 first: a node that joins it while it still initialises a fresh
            # database (enabling feature flags) fails schema_integrity_check_failed.
            self._spawn(self.nodes[0])
            self._wait_all_ready([0])
            self.timings["boot n1"] = time.monotonic() - began
            for node in self.nodes[1:]:
                self._spawn(node)
            self._wait_all_ready(range(1, self.size))
            self.timings["boot"] = time.monotonic() - began
            checked = time.monotonic()
            self._ensure_clustered()
            self.timings["cluster"] = time.monotonic() - checked
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after a bound) and remove the directory.

        Safe to call more than once and from an ``atexit`` hook.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        began = time.monotonic()
        # No threads: this also runs from atexit, where an executor refuses work.
        # Every node is signalled first, so they stop at the same time.
        for node in self.nodes:
            self._signal(node, graceful=True)
        for node in self.nodes:
            self._reap(node, graceful=True)
        if self._watchdog is not None:
            self._watchdog.close()
        shutil.rmtree(self.base, ignore_errors=True)
        _LIVE.discard(self)
        self.timings["stop"] = time.monotonic() - began

    def stop_node(self, index: int, *, kill: bool = True) -> None:
        """Take node ``index`` away: SIGKILL (a crash, the default) or SIGTERM (a shutdown).

        Returns once its processes are gone (bounded); its data stays, so
        :meth:`start_node` brings the same member back.
        """
        node = self.nodes[index]
        began = time.monotonic()
        self._terminate(node, graceful=not kill)
        self.timings["stop_node"] = time.monotonic() - began

    def start_node(self, index: int, *, timeout: float | None = None) -> None:
        """Start node ``index`` again and wait until it answers AMQP and is back in the cluster."""
        node = self.nodes[index]
        began = time.monotonic()
        with self._lock:
            if self._stopped:
                raise ClusterError("the cluster has been stopped")
            if not node.running:
                self._spawn(node)
        self._wait_all_ready([index], timeout=timeout)
        self.wait_member(index, timeout=timeout)
        self.timings["start_node"] = time.monotonic() - began

    # -- queries ---------------------------------------------------------------------------
    def ctl(self, *args: str, node: int | None = None, timeout: float = CTL_TIMEOUT) -> str:
        """``rabbitmqctl -n <node> ARGS`` (a running node by default); its stdout.

        Raises :class:`ClusterError` (one line) when it fails or exceeds ``timeout``.
        """
        target = self.nodes[self._some_running() if node is None else node]
        argv = [self.installation.ctl, "-n", target.name, *args]
        try:
            out = subprocess.run(argv, env=self._ctl_env(), capture_output=True, text=True,
                                 timeout=timeout, check=False, cwd=self.base)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"rabbitmqctl {args[0]} on {target.name} did not finish "
                               f"within {timeout:.0f}s") from None
        except OSError as exc:
            raise ClusterError(f"rabbitmqctl {args[0]}: {exc}") from None
        if out.returncode != 0:
            lines = [ln for ln in (out.stderr or out.stdout).strip().splitlines() if ln.strip()]
            raise ClusterError(f"rabbitmqctl {args[0]} on {target.name} exited "
                               f"{out.returncode}: {lines[-1] if lines else 'no output'}")
        return out.stdout

    def ctl_json(self, *args: str, node: int | None = None) -> Any:
        text = self.ctl(*args, "--formatter", "json", "-q", node=node).strip()
        return json.loads(text) if text else []

    def rpc(self, expression: str, *, node: int | None = None, timeout: float = 10.0) -> str:
        """Evaluate one Erlang ``expression`` on a node (a running one by default); the result.

        Goes through ``erl_call`` over the node's distribution port on 127.0.0.1,
        with the cluster's private cookie (read from the private HOME).
        """
        target = self.nodes[self._some_running() if node is None else node]
        argv = [self.installation.erl_call, "-address", f"127.0.0.1:{target.dist_port}",
                "-timeout", str(max(1, int(timeout))), "-e"]
        try:
            out = subprocess.run(argv, input=expression.strip() + "\n", env=self._ctl_env(),
                                 capture_output=True, text=True, timeout=timeout + 2,
                                 check=False, cwd=self.base)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"erl_call on {target.name} did not answer within "
                               f"{timeout:.0f}s") from None
        except OSError as exc:
            raise ClusterError(f"erl_call: {exc}") from None
        text = out.stdout.strip()
        # erl_call -e prints {ok, Result} or {error, Reason}.
        match = re.fullmatch(r"\{ok,\s*(.*)\}", text, re.DOTALL)
        if out.returncode != 0 or match is None:
            detail = (text or out.stderr.strip() or "no output").splitlines()[-1]
            raise ClusterError(f"erl_call on {target.name} exited {out.returncode}: {detail}")
        return match.group(1).strip()

    def running_members(self, node: int | None = None) -> list[str]:
        """The nodes the cluster counts as running, as node ``node`` sees it."""
        return re.findall(r"'([^']+@[^']+)'", self.rpc("rabbit_nodes:all_running().",
                                                      node=node))

    def queues(self, vhost: str = "/") -> list[str]:
        """The names of every queue of ``vhost`` (through ``rabbitmqctl``: 2-3 s)."""
        return [row["name"] for row in self.ctl_json("list_queues", "-p", vhost, "name")]

    def exchanges(self, vhost: str = "/") -> list[str]:
        """The names of every exchange of ``vhost`` (through ``rabbitmqctl``)."""
        return [row["name"] for row in self.ctl_json("list_exchanges", "-p", vhost, "name")]

    def queue_leader(self, queue: str, vhost: str = "/") -> int:
        """The index of the node leading quorum queue ``queue`` (its home node, if classic).

        Read from the queue's record (what ``rabbitmqctl list_queues name leader``
        shows): a quorum queue's pid is ``{RaName, LeaderNode}``, a classic
        queue's an Erlang process on its home node.
        """
        if not re.fullmatch(r"[\w.\-:@/]+", queue) or not re.fullmatch(r"[\w.\-/]+", vhost):
            raise ClusterError(f"unexpected characters in queue {queue!r} or vhost {vhost!r}")
        answer = self.rpc(
            f'case rabbit_amqqueue:lookup(rabbit_misc:r(<<"{vhost}">>, queue, <<"{queue}">>)) '
            "of {ok, Q} -> case amqqueue:get_pid(Q) of {_, N} -> N; P -> node(P) end; "
            "E -> E end.")
        match = re.fullmatch(r"'([^']+@[^']+)'", answer)
        if match is None:
            raise ClusterError(f"no leader for queue {queue!r} in vhost {vhost!r}: {answer}")
        return self.index_of(match.group(1))

    def wait_member(self, index: int, timeout: float | None = None) -> None:
        """Wait until node ``index`` sees every running node, itself included, as running."""
        deadline = time.monotonic() + (timeout or self.boot_timeout)
        node = self.nodes[index]
        last = ""
        while True:
            expected = {self.nodes[i].name for i in self.running()}
            try:
                members = set(self.running_members(node=index))
                if expected <= members:
                    return
                last = f"it sees {sorted(members)} running"
            except ClusterError as exc:
                last = str(exc)
            if not node.running:
                raise ClusterError(f"{node.name} exited while rejoining: {node.log_tail()}")
            if time.monotonic() >= deadline:
                raise ClusterError(f"{node.name} did not rejoin the cluster within "
                                   f"{timeout or self.boot_timeout:.0f}s ({last})")
            # Pausing on the process itself: it wakes at once if the node dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                if node.process is not None:
                    node.process.wait(PROBE_INTERVAL)

    # -- internals ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.home.mkdir(mode=0o700)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        cookie.chmod(0o400)
        (self.base / "owner").write_text(f"{os.getpid()}\n")
        (self.base / "rabbitmq-env.conf").write_text(
            "# Empty on purpose: the machine's /etc/rabbitmq/rabbitmq-env.conf names its node.\n")
        ports = free_ports(2 * self.size)
        names = [f"dc-n{i + 1}-{self.token}@localhost" for i in range(self.size)]
        for i in range(self.size):
            node = Node(index=i, name=names[i], amqp_port=ports[i],
                        dist_port=ports[self.size + i], dir=self.base / f"n{i + 1}")
            node.dir.mkdir()
            (node.dir / "enabled_plugins").write_text("[].\n")
            lines = [
                f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
                "loopback_users.guest = true",
                "log.console = false",
                "log.file.level = info",
            ]
            if i > 0:
                # Join node 1 while booting; retry long enough for it to boot too.
                lines += [
                    "cluster_formation.peer_discovery_backend = classic_config",
                    f"cluster_formation.classic_config.nodes.1 = {names[0]}",
                    f"cluster_formation.discovery_retry_limit = {int(self.boot_timeout * 2)}",
                    "cluster_formation.discovery_retry_interval = 500",
                ]
            (node.dir / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
            self.nodes.append(node)

    def _common_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RABBITMQ_", "ERL_")) and k != "HOME"}
        env.update({
            "HOME": str(self.home),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            watchdog.DIR_ENV: str(self.base),
        })
        return env

    def _ctl_env(self) -> dict[str, str]:
        env = self._common_env()
        env["RABBITMQ_CTL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}"
        return env

    def _node_env(self, node: Node) -> dict[str, str]:
        env = self._common_env()
        d = node.dir
        env.update({
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                f"-kernel inet_dist_use_interface {{127,0,0,1}} {MARKER} {node.name}",
        })
        return env

    def _spawn(self, node: Node) -> None:
        with open(node.dir / "console.log", "ab") as console:
            node.process = subprocess.Popen(
                [self.installation.server], env=self._node_env(node), cwd=node.dir,
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True)
        if self._watchdog is not None:
            self._watchdog.track(node.process.pid, f"RABBITMQ_NODENAME={node.name}")

    def _wait_all_ready(self, indexes: Any, timeout: float | None = None) -> None:
        bound = timeout or self.boot_timeout
        deadline = time.monotonic() + bound
        waiting = {i: self.nodes[i] for i in indexes}
        while waiting:
            for i, node in list(waiting.items()):
                if amqp_ready(node.amqp_port, timeout=1.0):
                    del waiting[i]
                elif not node.running:
                    code = node.process.returncode if node.process else None
                    raise ClusterUnavailable(
                        f"RabbitMQ node {node.name} (127.0.0.1:{node.amqp_port}) exited with "
                        f"{code} while booting: {node.log_tail()}")
            if not waiting:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(n.name for n in waiting.values())
                raise ClusterUnavailable(f"RabbitMQ node(s) {names} did not answer AMQP "
                                         f"within {bound:.0f}s")
            # Pausing on the process itself: it wakes at once if the node dies.
            node = next(iter(waiting.values()))
            with contextlib.suppress(subprocess.TimeoutExpired):
                if node.process is not None:
                    node.process.wait(PROBE_INTERVAL)

    def _ensure_clustered(self) -> None:
        """Check one cluster formed; join any node that booted alone the classic way."""
        if self.size == 1:
            return
        members = set(self.running_members(node=0))
        alone = [n for n in self.nodes[1:] if n.name not in members]

        def join(node: Node) -> None:
            self.ctl("stop_app", node=node.index)
            self.ctl("join_cluster", self.nodes[0].name, node=node.index)
            self.ctl("start_app", node=node.index)

        with concurrent.futures.ThreadPoolExecutor(max(1, len(alone)), "dc-join") as pool:
            list(pool.map(join, alone))
        if alone:
            members = set(self.running_members(node=0))
        missing = [n.name for n in self.nodes if n.name not in members]
        if missing:
            raise ClusterUnavailable(f"node(s) {', '.join(missing)} did not join "
                                     f"{self.nodes[0].name}")

    def _some_running(self) -> int:
        for node in self.nodes:
            if node.running:
                return node.index
        raise ClusterError("no node of the cluster is running")

    def _terminate(self, node: Node, *, graceful: bool) -> None:
        self._signal(node, graceful=graceful)
        self._reap(node, graceful=graceful)

    def _signal(self, node: Node, *, graceful: bool) -> None:
        """SIGTERM (the script stops RabbitMQ and waits for it) or SIGKILL to the node's group."""
        proc = node.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)

    def _reap(self, node: Node, *, graceful: bool) -> None:
        """Wait (bounded) for the node's script to end; kill whatever of its group is left."""
        proc = node.process
        if proc is None:
            return
        try:
            proc.wait(STOP_TIMEOUT if graceful else 5.0)
        except subprocess.TimeoutExpired:
            watchdog.kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
        # The script waits for the VM, so the group is normally empty by now; a helper
        # (erl_child_setup, inet_gethost) that outlived it goes too.
        watchdog.kill_group(proc.pid)
        if self._watchdog is not None:
            self._watchdog.untrack(proc.pid)


_shared: list[RabbitCluster] = []


@contextlib.contextmanager
def sharing(cluster: RabbitCluster) -> Iterator[RabbitCluster]:
    """Offer a started ``cluster`` to every ``rabbit-cluster`` run of this process in the block.

    A run then uses it instead of booting its own (about 20 s here), leaves
    it running, and deletes only what it declared; the kit's own tests run
    several in-process runs on one cluster this way.
    """
    _shared.append(cluster)
    try:
        yield cluster
    finally:
        _shared.remove(cluster)


def shared() -> RabbitCluster | None:
    """The cluster offered by :func:`sharing`, if one is and it still runs."""
    for cluster in reversed(_shared):
        if cluster.started and not cluster.stopped:
            return cluster
    return None


@contextlib.contextmanager
def running_cluster(size: int = 3, **kwargs: Any) -> Iterator[RabbitCluster]:
    """``with running_cluster() as cluster:`` -- started, and always stopped and removed."""
    cluster = RabbitCluster(size, **kwargs)
    with cluster:
        yield cluster


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m driver_conformance.brokers.rabbit_cluster",
        description="Start a private RabbitMQ cluster on loopback (to try it out and time "
                    "it), or remove nodes a killed run left behind.")
    parser.add_argument("--reap", action="store_true",
                        help="kill kit nodes whose owner and watchdog are gone")
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args(argv)
    if args.reap:
        for name in watchdog.reap(MARKER, "dc-rabbit-cluster-"):
            print(f"reaped {name}")
        return 0
    try:
        with running_cluster(args.size) as cluster:
            print(cluster.describe())
            print(", ".join(f"{k} {v:.1f}s" for k, v in cluster.timings.items()))
    except ClusterUnavailable as exc:
        print(f"rabbit_cluster: {exc}", file=sys.stderr)
        return 1
    print(f"stop {cluster.timings['stop']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
