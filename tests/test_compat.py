"""The release differences in :mod:`driver_conformance.compat`, on whichever release is installed.

``noxfile.py`` runs these on 16.x, 17.x and 18.x; each test holds on all three,
which is the point: the kit's verdicts must not depend on the release.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterator

import pytest

from driver_conformance import compat


@pytest.fixture
def metrics_thread() -> Iterator[threading.Thread]:
    """oslo.messaging's process-wide metrics thread, built through the public RPC client.

    Metrics are enabled so that every release builds the collector (16.x would
    build it anyway); its thread ends about a second after its last metric
    (which it cannot deliver: no collector socket listens), and the test waits
    for that, so no later test inherits it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging
        from oslo_config import cfg
        from oslo_messaging import conffixture
        from oslo_messaging._metrics import client as metrics_client

    # On 16.x an earlier RPC call in this process may have built the collector
    # already: set it aside so that this test builds its own, and put it back.
    earlier = metrics_client.METRICS_COLLECTOR
    metrics_client.METRICS_COLLECTOR = None
    try:
        conf = cfg.ConfigOpts()
        conffixture.ConfFixture(conf)
        group = "oslo_messaging_metrics"
        conf.set_override("metrics_enabled", True, group=group)
        conf.set_override("metrics_thread_stop_timeout", 1, group=group)
        conf.set_override("metrics_socket_file", f"/nonexistent/{uuid.uuid4().hex}", group=group)
        transport = oslo_messaging.get_rpc_transport(conf,
                                                     url=f"reference:///{uuid.uuid4().hex}")
        try:
            client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic="t"))
            client.cast({}, "nobody_listens")
        finally:
            transport.cleanup()
        collector = metrics_client.METRICS_COLLECTOR
        assert collector is not None, "expected the RPC client to build the metrics collector"
        yield collector.send_thread
        collector.send_thread.join(5)
    finally:
        metrics_client.METRICS_COLLECTOR = earlier


def test_the_metrics_thread_is_oslo_messagings_not_the_drivers(
        metrics_thread: threading.Thread) -> None:
    assert compat.owned_by_oslo_messaging(metrics_thread)
    assert not compat.owned_by_oslo_messaging(threading.current_thread())


def test_cleanup_scenarios_pass_when_they_make_the_first_rpc_call(
        pytester: pytest.Pytester) -> None:
    """Run alone, the transport-cleanup scenario makes the process's first RPC call.

    On 16.x that call starts oslo.messaging's metrics thread, which outlives
    ``transport.cleanup()``; the scenario must not count it as the driver's.
    """
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--driver=reference", "--clause=driver.cleanup.blocks",
        timeout=120)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 2 and "failed" not in outcomes, result.stdout.str()
