"""Listening the way both profiles do: a private :class:`Channel`, and a poll-style
listener the scenario polls itself (:class:`Poller`, :func:`polling`).

Split from :mod:`._support` because these are what the listener, poll and lifecycle
scenarios share, and nothing else needs them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest

from driver_conformance.adapter import POLL
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit, Subscription
from driver_conformance.scenarios._support import Pending, background, publish, send_keyed

#: The clauses a poll scenario relies on to release its poller, and no more: a ``stop()`` or
#: ``cleanup()`` that hangs is judged by their own scenarios, and leaves the others NOT RUN.
#: The poller is stopped while a ``poll()`` runs (:meth:`Poller.stop_while_polling`), the
#: stop ``poll.stop.unblocks`` binds: a driver whose stop() with no poll running hangs is
#: judged by ``poll.stop.returns-without-poll`` alone.
POLL_STOP = "poll.stop.unblocks"
POLL_CLEANUP = "poll.cleanup.blocks"


class Poller:
    """The ``PollStyleListener`` behind one ``listen()``; the scenario is its only poller.

    The scenario stops and cleans it up itself, each call bounded (:meth:`release`),
    so that nothing it started is left to the fixture's teardown.
    """

    def __init__(self, kit: Kit, listener: Any) -> None:
        self.kit = kit
        self.poller = kit.poll_style(listener)
        self.stopped = False
        self.cleaned = False
        self._background: list[Pending] = []

    def poll(self, *, timeout: float | None, batch_size: int = 1,
             batch_timeout: float | None = None, bound: float | None = None) -> Any:
        return self.kit.call(self.poller.poll, timeout=timeout, batch_size=batch_size,
                             batch_timeout=batch_timeout, bound=bound, what="poll()")

    def poll_in_background(self, *, timeout: float | None, batch_size: int = 1,
                           batch_timeout: float | None = None) -> Pending:
        pending = background(self.kit, self.poller.poll, timeout=timeout,
                             batch_size=batch_size, batch_timeout=batch_timeout,
                             what="poll()", bound=self.kit.timing.eventually * 2)
        self._background.append(pending)
        return pending

    @property
    def polling(self) -> bool:
        """Whether a :meth:`poll_in_background` of the scenario's is still in progress."""
        return any(not pending.done.is_set() for pending in self._background)

    def stop(self) -> None:
        """``stop()``, bounded as ``poll.stop.unblocks`` bounds the poll it ends: by the
        kit's "eventually" ceiling, not the call bound."""
        self.stopped = True
        self.kit.call(self.poller.stop, what="PollStyleListener.stop()",
                      bound=self.kit.timing.eventually)

    def stop_while_polling(self) -> None:
        """``stop()`` the way oslo's server does: from another thread, while one polls.

        PollStyleListenerAdapter's thread polls until its ``stop()`` has
        returned, so the listener's ``stop()`` always has a ``poll()`` in
        progress or one coming after it; that is the stop ``poll.stop.unblocks``
        binds.  A scenario that has judged what it came for stops its poller
        this way, so a driver whose ``stop()`` waits for a ``poll()`` to notice
        it (rabbit's AMQPListener) is judged on that by
        ``poll.stop.returns-without-poll`` alone, and every other poll scenario
        neither waits out the call bound nor ends NOT RUN for it.  With a
        ``poll()`` of the scenario's already in progress, a plain :meth:`stop`
        is the same thing.  What the polls return is left unacknowledged, as a
        stopped server leaves what it did not dispatch.
        """
        if self.polling:
            self.stop()
            return
        self.stopped = True
        stop_returned = threading.Event()

        def poll_until_stopped() -> list[Any]:
            held: list[Any] = []
            while not stop_returned.is_set():
                try:
                    held.extend(self.poller.poll(timeout=self.kit.timing.short) or [])
                except Exception:  # judged by poll.errors.no-raise's scenarios, not here
                    break
            return held

        runner = background(self.kit, poll_until_stopped, what="poll() until stop() returned",
                            bound=self.kit.timing.eventually * 2)
        try:
            self.kit.call(self.poller.stop, what="PollStyleListener.stop() while a poll() runs",
                          bound=self.kit.timing.eventually)
        finally:
            stop_returned.set()
        runner.result(self.kit.timing.eventually)

    def cleanup(self) -> None:
        self.cleaned = True
        self.kit.call(self.poller.cleanup, what="PollStyleListener.cleanup()")

    def release(self) -> None:
        """Stop (:meth:`stop_while_polling`) and clean up what is still running, relying on
        the stop and cleanup clauses.

        ``cleanup()`` is called even when ``stop()`` failed, so the poller's resources
        go; the first failure then ends the scenario NOT RUN, naming the clause.
        """
        failure: BaseException | None = None
        for done, step, clause in ((self.stopped, self.stop_while_polling, POLL_STOP),
                                   (self.cleaned, self.cleanup, POLL_CLEANUP)):
            if done:
                continue
            try:
                with self.kit.relying_on(clause):
                    step()
            except pytest.skip.Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def release_after(self, failure: BaseException) -> None:
        """:meth:`release` once the scenario failed: a second failure becomes a note on
        the first, which stays the scenario's verdict."""
        try:
            self.release()
        except (Exception, pytest.skip.Exception) as second:  # noted on the first failure
            failure.add_note(f"driver-conformance: releasing the poller then failed too: "
                             f"{type(second).__name__}: {second}")


