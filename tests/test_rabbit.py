"""The rabbit and kombu-memory adapters' own logic, without a broker.

URL rewriting (the drivers must reach the broker only through the fault
proxy, credentials intact), reply-queue tracking (the only way to find a
run's ``reply_<uuid>`` queues), the AMQP readiness probe, and the memory
transport's cleanup.
"""

from __future__ import annotations

import socket
import threading

import pytest

from driver_conformance.brokers.rabbit import (
    Connection,
    RabbitCtl,
    RabbitCtlUnavailable,
    ReplyQueueTracker,
    amqp_unreachable_reason,
    is_run_name,
    own_connections,
)
from driver_conformance.plugins.rabbit import RABBIT_OVERRIDES, rewrite_hosts


@pytest.mark.parametrize(("url", "addresses", "expected"), [
    ("rabbit://guest:guest@10.0.0.1:5672/", [("127.0.0.1", 4000)],
     "rabbit://guest:guest@127.0.0.1:4000/"),
    ("rabbit://u:p%40ss@h1:5672,u:p@h2/vh?ssl=1", [("127.0.0.1", 1), ("127.0.0.1", 2)],
     "rabbit://u:p%40ss@127.0.0.1:1,u:p@127.0.0.1:2/vh?ssl=1"),
    ("rabbit://h/", [("127.0.0.1", 9)], "rabbit://127.0.0.1:9/"),
])
def test_rewrite_hosts_keeps_credentials_path_and_query(url: str, addresses: list,
                                                        expected: str) -> None:
    assert rewrite_hosts(url, addresses) == expected


def test_rewrite_hosts_refuses_a_mismatch() -> None:
    with pytest.raises(ValueError, match="2 hosts") as info:
        rewrite_hosts("rabbit://u:secret@a,u:secret@b/", [("127.0.0.1", 1)])
    assert "secret" not in str(info.value)


def test_reply_queue_tracker_observes_names_without_changing_them() -> None:
    class FakeDriver:
        def __init__(self) -> None:
            self.n = 0

        def _get_reply_queue_name(self) -> str:
            self.n += 1
            return f"reply_{self.n}"

    tracker = ReplyQueueTracker()
    drivers = [tracker.watch(FakeDriver()) for _ in range(3)]
    threads = [threading.Thread(target=d._get_reply_queue_name) for d in drivers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert drivers[0]._get_reply_queue_name() == "reply_2"
    assert tracker.snapshot() == {"reply_1", "reply_2"}
    assert tracker.watch(object()) is not None, "a driver without reply queues is left alone"


def test_run_names_and_own_connections() -> None:
    assert is_run_name("dc-ab-gw0-t-1_fanout", "dc-ab-gw0")
    assert not is_run_name("dc-ab-gw1-t-1", "dc-ab-gw0")
    assert not is_run_name("dc-ab-gw10-t-1", "dc-ab-gw1"), "worker 1 is not worker 10"
    assert is_run_name("reply_42", "dc-ab-gw0", {"reply_42"})
    assert not is_run_name("reply_43", "dc-ab-gw0", {"reply_42"})
    conns = [Connection("p1", "a", "pytest:123:uuid"), Connection("p2", "b", "nova:1234:uuid"),
             Connection("p3", "c", "")]
    assert [c.pid for c in own_connections(conns, pid=123)] == ["p1"]


def test_overrides_are_real_driver_options() -> None:
    from oslo_messaging._drivers import impl_rabbit

    names = {opt.name for opt in impl_rabbit.rabbit_opts}
    assert set(RABBIT_OVERRIDES) <= names


def test_amqp_probe_tells_amqp_from_other_services() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    assert "127.0.0.1" in (amqp_unreachable_reason("127.0.0.1", port, timeout=1) or "")

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_http() -> None:
        conn, _ = server.accept()
        conn.recv(8)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    t = threading.Thread(target=answer_http, daemon=True)
    t.start()
    reason = amqp_unreachable_reason("127.0.0.1", server.getsockname()[1], timeout=2)
    t.join(2)
    server.close()
    assert reason and "does not speak AMQP" in reason


def test_rabbitmqctl_only_for_a_local_broker() -> None:
    with pytest.raises(RabbitCtlUnavailable, match="not on this machine"):
        RabbitCtl.for_host("rabbit.example.org")


def test_kombu_memory_cleanup_removes_only_the_runs_state() -> None:
    from kombu.transport import memory

    from driver_conformance.plugins.kombu_memory import drop_memory_state

    memory.Channel.queues["dc-run1-main-t-1"] = object()
    memory.Channel.queues["reply_abc"] = object()
    memory.Channel.queues["someone-else"] = object()
    memory.Transport.global_state.exchanges["dc-run1-main-x-1"] = {}
    try:
        assert drop_memory_state("dc-run1-main", {"reply_abc"}) == 2
        assert "someone-else" in memory.Channel.queues
        assert "dc-run1-main-t-1" not in memory.Channel.queues
        assert "dc-run1-main-x-1" not in memory.Transport.global_state.exchanges
    finally:
        memory.Channel.queues.pop("someone-else", None)


def test_rabbitctl_timeout_leaves_no_process_behind(tmp_path) -> None:
    """A rabbitmqctl that does not answer is killed with everything below it.

    As root it re-executes itself through su, which puts the shell it starts in a
    process group of its own; the Erlang VM underneath must not outlive the call.
    """
    import os
    import select

    pidfile = tmp_path / "grandchild.pid"
    fake = tmp_path / "rabbitmqctl"
    fake.write_text("#!/bin/sh\n"
                    f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' &\n"
                    "wait\n")
    fake.chmod(0o755)
    ctl = RabbitCtl(timeout=0.5, executable=str(fake))
    with pytest.raises(RabbitCtlUnavailable, match=r"no answer within 0\.5s"):
        ctl.queues()
    grandchild = int(pidfile.read_text())
    try:
        handle = os.pidfd_open(grandchild)
    except ProcessLookupError:
        return  # gone already
    try:  # readable once the process has exited
        exited, _, _ = select.select([handle], [], [], 5.0)
    finally:
        os.close(handle)
    assert exited, f"process {grandchild} outlived the call"
