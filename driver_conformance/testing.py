"""pytest fixtures for your own unit tests: the reference driver as a fake transport.

Installing ``driver-conformance`` makes these fixtures available in every
pytest run (the kit's plugin registers this module; nothing else of the kit
is active without ``--driver``)::

    def test_my_service_answers(reference_rpc_transport):
        server = oslo_messaging.get_rpc_server(reference_rpc_transport, target,
                                               [MyEndpoint()])
        server.start()
        client = oslo_messaging.get_rpc_client(reference_rpc_transport, target)
        assert client.call({}, "ping") == "pong"
        server.stop(); server.wait()

Each test gets a broker of its own (a fresh virtual host of ``reference://``),
so no test sees another's messages, and the broker is dropped afterwards.
Unlike ``fake://`` the reference driver keeps the contract: separate
transports on the same URL talk to each other, fanout reaches every
listener, a cast to a topic reaches one, replies are routed to their caller,
timeouts and remote exceptions behave as on a real broker
(:mod:`driver_conformance.reference`).  ``reference_url`` gives the URL, to
build further transports on the same broker (a client's and a server's).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def reference_url() -> Iterator[str]:
    """``reference:///<fresh vhost>``: a private in-process broker, dropped after the test."""
    url = f"reference:///test-{uuid.uuid4().hex}"
    yield url
    from driver_conformance.reference.vhosts import drop_broker

    drop_broker(url)


@pytest.fixture
def reference_conf() -> Any:
    """A private ``oslo_config.cfg.ConfigOpts`` with every option oslo.messaging reads."""
    from driver_conformance.configuration import base_conf

    return base_conf()


@pytest.fixture
def reference_rpc_transport(reference_conf: Any, reference_url: str) -> Iterator[Any]:
    """An RPC transport on the test's private broker, cleaned up after the test."""
    import oslo_messaging

    transport = oslo_messaging.get_rpc_transport(reference_conf, url=reference_url)
    yield transport
    transport.cleanup()


@pytest.fixture
def reference_notification_transport(reference_conf: Any, reference_url: str
                                     ) -> Iterator[Any]:
    """A notification transport on the test's private broker, cleaned up after the test."""
    import oslo_messaging

    transport = oslo_messaging.get_notification_transport(reference_conf, url=reference_url)
    yield transport
    transport.cleanup()