class Channel:
    """A private address a scenario listens on and sends keyed messages to, by either path.

    The listener, poll-style and IncomingMessage clauses belong to both profiles:
    one listener machinery serves RPC servers and notification listeners.  A
    scenario about them uses the RPC path (a server's own address, casts) when
    the driver claims rpc, and otherwise a notification topic of its own
    (``send_notification`` at ``info``), so a notifications-only driver (oslo's
    kafka) is judged on them instead of leaving them UNSUPPORTED.  Nobody else
    listens on the address, so whatever arrives there was sent to it.
    """

    def __init__(self, kit: Kit, driver: Any) -> None:
        self.kit = kit
        self.driver = driver
        self.rpc = bool(kit.caps.rpc)
        if self.rpc:
            self.target = kit.names.target(server=True)
        else:
            kit.require("notifications")
            self.topic = kit.names.topic()

    @property
    def path(self) -> str:
        """Which path the channel takes, for assertion messages."""
        return "casts to a server" if self.rpc else "notifications to a topic"

    def listen(self, *, batch_size: int = 1, batch_timeout: float | None = None,
               inbox: Inbox | None = None, start: bool = True) -> Subscription:
        """A listener on the channel, started with an inbox unless ``start=False``."""
        if self.rpc:
            return self.kit.listen(self.driver, self.target, batch_size=batch_size,
                                   batch_timeout=batch_timeout, inbox=inbox, start=start)
        return self.kit.listen_notifications(
            self.driver, [(oslo_messaging.Target(topic=self.topic), "info")],
            batch_size=batch_size, batch_timeout=batch_timeout, inbox=inbox, start=start)

    def raw_listener(self, batch_size: int = 1, batch_timeout: float | None = None) -> Any:
        """What the driver's ``listen()`` (or ``listen_for_notifications()``) returns, as is:
        the caller owns it (:class:`Poller`)."""
        if self.rpc:
            return self.kit.call(self.driver.listen, self.target, batch_size, batch_timeout,
                                 what="driver.listen()")
        return self.kit.call(self.driver.listen_for_notifications,
                             [(oslo_messaging.Target(topic=self.topic), "info")], None,
                             batch_size, batch_timeout,
                             what="driver.listen_for_notifications()")

    def send(self, key: str, *, record: bool = True, copies: int = 1) -> None:
        """A keyed cast or notification to the channel (recorded in the history when
        ``record``, owing ``copies``)."""
        if self.rpc:
            send_keyed(self.kit, self.driver, self.target, key, record=record, copies=copies)
        else:
            publish(self.kit, self.driver, None, self.topic, "info", key, record=record,
                    copies=copies)


@contextlib.contextmanager
def polling(kit: Kit, *, clause: str | None = None) -> Iterator[tuple[Channel, Poller]]:
    """A poll-style driver's :class:`Channel` and its un-started poller, released after
    the block.

    With ``clause``, the block is that clause's judgment, so a poller that then fails
    to stop or clean up leaves the clause judged (:meth:`Poller.release`).
    """
    channel = Channel(kit, kit.driver(listener_style=POLL))
    poller = Poller(kit, channel.raw_listener())
    try:
        with kit.clause(clause) if clause else contextlib.nullcontext():
            yield channel, poller
    except BaseException as failure:
        poller.release_after(failure)
        raise
    poller.release()
