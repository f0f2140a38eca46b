"""The reference driver as a fake in a user's own unit tests (``driver_conformance.testing``)."""

from __future__ import annotations

import pytest

USER_TESTS = '''
import oslo_messaging


class Echo:
    def echo(self, ctxt, value):
        return value


def test_call_through_the_fake(reference_rpc_transport, reference_conf, reference_url):
    target = oslo_messaging.Target(topic="svc", server="s1")
    server = oslo_messaging.get_rpc_server(reference_rpc_transport, target, [Echo()])
    server.start()
    try:
        other = oslo_messaging.get_rpc_transport(reference_conf, url=reference_url)
        client = oslo_messaging.get_rpc_client(other, oslo_messaging.Target(topic="svc"),
                                               timeout=5)
        assert client.call({}, "echo", value={"k": [1]}) == {"k": [1]}
        other.cleanup()
    finally:
        server.stop()
        server.wait()


SEEN = []


def test_each_test_has_its_own_broker(reference_url):
    SEEN.append(reference_url)


def test_each_test_has_its_own_broker_too(reference_url):
    assert SEEN and reference_url not in SEEN


def test_notifications(reference_notification_transport):
    notifier = oslo_messaging.Notifier(reference_notification_transport, "me",
                                       driver="messagingv2", topics=["n"])
    notifier.info({}, "thing.happened", {"k": 1})
'''


def test_users_get_the_reference_driver_as_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=4)
    assert "driver-conformance" not in result.stdout.str().split("passed")[0].split(
        "collected")[-1], "no conformance run without --driver"
