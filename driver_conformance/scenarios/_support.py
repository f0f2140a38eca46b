"""Helpers shared by the scenario modules: waiting on keyed deliveries and blocked calls.

They live here rather than in the kit proper because they encode how the
scenarios of this suite observe a driver (a ``key`` in every message, a
blocking call played out on its own thread); the kit's fixtures stay neutral.
The leading underscore keeps the module out of scenario collection.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import oslo_messaging
import pytest

from driver_conformance.adapter import CALLBACK, POLL
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit, Subscription

#: Both listener styles, for scenarios parametrized over them.
STYLES = [CALLBACK, POLL]


class Tally:
    """Which keys arrived where, across several listeners, with one condition to wait on.

    With ``history=True`` every receipt is also recorded in ``kit.history``, for
    scenarios about loss and duplication (they record their sends with
    ``kit.sending``); addressing scenarios that send to addresses nobody
    listens on leave it off, so the history does not count those as lost.
    """

    def __init__(self, kit: Kit, *, history: bool = True) -> None:
        self.kit = kit
        self.history = history
        self._cond = threading.Condition()
        self._at: dict[str, list[str]] = collections.defaultdict(list)
        self._total = 0

    def record(self, where: str, key: str) -> None:
        if self.history:
            self.kit.history.received(key, where)
        with self._cond:
            self._at[where].append(key)
            self._total += 1
            self._cond.notify_all()

    def inbox(self, where: str, *, hold: threading.Event | None = None) -> Inbox:
        """An inbox recording each message's ``key``; with ``hold``, the callback then
        blocks until ``hold`` is set (the listener is busy), bounded by the call bound."""

        def on_message(message: Any) -> None:
            self.record(where, key_of(message.message))
            if hold is not None:
                hold.wait(self.kit.timing.call_bound)

        return Inbox(where, on_message=on_message)

    def wait_total(self, count: int, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._total >= count, timeout):
                raise AssertionError(
                    f"expected {count} deliveries within {timeout:.2f}s, got {self._total}: "
                    f"{self.describe()}"
                )

    def wait_each(self, names: list[str], count: int, timeout: float) -> None:
        """Wait until every listener in ``names`` has at least ``count`` deliveries."""
        with self._cond:
            if not self._cond.wait_for(
                    lambda: all(len(self._at[n]) >= count for n in names), timeout):
                raise AssertionError(
                    f"expected each of {names} to get {count} message(s) within "
                    f"{timeout:.2f}s; got {self.describe()}"
                )

    def quiet(self, window: float) -> None:
        """One quiet window: wait it out (waking on deliveries) so late extras are counted."""
        deadline = time.monotonic() + window
        with self._cond:
            while (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)

    def keys(self, where: str) -> list[str]:
        with self._cond:
            return list(self._at[where])

    def total(self) -> int:
        with self._cond:
            return self._total

    def where(self, key: str) -> list[str]:
        """The listeners ``key`` reached, once per delivery."""
        with self._cond:
            return sorted(n for n, keys in self._at.items() for k in keys if k == key)

    def describe(self) -> str:
        with self._cond:
            return repr({n: sorted(k) for n, k in self._at.items()})


def key_of(body: Any) -> str:
    """The scenario's ``key`` from a received body (RPC message or notification)."""
    if isinstance(body, dict):
        if "key" in body:
            return str(body["key"])
        payload = body.get("payload")
        if isinstance(payload, dict) and "key" in payload:
            return str(payload["key"])
        args = body.get("args")
        if isinstance(args, dict) and "key" in args:
            return str(args["key"])
    return f"<no key in {body!r}>"


@contextlib.contextmanager
def busy() -> Iterator[threading.Event]:
    """An event that keeps listeners busy in their callbacks until it is set; always set
    on the way out, so teardown never waits on a held callback."""
    event = threading.Event()
    try:
        yield event
    finally:
        event.set()


def target(exchange: str | None, topic: str, server: str | None = None,
           fanout: bool = False) -> oslo_messaging.Target:
    return oslo_messaging.Target(exchange=exchange, topic=topic, server=server,
                                 fanout=fanout or None)


