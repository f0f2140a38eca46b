"""Adapters for oslo.messaging's rabbit driver on a private three-node RabbitMQ cluster.

``--driver=rabbit-cluster`` and ``--driver=rabbit-cluster-classic`` run the
whole suite against a cluster the kit starts for the run
(:mod:`driver_conformance.brokers.rabbit_cluster`), with the same driver
options as the ``rabbit`` lane, and add the one fault a single broker cannot
produce: **node loss** -- a node of the cluster crashes (SIGKILL), the others
carry on, and the driver has to fail over to another host of its multi-host
transport URL.  The two adapters differ only in the queues the driver
declares:

* ``rabbit-cluster``: quorum queues, replicated on all three nodes
  (``rabbit_quorum_queue=True`` for topic and server queues, and
  ``rabbit_transient_quorum_queue=True`` so reply and fanout queues are
  quorum queues too: without it they are classic queues on whichever node
  the driver happened to be connected to, and a call whose reply queue was
  on the lost node loses its reply);
* ``rabbit-cluster-classic``: oslo.messaging's defaults, classic queues,
  which live on one node only.  What was queued on a lost node is lost with
  it; that is RabbitMQ's documented behaviour for classic queues, and the
  lane's expectations file says so, clause by clause, rather than hiding it.

They are opt-in: nothing is started unless one is named with ``--driver``,
and when RabbitMQ is not installed the run ends at once (exit code 8) with
one line saying so.  Booting the cluster is the lane's largest fixed cost
(about 20 s on a two-core machine); a cluster already offered in this
process (:func:`~driver_conformance.brokers.rabbit_cluster.sharing`) is used
instead and left running.

The transport URL given to the kit (``--transport-url``) contributes only its
credentials and virtual host; its hosts are replaced by the cluster's nodes,
in order, and every node is reached through the kit's loopback fault proxy,
so the single-broker faults (outage, cut, freeze, delay) still apply to the
whole cluster and the driver's connections end with the run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import driver_conformance
from driver_conformance import faults
from driver_conformance.adapter import Backend, BackendUnavailable
from driver_conformance.brokers import rabbit_cluster as rc
from driver_conformance.brokers.rabbit import ReplyQueueTracker
from driver_conformance.configuration import Override
from driver_conformance.plugins.rabbit import RabbitAdapter, quiet_background_logs
from driver_conformance.proxy import ProxyError, ProxyFaults

LOG = logging.getLogger(__name__)

#: What every ``rabbit-cluster`` run's teardown did, newest last (the kit's tests read it).
CLEANUPS: list[ClusterJanitor] = []

#: The options that make every queue of the ``rabbit-cluster`` lane a quorum queue.  They
#: change what the contract sees, so a user's own value (``--oslo-config-file``) wins.
QUORUM_OVERRIDES: dict[str, Override] = {
    "rabbit_quorum_queue": Override(
        True, "the rabbit-cluster lane judges quorum queues (topic and server queues)",
        changes_behaviour=True),
    "rabbit_transient_quorum_queue": Override(
        True, "the rabbit-cluster lane judges quorum queues (reply and fanout queues too)",
        changes_behaviour=True),
}

#: How long (seconds) the other nodes may take to see a killed node as down (50 ms here).
NODE_DOWN_BOUND = 10.0


class NodeLossError(RuntimeError):
    """A node-loss fault could not be applied or healed (one line, the node named)."""


class ClusterFaults(ProxyFaults):
    """The proxies' faults, plus :meth:`lose_node` on the real cluster behind them.

    Losing a node makes its proxy refuse new connections (as a dead host
    does: ``ECONNREFUSED``, not an accept followed by a close) and then kills
    the node's processes, which ends every connection through it.  ``heal``
    starts the node again from its data and waits until it has rejoined,
    then heals the proxies.
    """

    def __init__(self, proxies: list[Any], cluster: rc.RabbitCluster, *,
                 vhost: str = "/", restart_timeout: float = rc.BOOT_TIMEOUT) -> None:
        super().__init__(proxies)
        # An instance attribute, as the proxies' own kinds (lost confirmations over AMQP).
        self.kinds = self.kinds | {faults.NODE_LOSS}  # type: ignore[misc]
        self.cluster = cluster
        self.vhost = vhost
        self.restart_timeout = restart_timeout
        #: Indexes of nodes lost and not yet healed.
        self.lost: list[int] = []
        #: One line per node lost or restarted, with how long it took (for evidence).
        self.events: list[str] = []
        self._lock = threading.Lock()

    def lose_node(self, which: int | str = "leader", *, topic: str | None = None) -> int:
        with self._lock:
            if self.lost:
                raise NodeLossError(
                    f"node {self._label(self.lost[0])} is still lost; heal() before losing "
                    "another (two of three lost would leave the quorum queues no majority)")
            down = [i for i in range(self.cluster.size) if i not in self.cluster.running()]
            if down:
                raise NodeLossError(f"node {self._label(down[0])} is not running "
                                    "(an earlier heal failed)")
            if which == "leader":
                if not topic:
                    raise ValueError("lose_node('leader') needs the topic whose queue it leads")
                index = self.cluster.queue_leader(topic, self.vhost)
            elif isinstance(which, int) and 0 <= which < self.cluster.size:
                index = which
            else:
                raise ValueError(f"lose_node: which must be 'leader' or a node index "
                                 f"0..{self.cluster.size - 1}, not {which!r}")
            self.proxies[index].refuse(True)
            self.cluster.stop_node(index, kill=True)
            self.lost.append(index)
            self._wait_seen_down(index)
            self.events.append(
                f"lost {self._label(index)}" + (f" (leader of {topic})" if topic else ""))
            return index

    def heal(self) -> None:
        """Restart every lost node and wait for it to rejoin; then heal the proxies."""
        problems = []
        with self._lock:
            for index in list(self.lost):
                try:
                    self.cluster.start_node(index, timeout=self.restart_timeout)
                    self.lost.remove(index)
                    took = self.cluster.timings.get("start_node", 0.0)
                    self.events.append(f"restarted {self._label(index)} in {took:.1f}s")
                except (rc.ClusterError, rc.ClusterUnavailable) as exc:
                    problems.append(str(exc))
        super().heal()
        if problems:
            raise NodeLossError("; ".join(problems))

    def _wait_seen_down(self, index: int) -> None:
        """Return once another node no longer counts ``index`` as running (bounded)."""
        name = self.cluster.nodes[index].name
        observer = next(i for i in self.cluster.running() if i != index)
        deadline = time.monotonic() + NODE_DOWN_BOUND
        while name in self.cluster.running_members(node=observer):
            if time.monotonic() >= deadline:
                raise NodeLossError(f"{name} was killed but the cluster still counts it as "
                                    f"running after {NODE_DOWN_BOUND:.0f}s")
            time.sleep(0.02)  # polling the cluster's membership; nothing to wait on

    def _label(self, index: int) -> str:
        return self.cluster.nodes[index].name


class ClusterJanitor:
    """Cleans what a ``rabbit-cluster`` run left (see :mod:`driver_conformance.brokers.janitor`).

    A cluster the run booted is removed with everything on it when the run
    ends, so there is nothing to delete.  A shared cluster (offered by
    :func:`~driver_conformance.brokers.rabbit_cluster.sharing`) outlives the
    run: the run's queues and exchanges are listed on the cluster itself
    (not on the machine's node, which the generic rabbit janitor would ask)
    and deleted by name.  Runs after the adapter's backend is torn down.
    """

    cleans = True

    def __init__(self, adapter: RabbitClusterAdapter, prefix: str) -> None:
        self.adapter = adapter
        self.prefix = prefix
        self.replies = ReplyQueueTracker()
        self.owned: bool | None = None
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.problems: list[str] = []
        self.stop_seconds: float | None = None
        self.description = ("the cluster the run boots is removed with the run; on a shared "
                            f"cluster, queues and exchanges named {prefix}-* and the run's "
                            "reply queues are deleted")

    def watch(self, driver: Any) -> Any:
        return self.replies.watch(driver)

    def clean(self) -> str:
        cluster, broker = self.adapter.cluster, self.adapter.broker
        if self.owned is False and cluster is not None and broker is not None:
            self._delete_run_names(cluster, broker)
        CLEANUPS.append(self)
        text = self.summary()
        LOG.info("driver-conformance %s cleanup of %s: %s", self.adapter.name, self.prefix,
                 text)
        return text

    def summary(self) -> str:
        if self.owned is None:
            return "nothing to clean: no cluster was started"
        if self.owned:
            text = "cluster stopped and its directories removed"
            if self.stop_seconds is not None:
                text += f" in {self.stop_seconds:.1f}s"
        else:
            text = (f"shared cluster kept; deleted {len(self.queues)} queues, "
                    f"{len(self.exchanges)} exchanges")
        if self.problems:
            text += "; problems: " + "; ".join(self.problems[:3])
        return text

    def _delete_run_names(self, cluster: rc.RabbitCluster, broker: dict[str, Any]) -> None:
        """Delete the run's queues and exchanges from the shared cluster (never raises)."""
        from driver_conformance.brokers.rabbit import delete_by_name, is_run_name

        replies = self.replies.snapshot()
        prefix = self.prefix
        try:
            queues = cluster.queues(broker["vhost"])
            exchanges = cluster.exchanges(broker["vhost"])
        except rc.ClusterError as exc:
            self.problems.append(f"not listed: {exc}")
            queues, exchanges = sorted(replies), [f"{prefix}-default"]
        self.queues = sorted(n for n in queues if is_run_name(n, prefix, replies))
        self.exchanges = sorted(n for n in exchanges if is_run_name(n, prefix))
        running = cluster.running()
        host, port = cluster.hosts[running[0]] if running else (broker["host"], broker["port"])
        try:
            self.problems += delete_by_name(
                host, port, userid=broker["userid"], password=broker["password"],
                vhost=broker["vhost"], queues=self.queues, exchanges=self.exchanges)
        except Exception as exc:  # the run's end must not fail on cleanup
            self.problems.append(f"delete: {type(exc).__name__}: {exc}")


def cluster_url(template: str, cluster: rc.RabbitCluster) -> str:
    """``template``'s credentials, virtual host and query on every node of ``cluster``."""
    parts = urllib.parse.urlsplit(template)
    userinfo = parts.netloc.split(",")[0].rpartition("@")[0]
    netloc = ",".join((f"{userinfo}@" if userinfo else "") + f"{h}:{p}"
                      for h, p in cluster.hosts)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path or '/'}{query}"


