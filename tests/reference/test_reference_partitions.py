"""The reference driver on a frozen and on a slow link (the faults the partition scenarios use).

Each test builds reference drivers on a private broker (a uuid virtual host,
dropped afterwards) and drives the broker's freeze and delay through
:class:`~driver_conformance.reference.ReferenceFaults`.  Every wait has a
ceiling; durations are scaled by ``DRIVER_CONFORMANCE_TEST_TIME_SCALE``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import oslo_messaging
import pytest

from driver_conformance import faults as kinds
from driver_conformance.reference import ReferenceDriver, ReferenceFaults
from driver_conformance.reference.link import FREEZE_PATIENCE

SCALE = float(os.environ.get("DRIVER_CONFORMANCE_TEST_TIME_SCALE") or 1.0)
EVENTUALLY = 5.0 * SCALE
#: Scheduling slack on a loaded machine.
SLACK = 0.5 * SCALE


def serving(driver: ReferenceDriver, topic: str) -> queue.Queue[Any]:
    """A started listener on ``topic`` that answers every call; what it got, in order."""
    got: queue.Queue[Any] = queue.Queue()
    listener = driver.listen(oslo_messaging.Target(topic=topic, server="s"), 1, None)

    def callback(incoming: list[Any]) -> None:
        for message in incoming:
            message.acknowledge()
            got.put(message.message["n"])
            message.reply({"n": message.message["n"]})

    listener.start(callback)
    return got


def timed(fn: Callable[[], Any]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_freeze_and_delay_are_offered(faults: ReferenceFaults) -> None:
    assert {kinds.FREEZE, kinds.DELAY} <= faults.kinds


@pytest.mark.parametrize("retry", [0, 2])
def test_bounded_sends_give_up_on_a_frozen_link(make_driver, faults, retry: int) -> None:
    driver = make_driver()
    target = oslo_messaging.Target(topic=f"t-{uuid.uuid4().hex[:8]}")
    serving(make_driver(), target.topic)
    faults.freeze()
    bound = (retry + 1) * FREEZE_PATIENCE + SLACK
    for send in (lambda: driver.send(target, {}, {"n": 1}, retry=retry),
                 lambda: driver.send_notification(target, {}, {"n": 1}, 2.0, retry=retry)):
        took, error = timed(send)
        assert isinstance(error, oslo_messaging.MessageDeliveryFailure), error
        assert took <= bound, f"gave up after {took:.2f}s, expected at most {bound:.2f}s"
    assert faults.stats.silent_attempts == 2 * (retry + 1)


def test_a_call_on_a_frozen_link_times_out_at_its_timeout(make_driver, faults) -> None:
    driver = make_driver()
    target = oslo_messaging.Target(topic=f"t-{uuid.uuid4().hex[:8]}")
    serving(make_driver(), target.topic)
    assert driver.send(target, {}, {"n": 0}, wait_for_reply=True, timeout=EVENTUALLY) == {"n": 0}
    faults.freeze()
    timeout = 0.5 * SCALE
    took, error = timed(lambda: driver.send(target, {}, {"n": 1}, wait_for_reply=True,
                                            timeout=timeout))
    assert isinstance(error, oslo_messaging.MessagingTimeout), error
    assert timeout * 0.9 <= took <= timeout + SLACK


def test_deliveries_wait_for_the_thaw_and_nothing_is_lost(make_driver, faults) -> None:
    """A message stored before the freeze reaches its listener only after the thaw, once."""
    server, sender = make_driver(), make_driver()
    target = oslo_messaging.Target(topic=f"t-{uuid.uuid4().hex[:8]}")
    got = serving(server, target.topic)
    sender.send(target, {}, {"n": "warm"})
    assert got.get(timeout=EVENTUALLY) == "warm"
    faults.freeze()
    during = threading.Thread(target=sender.send, args=(target, {}, {"n": "during"}),
                              kwargs={"retry": None}, daemon=True)
    during.start()
    with pytest.raises(queue.Empty):
        got.get(timeout=2 * FREEZE_PATIENCE)
    assert during.is_alive(), "an unlimited cast on a frozen link must wait for the thaw"
    faults.heal()
    during.join(EVENTUALLY)
    assert not during.is_alive()
    assert got.get(timeout=EVENTUALLY) == "during"
    assert sender.send(target, {}, {"n": "after"}, wait_for_reply=True,
                       timeout=EVENTUALLY) == {"n": "after"}
    assert got.get(timeout=EVENTUALLY) == "after"
    assert got.empty()


def test_a_delayed_link_slows_every_crossing(make_driver, faults) -> None:
    """A call crosses five times: request there and back, delivery, reply there and back."""
    driver = make_driver()
    target = oslo_messaging.Target(topic=f"t-{uuid.uuid4().hex[:8]}")
    serving(make_driver(), target.topic)
    delay = 0.05 * SCALE
    faults.delay(delay)
    took, error = timed(lambda: driver.send(target, {}, {"n": 1}, wait_for_reply=True,
                                            timeout=EVENTUALLY))
    assert error is None
    assert 5 * delay * 0.9 <= took <= 5 * delay + SLACK, f"a call took {took:.3f}s"
    faults.heal()
    took, error = timed(lambda: driver.send(target, {}, {"n": 2}, wait_for_reply=True,
                                            timeout=EVENTUALLY))
    assert error is None and took < delay, f"after the heal a call took {took:.3f}s"



def test_losing_one_host_moves_the_drivers_to_another(make_driver, faults) -> None:
    """A lost host cuts its connections and refuses new ones; the drivers use the other."""
    server, sender = make_driver(), make_driver()
    target = oslo_messaging.Target(topic=f"t-{uuid.uuid4().hex[:8]}")
    got = serving(server, target.topic)
    assert sender.send(target, {}, {"n": 0}, wait_for_reply=True, timeout=EVENTUALLY) == {"n": 0}
    assert got.get(timeout=EVENTUALLY) == 0
    cuts = faults.stats.connections_cut
    assert faults.lose_host(0) == 0
    assert faults.stats.connections_cut > cuts, "the drivers' connections to host 0 are cut"
    assert sender.send(target, {}, {"n": 1}, wait_for_reply=True, timeout=EVENTUALLY) == {"n": 1}
    assert got.get(timeout=EVENTUALLY) == 1
    assert faults.broker.hosts_down == {0}
    faults.heal()
    assert faults.broker.hosts_down == frozenset()


def test_host_faults_need_two_proxies() -> None:
    from driver_conformance.proxy.injector import HOST_OUTAGE, HostFaults

    class Proxy:
        protocol = None

        def __init__(self) -> None:
            self.outages = 0

        def outage(self) -> None:
            self.outages += 1

    one, two = HostFaults([Proxy()]), HostFaults([Proxy(), Proxy()])
    assert HOST_OUTAGE not in one.kinds and HOST_OUTAGE in two.kinds
    with pytest.raises(kinds.FaultNotSupported):
        one.lose_host(0)
    assert two.lose_host(1) == 1
    assert [p.outages for p in two.proxies] == [0, 1]


def test_a_one_host_url_is_doubled_for_the_multihost_lane() -> None:
    from driver_conformance.plugins.rabbit import doubled_hosts

    assert doubled_hosts("rabbit://u:p@h:5672/v") == "rabbit://u:p@h:5672,u:p@h:5672/v"
    assert doubled_hosts("rabbit://u:p@a:1,u:p@b:2/") == "rabbit://u:p@a:1,u:p@b:2/"