def send_keyed(kit: Kit, driver: Any, to: oslo_messaging.Target, key: str, *,
               record: bool = True) -> None:
    """A cast carrying ``key``; recorded in the history when ``record``."""
    if record:
        with kit.sending(key):
            kit.send(driver, to, {"key": key})
    else:
        kit.send(driver, to, {"key": key})


def assert_at(tally: Tally, expected: dict[str, set[str]]) -> None:
    """Each listener received exactly the keys expected of it, each once."""
    problems = []
    for name, keys in expected.items():
        got = tally.keys(name)
        if sorted(got) != sorted(keys):
            problems.append(f"{name}: expected {sorted(keys)}, got {sorted(got)}")
    assert not problems, "; ".join(problems)


class ConformanceError(Exception):
    """An application exception defined in a module the caller can allow.

    It takes two positional arguments so that a rebuilt instance can be
    compared argument by argument with the one the server raised.
    """


class Pending:
    """A blocking call run on its own thread, so the scenario can act while it blocks.

    A caller blocked in ``send(wait_for_reply=True)`` is the normal state of an
    RPC call; the scenario has to play the server meanwhile.  The call itself
    still goes through whatever bounded kit method ``fn`` is, so a driver that
    never returns fails the scenario instead of hanging it.
    """

    def __init__(self, fn: Callable[[], Any], what: str) -> None:
        self.what = what
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True,
                                        name=f"conformance-pending:{what}")
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as exc:  # handed to the scenario's thread
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self.done.set()

    @property
    def elapsed(self) -> float:
        assert self.finished is not None, f"{self.what} has not finished"
        return self.finished - self.started

    def outcome(self, timeout: float) -> BaseException | None:
        """Wait for the call to end; return its exception (None when it returned)."""
        if not self.done.wait(timeout):
            raise AssertionError(f"{self.what}: expected it to finish within {timeout:.2f}s, "
                                 "it was still blocked")
        return self.error

    def result(self, timeout: float) -> Any:
        """Wait for the call to end; return its value or fail naming its exception."""
        error = self.outcome(timeout)
        if error is not None:
            raise AssertionError(f"{self.what}: expected it to return, it raised {error!r}") \
                from error
        return self.value


def call_in_background(kit: Kit, driver: Any, target: Any, message: dict[str, Any], *,
                       timeout: float | None = None, what: str = "send(wait_for_reply=True)",
                       **send_kwargs: Any) -> Pending:
    """Start ``driver.send(target, {}, message, wait_for_reply=True, ...)`` on a thread."""
    timeout = kit.timing.eventually if timeout is None else timeout
    return Pending(lambda: kit.send(driver, target, message, wait_for_reply=True,
                                    timeout=timeout, **send_kwargs), what)


def serve(kit: Kit, *, inbox: Inbox | None = None, **driver_kwargs: Any
          ) -> tuple[Any, Subscription, Any]:
    """A server driver listening on a fresh (exchange, topic, server) target.

    Returns the driver, its subscription and the topic-only target a caller
    sends to (the plain "any server on this topic" address).
    """
    driver = kit.driver(**driver_kwargs)
    listen_target = kit.names.target(server=True)
    sub = kit.listen(driver, listen_target, inbox=inbox)
    send_target = oslo_messaging.Target(exchange=listen_target.exchange,
                                        topic=listen_target.topic)
    return driver, sub, send_target


def expect_raises(pending: Pending, expected: type[BaseException], timeout: float
                  ) -> BaseException:
    """The exception ``pending`` ended with, failing unless it is an ``expected``."""
    error = pending.outcome(timeout)
    if error is None:
        pytest.fail(f"{pending.what}: expected {expected.__name__}, it returned "
                    f"{pending.value!r}")
    if not isinstance(error, expected):
        pytest.fail(f"{pending.what}: expected {expected.__name__}, it raised "
                    f"{type(error).__module__}.{type(error).__name__}: {error}")
    return error


def raise_and_capture(exc: BaseException) -> Any:
    """``sys.exc_info()`` of ``exc`` raised and caught here (a real traceback included)."""
    try:
        raise exc
    except BaseException:
        return sys.exc_info()
