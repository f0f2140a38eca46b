"""The rabbit lane against the real broker: isolation, cleanup, faults, unreachable broker.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and ``rabbitmqctl`` as root
to look for leftovers; skipped otherwise.  The broker is shared, so every
check is about names and connections of *this* run only.

A few scenarios run in-process through pytester, chosen to make the driver
declare every kind of thing it declares -- topic, server and fanout queues,
the fanout exchange, reply queues (RPC calls), notification queues of a
pool -- and to cut its connections through the proxy; their verdicts do not
matter here, what they leave on the broker does.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import socket
import time
import uuid

import pytest

from driver_conformance.brokers.rabbit import (
    RabbitCtl,
    RabbitCtlUnavailable,
    amqp_unreachable_reason,
    own_connections,
)
from driver_conformance.exitcodes import ExitCode

EXIT_BACKEND_UNAVAILABLE = ExitCode.BACKEND_UNAVAILABLE

BROKER = ("127.0.0.1", 5672)
SCENARIO_CLAUSES = (
    "send.wait-for-reply.returns-reply",
    "send.fanout.all-subscribers",
    "notify-listen.pool.one-copy-per-pool",
    "listen.failover.restores-subscriptions",
)


def _ctl() -> RabbitCtl:
    if amqp_unreachable_reason(*BROKER, timeout=2):
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    try:
        return RabbitCtl.for_host(BROKER[0])
    except RabbitCtlUnavailable as exc:
        pytest.skip(f"cannot list the broker: {exc}")


@pytest.fixture
def ctl() -> RabbitCtl:
    return _ctl()


def adapter_args() -> list[str]:
    """``-p`` the adapter module unless the installed distribution registers it already."""
    registered = {ep.name for ep in importlib.metadata.entry_points(
        group="driver_conformance.adapters")}
    return [] if "rabbit" in registered else ["-p", "driver_conformance.plugins.rabbit"]


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)  # polling a broker listing; nothing to wait on
    return predicate()


def leftovers(ctl: RabbitCtl, prefix: str, replies: set[str] = frozenset()) -> list[str]:
    queues, exchanges, _ = ctl.snapshot()
    return sorted({n for n in queues if n.startswith(prefix) or n in replies}
                  | {n for n in exchanges if n.startswith(prefix)})


def test_run_leaves_nothing_on_the_broker(pytester: pytest.Pytester, ctl: RabbitCtl,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from driver_conformance.brokers import rabbit

    run_id = f"t{uuid.uuid4().hex[:8]}"
    prefix = f"dc-{run_id}-main"
    monkeypatch.setenv("DRIVER_CONFORMANCE_RUN_ID", run_id)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    before = len(rabbit.CLEANUPS)
    clause_args = [a for c in SCENARIO_CLAUSES for a in ("--clause", c)]
    result = pytester.runpytest_inprocess(
        *adapter_args(), "--driver=rabbit", *clause_args, "-k", "not random_topologies",
        "-p", "no:randomly",
        "-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= len(SCENARIO_CLAUSES), (
        f"expected the scenarios to run, got {outcomes}")
    cleanups = [c for c in rabbit.CLEANUPS[before:] if c.prefix == prefix]
    assert len(cleanups) == 1, "the backend must be torn down exactly once"
    cleanup = cleanups[0]
    assert cleanup.listed and not cleanup.problems, cleanup.summary()
    assert cleanup.queues and cleanup.exchanges, "the scenarios declared queues and exchanges"
    assert cleanup.reply_queues, "RPC calls were made, so reply queues were named"
    assert leftovers(ctl, prefix, set(cleanup.reply_queues)) == []
    assert wait_for(lambda: not own_connections(ctl.connections())), (
        f"connections of this process still open: {own_connections(ctl.connections())}")


def test_a_by_url_run_leaves_nothing_on_the_broker(pytester: pytest.Pytester, ctl: RabbitCtl,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`pytest --transport-url=rabbit://...` (no adapter code) is cleaned as --driver=rabbit is:
    the probe's queues, the scenarios' queues and exchanges, the reply queues."""
    from driver_conformance.brokers import rabbit

    run_id = f"u{uuid.uuid4().hex[:8]}"
    prefix = f"dc-{run_id}-main"
    monkeypatch.setenv("DRIVER_CONFORMANCE_RUN_ID", run_id)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    before = len(rabbit.CLEANUPS)
    result = pytester.runpytest_inprocess(
        "--transport-url=rabbit://guest:guest@127.0.0.1:5672/",
        "--clause", "send.wait-for-reply.returns-reply", "--clause", "listen.address",
        "-k", "not random_topologies", "-p", "no:randomly", "-p", "no:cacheprovider", "-q",
        "--report-json=r.json")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3, outcomes
    cleanups = [c for c in rabbit.CLEANUPS[before:] if c.prefix == prefix]
    assert len(cleanups) == 1 and cleanups[0].listed, [c.summary() for c in cleanups]
    cleanup = cleanups[0]
    assert any("-probe-" in q for q in cleanup.queues), cleanup.queues
    assert cleanup.reply_queues and cleanup.exchanges
    assert leftovers(ctl, prefix, set(cleanup.reply_queues)) == []
    assert leftovers(ctl, "dc-probe-") == [], "the probe names its queues under the run's prefix"
    facts = __import__("json").loads((pytester.path / "r.json").read_text())["run"]["facts"]
    assert facts["cleanup"].startswith("deleted "), facts


