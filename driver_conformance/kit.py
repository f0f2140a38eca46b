"""The ``kit`` fixture: what a scenario uses to build, drive and observe a driver.

Every driver call goes through :meth:`Kit.call`, so it is bounded; every
driver, listener and server a scenario makes is torn down after it, bounded
too, in parallel where the public API is slow to stop.  Names come from
:class:`Names`, so scenarios never see each other's messages.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import oslo_messaging
from oslo_messaging import transport as om_transport
from oslo_messaging._drivers import base as driver_base

from driver_conformance import outcomes
from driver_conformance.adapter import CALLBACK, POLL, StoredView
from driver_conformance.bounded import DriverHung, call_bounded
from driver_conformance.catalog import load_catalog
from driver_conformance.faults import FaultInjector
from driver_conformance.history import History
from driver_conformance.inbox import Inbox
from driver_conformance.judging import Judgments
from driver_conformance.run import ConformanceRun

#: The key of :attr:`ConformanceRun.observed` that says which listeners ``listen()`` returns.
LISTENER_STYLE = "listener style"


class Names:
    """Unique exchange, topic, server and pool names under the run's prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def unique(self, kind: str) -> str:
        return f"{self.prefix}-{kind}-{uuid.uuid4().hex[:10]}"

    def exchange(self) -> str:
        return self.unique("x")

    def topic(self) -> str:
        return self.unique("t")

    def server(self) -> str:
        return self.unique("s")

    def pool(self) -> str:
        return self.unique("p")

    def target(self, *, server: bool = False, fanout: bool = False, exchange: bool = True):
        """A fresh ``Target`` with a unique exchange and topic (and server)."""
        return oslo_messaging.Target(
            exchange=self.exchange() if exchange else None,
            topic=self.topic(),
            server=self.server() if server else None,
            fanout=fanout or None,
        )


class Subscription:
    """A started listener and the inbox it delivers to."""

    def __init__(self, kit: Kit, listener: Any, inbox: Inbox, what: str) -> None:
        self.kit = kit
        self.listener = listener
        self.inbox = inbox
        self.what = what
        self.started = False
        self.stopped = False
        self.cleaned = False

    def start(self) -> None:
        """Start a subscription made with ``start=False``, delivering to its inbox."""
        if not self.started:
            self.started = True
            self.kit.call(self.listener.start, self.inbox, what=f"{self.what}.start()")

    def stop(self) -> None:
        # oslo's PollStyleListenerAdapter.stop() joins its thread, which fails
        # if start() never ran: only stop what was started.
        if self.started and not self.stopped:
            self.stopped = True
            self.kit.call(self.listener.stop, what=f"{self.what}.stop()")
        self.inbox.close()

    def cleanup(self) -> None:
        self.stop()
        if not self.cleaned:
            self.cleaned = True
            self.kit.call(self.listener.cleanup, what=f"{self.what}.cleanup()")


