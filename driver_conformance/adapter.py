"""What an adapter is: the object that wires one driver under test into the kit.

An adapter is handed to the kit by the :func:`~driver_conformance.hookspecs.conformance_adapters`
hook.  It knows how to reach the driver's backend, how to build the driver,
which optional parts of the contract the driver claims, and how to keep one
run's names apart from another's.  Everything else (the scenarios, the timing,
the verdicts) is the kit's, and is the same for every driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from driver_conformance.faults import FaultInjector
from driver_conformance.stored import StoredView

if TYPE_CHECKING:
    from driver_conformance.brokers.janitor import Janitor

#: Listener styles a driver may hand back from ``listen()``.
CALLBACK = "callback"
POLL = "poll"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """The optional parts of the contract a driver declares.

    Only what the contract leaves optional can be declared unsupported: the
    OPTIONAL features (``requeue``, ``pools``) and the two profiles (``rpc``,
    ``notifications``: a driver may implement one of them only).  A MUST
    cannot be declared away; ``call_monitor``, once a field, is accepted for
    a while with a ``DeprecationWarning`` and ignored.

    Declarations are checked against behaviour: a feature declared supported
    that does not work fails its clauses, and a feature declared unsupported
    whose call does not refuse (``require_features`` not raising,
    ``listen_for_notifications`` with a pool not raising
    ``NotImplementedError``) fails the declaration clause.

    What is not declared here is observed: the listener style a driver's
    ``listen()`` returns (poll-style clauses do not apply to a driver whose
    listeners are callbacks), and the fault kinds the adapter's injector can
    produce (:attr:`Backend.faults`, :attr:`FaultInjector.kinds`).
    """

    rpc: bool = True
    notifications: bool = True
    pools: bool = True
    requeue: bool = True
    #: No longer declarable, and ignored: see :data:`CALL_MONITOR_IGNORED`.
    call_monitor: dataclasses.InitVar[bool | None] = None

    def __post_init__(self, call_monitor: bool | None) -> None:
        if call_monitor is not None:
            warnings.warn(CALL_MONITOR_IGNORED, DeprecationWarning, stacklevel=3)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: What an adapter passing ``Capabilities(call_monitor=...)`` is told.
CALL_MONITOR_IGNORED = (
    "Capabilities(call_monitor=...) is ignored: heartbeat() and call_monitor_timeout are "
    "MUST clauses of the driver contract, judged for every driver that declares rpc; "
    "remove the argument (only requeue, pools and the rpc and notifications profiles "
    "can be declared unsupported)")


@dataclasses.dataclass
class Backend:
    """One run's view of the backend, as prepared by :meth:`Adapter.backend`.

    ``url`` is the transport URL the drivers under test are built with; it may
    differ from the URL the user gave (a proxy in front of the broker, a fresh
    virtual host).  ``faults`` is None when the adapter cannot inject faults,
    ``stored`` when it has no raw view of stored notifications.
    """

    url: str
    faults: FaultInjector | None = None
    stored: StoredView | None = None
    #: Free-form facts for reports (broker version, ...); never credentials.
    facts: dict[str, str] = dataclasses.field(default_factory=dict)


class BackendUnavailable(Exception):
    """The backend cannot be reached; the message names the host, not the password."""


class Adapter:
    """Base class for adapters; subclass it and override what your driver needs.

    The defaults describe a driver that is loaded by oslo.messaging from the
    transport URL's scheme, needs no backend preparation, and declares the
    capabilities given in :attr:`capabilities`.
    """

    #: The name users pass to ``--driver``.
    name: str = ""
    #: One line shown by ``driver-conformance list``.
    description: str = ""
    #: The transport URL used when the user gives no ``--transport-url``.
    default_url: str = ""
    #: Port assumed for a URL host given without one (5672 is AMQP's).
    default_port: int = 5672
    #: Seconds (before ``--time-scale``) a scenario waits to be sure nothing more
    #: arrives.  Long enough for the backend's worst delivery latency under load;
    #: every extra tenth of a second costs about a second over the suite.
    quiet_window: float = 0.5

    def validate_url(self, url: str) -> None:
        """Raise ``BadTransportURL`` or ``NoSuchDriver`` (one line, no password) for a bad URL.

        Called before anything connects, so that a typo is a usage error and
        not a broker timeout.  The default checks that the URL parses and that
        an oslo.messaging driver is installed for its scheme.
        """
        from driver_conformance.drivers import check_loadable
        from driver_conformance.urls import parse_url

        parse_url(cfg.ConfigOpts(), url)
        check_loadable(url)

    def get_capabilities(self, url: str) -> Capabilities:
        """The capabilities the driver at ``url`` declares."""
        return Capabilities()

    def option_overrides(self) -> Mapping[str, Mapping[str, Any]]:
        """Configuration overrides that make the driver fast under test.

        Keys are option group names (``"DEFAULT"`` for the default group),
        values map option names to values, e.g.
        ``{"oslo_messaging_rabbit": {"kombu_reconnect_delay": 0.1}}``.
        """
        return {}

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        """Prepare the backend for one run and tear it down afterwards.

        ``prefix`` starts every exchange, topic, server and pool name the kit
        uses in this run (and pytest-xdist worker); teardown deletes whatever
        the run declared under it.  Raise :class:`BackendUnavailable` when the
        backend cannot be reached, within a few seconds.  The default checks
        that some host of a networked URL accepts TCP connections.
        """
        from driver_conformance.urls import unreachable_reason

        reason = unreachable_reason(url, self.default_port)
        if reason:
            raise BackendUnavailable(reason)
        yield Backend(url=url)

    def janitor(self, url: str, prefix: str) -> Janitor:
        """Who deletes what a run of ``prefix`` leaves on the backend at ``url``.

        The default is the kit's janitor for the URL's scheme
        (:func:`driver_conformance.brokers.janitor.janitor_for`): rabbit URLs
        are cleaned whatever the adapter, in-process backends need nothing,
        and any other networked backend is reported as not cleaned.  Override
        it when the adapter knows better (a private broker it stops itself:
        return ``NothingToClean("...")``) or can enumerate its backend.
        """
        from driver_conformance.brokers.janitor import janitor_for

        return janitor_for(url, prefix)

    def make_driver(
        self,
        conf: cfg.ConfigOpts,
        url: str,
        *,
        default_exchange: str,
        allowed_remote_exmods: list[str],
        listener_style: str = CALLBACK,
    ) -> Any:
        """Build one driver instance (a ``BaseDriver``) for ``url``.

        The default loads the driver from the ``oslo.messaging.drivers``
        entry-point group, keyed by the URL's scheme, exactly as
        ``oslo_messaging.get_transport`` does.
        """
        from driver_conformance.drivers import load_driver

        return load_driver(
            conf,
            url,
            default_exchange=default_exchange,
            allowed_remote_exmods=allowed_remote_exmods,
        )