def test_a_backend_the_kit_cannot_clean_is_said_so(pytester: pytest.Pytester) -> None:
    """A networked scheme without a janitor: the run's facts and summary say so."""
    from driver_conformance.brokers.janitor import janitor_for

    janitor = janitor_for("nats://127.0.0.1:4222/", "dc-x-main")
    assert not janitor.cleans and janitor.description.startswith("NOT cleaned")
    assert janitor_for("kombu+memory:////", "p").cleans
    assert type(janitor_for("rabbit://guest:guest@127.0.0.1:5672/", "p")).__name__ == \
        "RabbitJanitor"


def test_xdist_workers_use_and_clean_their_own_names(pytester: pytest.Pytester,
                                                     ctl: RabbitCtl,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers, prefixes ``dc-<run>-gw0`` and ``-gw1``: nothing of either is left."""
    run_id = f"x{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DRIVER_CONFORMANCE_RUN_ID", run_id)
    result = pytester.runpytest_subprocess(
        *adapter_args(), "--driver=rabbit", "--clause", SCENARIO_CLAUSES[0],
        "--clause", SCENARIO_CLAUSES[1], "-k", "not random_topologies", "-n", "2",
        "-p", "no:randomly", "-q",
        "-p", "no:cacheprovider", timeout=240)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= 2, outcomes
    assert leftovers(ctl, f"dc-{run_id}-") == []


def test_unreachable_broker_fails_fast_without_the_password(pytester: pytest.Pytester) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        *adapter_args(), "--driver=rabbit",
        f"--transport-url=rabbit://guest:s3cr3t@127.0.0.1:{port}/", "-p", "no:cacheprovider")
    elapsed = time.monotonic() - started
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == EXIT_BACKEND_UNAVAILABLE, output[-2000:]
    assert f"127.0.0.1:{port}" in output
    assert "s3cr3t" not in output
    assert elapsed < 30


def test_wrong_password_is_reported_as_unavailable(pytester: pytest.Pytester) -> None:
    _ctl()
    result = pytester.runpytest_subprocess(
        *adapter_args(), "--driver=rabbit",
        "--transport-url=rabbit://guest:not-the-password@127.0.0.1:5672/",
        "-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == EXIT_BACKEND_UNAVAILABLE, output[-2000:]
    assert "login failed" in output and "not-the-password" not in output


@pytest.mark.parametrize("fault", ["freeze", "delay"])
def test_silent_faults_are_bounded_and_heal(ctl: RabbitCtl, fault: str) -> None:
    """A frozen or slowed link: the driver's call is ended by the kit's bound, then heals.

    Against a silent partition (nothing closed, nothing answered) or a 2 s
    delay each way, the rabbit driver's ``send(wait_for_reply=True,
    timeout=1)`` does not return by itself (observed: still blocked after
    15 s), which is exactly what the kit's bounded calls are for.  After the
    heal, a new call must succeed within a few attempts: the proxy leaves
    nothing broken behind.  This is also the reproduction of that finding
    (see docs/findings/rabbit.rst).
    """
    import oslo_messaging

    from driver_conformance.bounded import DriverHung, call_bounded
    from driver_conformance.configuration import base_conf
    from driver_conformance.plugins.rabbit import RABBIT_OVERRIDES, RabbitAdapter

    def conf():
        c = base_conf()
        for name, value in RABBIT_OVERRIDES.items():
            c.set_override(name, value, group="oslo_messaging_rabbit")
        return c

    prefix = f"dc-f{uuid.uuid4().hex[:8]}-main"
    adapter = RabbitAdapter()
    janitor = adapter.janitor(adapter.default_url, prefix)
    with contextlib.ExitStack() as stack:
        stack.callback(janitor.clean)
        backend = stack.enter_context(adapter.backend(adapter.default_url, prefix))
        assert backend.faults is not None
        server = janitor.watch(adapter.make_driver(
            conf(), backend.url, default_exchange=f"{prefix}-default", allowed_remote_exmods=[]))
        client = janitor.watch(adapter.make_driver(
            conf(), backend.url, default_exchange=f"{prefix}-default", allowed_remote_exmods=[]))
        target = oslo_messaging.Target(topic=f"{prefix}-t", server="s1")
        listener = server.listen(target, 1, None)
        listener.start(lambda msgs: [m.reply({"n": m.message["n"]}) for m in msgs])

        def call(n: int, bound: float) -> object:
            return call_bounded(client.send, target, {}, {"n": n}, wait_for_reply=True,
                                timeout=1, bound=bound, what=f"call {n}")

        try:
            assert call(0, 10) == {"n": 0}
            if fault == "freeze":
                backend.faults.freeze()
            else:
                backend.faults.delay(2.0)
            started = time.monotonic()
            with pytest.raises((DriverHung, oslo_messaging.MessagingTimeout)):
                call(1, 6)
            assert time.monotonic() - started < 8, "the kit's bound ends the call"
            backend.faults.heal()
            for attempt in range(5):
                try:
                    assert call(2 + attempt, 10) == {"n": 2 + attempt}
                    break
                except oslo_messaging.MessagingTimeout:
                    continue
            else:
                pytest.fail("no call succeeded after the heal")
        finally:
            backend.faults.heal()
            for action in (listener.stop, listener.cleanup, server.cleanup, client.cleanup):
                with contextlib.suppress(Exception):
                    call_bounded(action, bound=10, what="teardown")
    assert leftovers(ctl, prefix) == []


def test_the_users_configuration_is_judged_and_reported(pytester: pytest.Pytester,
                                                        ctl: RabbitCtl) -> None:
    """`--oslo-config-file=my.conf`: quorum queues are what runs, the report says which
    configuration it was (secrets masked), and the adapter's override of a value the
    user set is named."""
    secret = "n0t-f0r-y0ur-eyes"
    pytester.makefile(".conf", my=f"""
        [DEFAULT]
        transport_url = rabbit://operator:{secret}@127.0.0.1:5672/
        [oslo_messaging_rabbit]
        rabbit_quorum_queue = true
        heartbeat_timeout_threshold = 60
        """)
    result = pytester.runpytest_subprocess(
        *adapter_args(), "--driver=rabbit", "--oslo-config-file=my.conf",
        "--clause=send.fanout.all-subscribers", "-m", "not model", "-p", "no:cacheprovider",
        "--report-json=r.json", timeout=240)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == ExitCode.UNKNOWN, out[-3000:]
    result.stdout.fnmatch_lines([
        "driver-conformance: configuration judged: my.conf",
        "driver-conformance: the adapter overrides your [[]oslo_messaging_rabbit[]] "
        "heartbeat_timeout_threshold with 2: *"])
    doc = json.loads((pytester.path / "r.json").read_text())
    judged = doc["run"]["configuration"]
    assert judged["files"] == ["my.conf"]
    assert judged["options"]["oslo_messaging_rabbit"]["rabbit_quorum_queue"] is True
    assert judged["options"]["DEFAULT"]["transport_url"] == "***"
    over = [o for o in judged["overrides"] if o["over_user_value"]]
    assert [o["option"] for o in over] == ["heartbeat_timeout_threshold"]
    assert secret not in out and secret not in (pytester.path / "r.json").read_text()


def test_stored_view_takes_what_the_queue_holds_and_nothing_when_there_is_no_queue() -> None:
    """The rabbit adapter's raw view of stored notifications, against the real broker."""
    import amqp

    from driver_conformance.brokers.rabbit import RabbitStoredView

    _ctl()
    view = RabbitStoredView(host=BROKER[0], port=BROKER[1], userid="guest", password="guest",
                            vhost="/")
    queue = f"dc-viewtest-{uuid.uuid4().hex[:8]}.info"
    assert view.stored_notifications("", queue, timeout=0.2) == [], "no queue: nothing stored"
    conn = amqp.Connection(f"{BROKER[0]}:{BROKER[1]}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(queue, auto_delete=False)
        channel.basic_publish(amqp.Message(b'{"oslo.version": "2.0"}'), routing_key=queue)
        assert view.stored_notifications("", queue, timeout=5) == [b'{"oslo.version": "2.0"}']
        assert view.stored_notifications("", queue, timeout=0.2) == [], "what it read is taken"
    finally:
        channel.queue_delete(queue)
        conn.close()