class Kit:
    """Per-scenario helpers; see the module docstring."""

    def __init__(self, run: ConformanceRun, judgments: Judgments | None = None) -> None:
        self.run = run
        self.timing = run.timing
        self.caps = run.capabilities
        self.names = Names(run.prefix)
        self.history = History()
        self.judgments = judgments or Judgments([])
        #: Driver calls of this scenario that did not return within their bound.
        self.hung: list[str] = []
        self._teardown: list[tuple[str, Callable[[], None]]] = []
        self._servers: list[Any] = []
        self._faults_used = False
        #: The listener style each driver of the scenario was built for, by id.
        self._styles: dict[int, str] = {}
        self.errors: list[str] = []

    # -- judging ----------------------------------------------------------------------
    def clause(self, clause_id: str, *, soft: bool = False
               ) -> contextlib.AbstractContextManager[None]:
        """Judge ``clause_id`` by the block (see :mod:`driver_conformance.judging`)."""
        return self.judgments.clause(clause_id, soft=soft)

    def relying_on(self, clause_id: str) -> contextlib.AbstractContextManager[None]:
        """A block that works only if ``clause_id`` holds; if it fails, nothing is judged."""
        if clause_id not in load_catalog():
            raise ValueError(f"relying_on({clause_id!r}): no such clause in the catalog")
        return self.judgments.relying_on(clause_id)

    def judged(self, clause_id: str) -> bool:
        """Whether this run judges ``clause_id`` (``--clause`` may select others only)."""
        return self.judgments.is_judged(clause_id)

    def judge_history(self) -> None:
        """Fail the scenario if its delivery history is not clean and it never looked."""
        if self.history.checked or not self.history.wired:
            return
        counts = self.history.counts()
        if counts.clean:
            return
        message = f"the delivery history of the scenario is not clean: {counts}"
        if self.history.clause is not None:
            with self.clause(self.history.clause):
                raise AssertionError(message)
        raise AssertionError(message)

    # -- bounded calls ----------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, what: str, bound: float | None = None,
             **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` bounded by ``bound`` (default: the run's call bound)."""
        try:
            return call_bounded(fn, *args, bound=bound or self.timing.call_bound, what=what,
                                **kwargs)
        except DriverHung:
            self.hung.append(what)
            raise

    # -- requirements ---------------------------------------------------------------
    def require(self, feature: str) -> None:
        """End the scenario as UNSUPPORTED unless the driver declares ``feature``.

        ``feature`` is an OPTIONAL feature (``requeue``, ``pools``) or a profile
        (``rpc``, ``notifications``).  Scenarios call it first, before they
        build anything; the kit's RPC methods (:meth:`send`, :meth:`listen`,
        :meth:`rpc_transport`) and notification methods call it too, so a
        scenario that forgets ends UNSUPPORTED rather than failing on the
        driver's ``NotImplementedError``.
        """
        if not getattr(self.caps, feature):
            outcomes.unsupported(f"the adapter declares no support for {feature}")

    def faults(self, *kinds: str) -> FaultInjector:
        """The adapter's fault injector; NOT RUN unless it can produce every kind."""
        injector = self.run.backend.faults if self.run.backend else None
        if injector is None:
            outcomes.not_run(f"adapter {self.run.adapter.name!r} has no fault injection")
        missing = [k for k in kinds if k not in self.run.fault_kinds]
        if missing:
            outcomes.not_run(
                f"adapter {self.run.adapter.name!r} cannot inject {', '.join(missing)}"
            )
        if not self._faults_used:
            self._faults_used = True
            self._teardown.append(("faults.heal()", injector.heal))
        return injector

    def stored_view(self) -> StoredView:
        """The adapter's raw view of stored notifications; NOT RUN when it has none."""
        view = self.run.backend.stored if self.run.backend else None
        if view is None:
            outcomes.not_run(
                f"adapter {self.run.adapter.name!r} has no raw view of stored notifications "
                "(Backend.stored: subclass driver_conformance.StoredView)")
        return view

    # -- drivers and listeners ----------------------------------------------------------
    def driver(self, *, listener_style: str = CALLBACK,
               allowed_remote_exmods: list[str] | None = None) -> Any:
        """A new driver instance, cleaned up (bounded) after the scenario.

        ``listener_style=POLL`` asks the adapter for poll-style listeners; what
        the driver's ``listen()`` then returns decides whether the scenario
        applies (:meth:`poll_style`).
        """
        if listener_style == POLL and self.run.observed.get(LISTENER_STYLE) == CALLBACK:
            self._not_applicable_to_callbacks()
        driver = self.call(
            self.run.make_driver,
            listener_style=listener_style,
            allowed_remote_exmods=allowed_remote_exmods,
            what="driver construction",
        )
        self._teardown.append(("driver.cleanup()", self._track_cleanup(driver)))
        self._styles[id(driver)] = listener_style
        return driver

    @staticmethod
    def _track_cleanup(driver: Any) -> Callable[[], None]:
        """The teardown of ``driver``: its ``cleanup()``, unless the scenario already called it.

        A scenario that cleans a driver up itself (directly or by ``transport.cleanup()``)
        has that call judged; teardown calling it again would judge a second cleanup in
        every such scenario, which is ``driver.cleanup.repeatable``'s alone, and a driver
        whose first cleanup hung would hang teardown too.
        """
        cleanup = driver.cleanup
        called: list[bool] = []

        def tracked() -> Any:
            called.append(True)
            return cleanup()

        driver.cleanup = tracked
        return lambda: None if called else cleanup()

    def poll_style(self, listener: Any) -> driver_base.PollStyleListener:
        """The ``PollStyleListener`` a ``listen()`` returned (bare, or inside oslo's adapter).

        The contract lets ``listen()`` return either style "depending on the
        driver's preference": when it returns a callback ``Listener``, the
        scenario does not apply (NOT APPLICABLE), and the run remembers it so
        the poll-style scenarios after it end at once.
        """
        poller = getattr(listener, "_poll_style_listener", listener)
        if isinstance(poller, driver_base.PollStyleListener):
            self.run.observed.setdefault(LISTENER_STYLE, POLL)
            return poller
        self.run.observed[LISTENER_STYLE] = CALLBACK
        self._not_applicable_to_callbacks(type(listener).__name__)

    def _not_applicable_to_callbacks(self, returned: str = "a callback Listener") -> NoReturn:
        outcomes.not_applicable(
            f"the driver's listen() returns {returned}, not a PollStyleListener; the "
            "contract leaves the listener style to the driver's preference, so the "
            "poll-style clauses and cases do not apply to it")

    def _check_style(self, driver: Any, listener: Any) -> None:
        if self._styles.get(id(driver)) == POLL:
            self.poll_style(listener)

    def _start(self, listener: Any, inbox: Inbox, what: str, batch_size: int,
               batch_timeout: float | None) -> Subscription:
        if isinstance(listener, driver_base.PollStyleListener):
            # A bare PollStyleListener cannot be started by the public API's
            # MessageHandlingServer; wrap it so the scenario can go on, and let
            # the `listen.returns.listener-with-start` clause report the defect.
            listener = driver_base.PollStyleListenerAdapter(listener, batch_size, batch_timeout)
        sub = Subscription(self, listener, inbox, what)
        self._teardown.append((f"{what}.cleanup()", sub.cleanup))
        sub.start()
        return sub

    def listen(self, driver: Any, target: Any, *, batch_size: int = 1,
               batch_timeout: float | None = None, inbox: Inbox | None = None,
               start: bool = True) -> Subscription:
        """``driver.listen(target, ...)``, started with an inbox (unless ``start=False``).

        UNSUPPORTED when the adapter declares no RPC (see :meth:`require`).
        """
        self.require("rpc")
        listener = self.call(driver.listen, target, batch_size, batch_timeout,
                             what="driver.listen()")
        self._check_style(driver, listener)
        inbox = inbox or Inbox(str(target.server or target.topic))
        if not start:
            sub = Subscription(self, listener, inbox, "listener")
            self._teardown.append(("listener.cleanup()", sub.cleanup))
            return sub
        return self._start(listener, inbox, "listener", batch_size, batch_timeout)

    def listen_notifications(self, driver: Any, targets_and_priorities: list[tuple[Any, str]],
                             *, pool: str | None = None, batch_size: int = 1,
                             batch_timeout: float | None = None, inbox: Inbox | None = None,
                             start: bool = True) -> Subscription:
        """``driver.listen_for_notifications(...)``, started with an inbox (unless
        ``start=False``); UNSUPPORTED when the adapter declares no notifications."""
        self.require("notifications")
        listener = self.call(driver.listen_for_notifications, targets_and_priorities, pool,
                             batch_size, batch_timeout,
                             what="driver.listen_for_notifications()")
        self._check_style(driver, listener)
        inbox = inbox or Inbox(pool or "notifications")
        if not start:
            sub = Subscription(self, listener, inbox, "notification listener")
            self._teardown.append(("notification listener.cleanup()", sub.cleanup))
            return sub
        return self._start(listener, inbox, "notification listener", batch_size,
                           batch_timeout)

    def send(self, driver: Any, target: Any, message: dict[str, Any], *,
             ctxt: dict[str, Any] | None = None, bound: float | None = None,
             **kwargs: Any) -> Any:
        """``driver.send(target, ctxt, message, **kwargs)``, bounded; UNSUPPORTED without rpc."""
        self.require("rpc")
        return self.call(driver.send, target, ctxt or {}, message, what="driver.send()",
                         bound=bound, **kwargs)

    def notify(self, driver: Any, target: Any, message: dict[str, Any], *,
               version: float = 2.0, retry: int | None = -1,
               ctxt: dict[str, Any] | None = None) -> None:
        """``driver.send_notification(target, ctxt, message, version, retry)``, bounded.

        ``retry`` defaults to -1, what the public ``Notifier`` passes when it is
        given none; ``retry=None`` is a case of its own, sent only by the
        scenario about it (``notify.retry.honoured``), so that a driver refusing
        it fails that clause alone.  UNSUPPORTED when the adapter declares no
        notifications.
        """
        self.require("notifications")
        self.call(driver.send_notification, target, ctxt or {}, message, version, retry,
                  what="driver.send_notification()")

    # -- the public oslo.messaging API ------------------------------------------------
    def rpc_transport(self, **driver_kwargs: Any) -> Any:
        """An ``RPCTransport`` on a new driver; UNSUPPORTED when the adapter declares no rpc."""
        self.require("rpc")
        return om_transport.RPCTransport(self.driver(**driver_kwargs))

    def notification_transport(self, **driver_kwargs: Any) -> Any:
        """A ``NotificationTransport`` on a new driver; UNSUPPORTED without notifications."""
        self.require("notifications")
        return om_transport.NotificationTransport(self.driver(**driver_kwargs))

    def rpc_server(self, transport: Any, target: Any, endpoints: list[Any]) -> Any:
        """A started ``RPCServer`` (threading executor), stopped after the scenario."""
        server = oslo_messaging.get_rpc_server(transport, target, endpoints)
        self.call(server.start, what="RPCServer.start()")
        self._servers.append(server)
        return server

    def rpc_client(self, transport: Any, target: Any, **kwargs: Any) -> Any:
        return oslo_messaging.get_rpc_client(transport, target, **kwargs)

    def notifier(self, transport: Any, *, topics: list[str], driver: str = "messagingv2",
                 **kwargs: Any) -> Any:
        return oslo_messaging.Notifier(transport, publisher_id="conformance", driver=driver,
                                       topics=topics, **kwargs)

    def notification_listener(self, transport: Any, targets: list[Any], endpoints: list[Any],
                              *, pool: str | None = None, allow_requeue: bool = False,
                              batch_size: int | None = None,
                              batch_timeout: float | None = None) -> Any:
        """A started notification (or batch notification) listener, stopped afterwards."""
        if batch_size is None:
            server = oslo_messaging.get_notification_listener(
                transport, targets, endpoints, pool=pool,
                allow_requeue=allow_requeue)
        else:
            server = oslo_messaging.get_batch_notification_listener(
                transport, targets, endpoints, pool=pool,
                allow_requeue=allow_requeue, batch_size=batch_size,
                batch_timeout=batch_timeout)
        self.call(server.start, what="notification listener start()")
        self._servers.append(server)
        return server

    def stop_servers(self, servers: Iterable[Any] | None = None) -> None:
        """Stop and wait for servers in parallel (each takes about a second to wait)."""
        servers = list(self._servers if servers is None else servers)
        errors: list[str] = []

        def stop(server: Any) -> None:
            try:
                server.stop()
                server.wait()
            except Exception as exc:  # reported, not raised: teardown goes on
                errors.append(f"server stop: {exc!r}")

        threads = [threading.Thread(target=stop, args=(s,), daemon=True,
                                    name="conformance-server-stop") for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.timing.call_bound)
            if t.is_alive():
                errors.append("a server did not stop within the call bound")
        for s in servers:
            if s in self._servers:
                self._servers.remove(s)
        self.errors.extend(errors)

    # -- teardown -------------------------------------------------------------------
    def on_teardown(self, action: Callable[[], None], what: str = "teardown action") -> None:
        """Run ``action`` (bounded) when the scenario ends, before what was made before it."""
        self._teardown.append((what, action))

    def close(self) -> list[str]:
        """Tear down everything the scenario made; return what went wrong.

        Each call has the call bound until one hangs; the calls after it have a
        short one (:attr:`Timing.after_hang`).  A teardown with a hung call has
        already failed, so a shorter bound cannot change its outcome, only its
        length: a driver whose ``stop()`` hangs usually hangs every cleanup
        after it as well, and waiting out the full bound for each made one such
        scenario's teardown take a minute.
        """
        self.stop_servers()
        hung = False
        for what, action in reversed(self._teardown):
            try:
                self.call(action, what=what, bound=self.timing.after_hang if hung else None)
            except DriverHung as exc:
                hung = True
                self.errors.append(str(exc))
            except Exception as exc:
                self.errors.append(f"{what} raised {exc!r}")
        self._teardown.clear()
        return self.errors

    @contextlib.contextmanager
    def sending(self, key: str, copies: int = 1) -> Iterator[None]:
        """Record the send of ``key`` in the history: invoked, then ok/failed/unknown.

        ``copies`` is how many receipts the send owes once delivered (a fanout
        to three listeners owes three).
        """
        from driver_conformance import history as h

        self.history.invoked(key, copies)
        try:
            yield
        except DriverHung:
            self.history.finished(key, h.UNKNOWN)
            raise
        except oslo_messaging.MessagingTimeout:
            self.history.finished(key, h.UNKNOWN)
            raise
        except Exception:
            self.history.finished(key, h.FAILED)
            raise
        else:
            self.history.finished(key, h.OK)
