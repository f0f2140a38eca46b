"""Fixtures for the reference driver's own tests.

Every test gets a private broker (a uuid virtual host), dropped afterwards,
and a fresh ``ConfigOpts`` with oslo.messaging's options registered by
``ConfFixture`` (which also registers the tracing options that otherwise
exist only on the global ``cfg.CONF``).
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Callable, Iterator

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_messaging import conffixture

from driver_conformance.reference import ReferenceDriver, ReferenceFaults, drop_broker, get_broker
from driver_conformance.run import shorten_executor_idle_wait

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(autouse=True, scope="session")
def quick_executor_shutdown() -> None:
    """``RPCServer.wait()`` in milliseconds instead of about 1 s: the kit's own patch.

    The public server's executor cost, not the driver's; it would dominate
    this suite's time.  The same patch a conformance run applies, so these
    tests see the public API as the scenarios do.
    """
    shorten_executor_idle_wait()


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    conf = cfg.ConfigOpts()
    fixture = conffixture.ConfFixture(conf)
    fixture.setUp()
    conf.set_override("control_exchange", "reference-tests")
    yield conf
    fixture.cleanUp()


@pytest.fixture
def url() -> Iterator[str]:
    url = f"reference:///{uuid.uuid4().hex}"
    yield url
    drop_broker(url)


@pytest.fixture
def broker(url: str):
    return get_broker(url)


@pytest.fixture
def faults(url: str) -> Iterator[ReferenceFaults]:
    injector = ReferenceFaults.for_url(url)
    yield injector
    injector.heal()


@pytest.fixture
def make_transport(conf: cfg.ConfigOpts, url: str) -> Iterator[Callable[..., object]]:
    """Build RPC or notification transports on the test's broker; cleaned up after."""
    made: list = []

    def make(kind: str = "rpc", query: str = "") -> oslo_messaging.Transport:
        factory = (oslo_messaging.get_rpc_transport if kind == "rpc"
                   else oslo_messaging.get_notification_transport)
        transport = factory(conf, url=url + query)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.cleanup()


@pytest.fixture
def make_driver(conf: cfg.ConfigOpts, url: str) -> Iterator[Callable[..., ReferenceDriver]]:
    """Build ReferenceDriver instances directly (driver-level tests)."""
    made: list[ReferenceDriver] = []

    def make(query: str = "", exmods: list[str] | None = None) -> ReferenceDriver:
        parsed = oslo_messaging.TransportURL.parse(conf, url + query)
        driver = ReferenceDriver(conf, parsed, default_exchange="reference-tests",
                                 allowed_remote_exmods=exmods or [])
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.cleanup()


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Every ``reference-*`` thread a test started has ended when it is torn down."""
    before = {t for t in threading.enumerate() if t.name.startswith("reference-")}
    yield
    left = [t.name for t in threading.enumerate()
            if t.name.startswith("reference-") and t not in before]
    assert not left, f"threads left behind: {left}"