class RabbitClusterAdapter(RabbitAdapter):
    name = "rabbit-cluster"
    description = ("oslo.messaging's rabbit driver on a private 3-node RabbitMQ cluster "
                   "started by the kit, quorum queues, real node loss (opt-in)")
    #: Only the credentials and virtual host of this URL are used; see the module docstring.
    default_url = "rabbit://guest:guest@127.0.0.1/"
    #: Whether the driver is configured for quorum queues.
    quorum = True
    size = 3

    def __init__(self) -> None:
        super().__init__()
        self.cluster: rc.RabbitCluster | None = None
        self.broker: dict[str, Any] | None = None
        self.injector: ClusterFaults | None = None
        self._janitor: ClusterJanitor | None = None

    def option_overrides(self) -> Mapping[str, Mapping[str, Any]]:
        options = dict(super().option_overrides()["oslo_messaging_rabbit"])
        if self.quorum:
            options.update(QUORUM_OVERRIDES)
        return {"oslo_messaging_rabbit": options}

    def janitor(self, url: str, prefix: str) -> ClusterJanitor:
        self._janitor = ClusterJanitor(self, prefix)
        return self._janitor

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        from driver_conformance.proxy import proxied

        reason = rc.unavailable_reason()
        if reason:
            raise BackendUnavailable(f"{self.name}: {reason}")
        cluster = rc.shared()
        owned = cluster is None
        if cluster is None:
            try:
                cluster = rc.RabbitCluster(self.size).start()
            except (rc.ClusterUnavailable, rc.ClusterError) as exc:
                raise BackendUnavailable(f"{self.name}: {exc}") from None
        janitor = self._janitor or self.janitor(url, prefix)
        janitor.owned = owned
        self.cluster = cluster
        try:
            nodes_url = cluster_url(url, cluster)
            self.broker = broker = self._login(nodes_url)
            quiet_background_logs()
            with proxied(nodes_url, self.default_port, name=f"rabbit-cluster-proxy-{prefix}",
                         protocol="amqp") as proxy:
                self.injector = ClusterFaults(proxy.faults.proxies, cluster,
                                              vhost=broker["vhost"])
                facts = {
                    "broker": f"{broker['broker']}, {cluster.size}-node cluster"
                              + ("" if owned else " (shared)"),
                    "cluster": cluster.describe(),
                    "queues": ("quorum (rabbit_quorum_queue, rabbit_transient_quorum_queue)"
                               if self.quorum else "classic (oslo.messaging's defaults)"),
                    **proxy.facts,
                }
                if owned:
                    facts["cluster start"] = (f"{cluster.timings.get('start', 0.0):.1f}s "
                                              f"(all nodes answering AMQP after "
                                              f"{cluster.timings.get('boot', 0.0):.1f}s)")
                try:
                    yield Backend(url=proxy.url, faults=self.injector, facts=facts)
                finally:
                    # A shared cluster is left whole for whoever runs next.
                    if not owned and self.injector.lost:
                        with contextlib.suppress(NodeLossError, ProxyError):
                            self.injector.heal()
        finally:
            if owned:
                cluster.stop()
                janitor.stop_seconds = cluster.timings.get("stop")


class RabbitClusterClassicAdapter(RabbitClusterAdapter):
    name = "rabbit-cluster-classic"
    description = ("oslo.messaging's rabbit driver on a private 3-node RabbitMQ cluster, "
                   "classic (unreplicated) queues, real node loss (opt-in)")
    quorum = False


@driver_conformance.hookimpl
def conformance_adapters() -> list[RabbitAdapter]:
    return [RabbitClusterAdapter(), RabbitClusterClassicAdapter()]
