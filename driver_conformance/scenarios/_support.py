"""Helpers shared by the scenario modules: waiting on keyed deliveries and blocked calls.

They live here rather than in the kit proper because they encode how the
scenarios of this suite observe a driver (a ``key`` in every message, a
blocking call played out on its own thread); the kit's fixtures stay neutral.
The leading underscore keeps the module out of scenario collection.

One name for each job, so scenario modules do not grow their own:

* sending: :func:`send_keyed` (a cast), :func:`publish` (a notification),
  :func:`notification_targets` (the addresses the public API forms);
* receiving: :func:`key_of` (the key of a received body), :func:`record` (an
  inbox hook feeding the history), :class:`Tally` (keys by listener),
  :class:`Collected` (what a public-API endpoint was handed);
* blocking calls: :class:`Pending`, started by :func:`background` or
  :func:`call_in_background`;
* listening by either profile's path, and poll-style listeners the scenario
  releases itself: :mod:`._listening` (:class:`~._listening.Channel`,
  :func:`~._listening.polling`);
* a delivered ctxt: :func:`judge_ctxt` (every sent item kept, and apart, no key
  added), on :func:`ctxt_lost` and :func:`ctxt_added`.
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


#: A ctxt and a message exercising what JSON-capable backends carry: nesting,
#: unicode, integers, floats, booleans and None.
CTXT: dict[str, Any] = {
    "user_id": "usér-☃",
    "roles": ["admin", "mémber"],
    "request_id": None,
    "n": 7,
    "nested": {"k": [1, {"x": None, "y": 2.5}]},
}
MESSAGE: dict[str, Any] = {
    "method": "do_thing",
    "args": {
        "text": "välue ☃ \u2603",
        "i": -3,
        "f": 0.25,
        "flag": True,
        "none": None,
        "items": [1, "two", [3, {"four": 4}]],
        "deep": {"a": {"b": {"c": "d"}}},
    },
}


class TypeRecordingInbox(Inbox):
    """An inbox that also records the type of what the driver passed to the callback."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.arg_types: list[type] = []

    def __call__(self, incoming: list[Any]) -> None:
        self.arg_types.append(type(incoming))
        super().__call__(incoming)


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

    def gather(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` deliveries arrived (True) or ``timeout`` passed (False).

        It does not judge: a scenario of several clauses gathers first, then
        judges each clause on what arrived (:meth:`driver_conformance.kit.Kit.clause`).
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._total >= count, timeout)

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


class Replier(Tally):
    """A tally whose inboxes also answer the messages that ask for it (``answer`` set)."""

    def inbox(self, where: str, *, hold: threading.Event | None = None) -> Inbox:
        def on_message(message: Any) -> None:
            key = key_of(message.message)
            self.record(where, key)
            if message.message.get("answer"):
                message.reply({"key": key})

        return Inbox(where, on_message=on_message)


def subscription_addresses(listen_target: oslo_messaging.Target
                           ) -> dict[str, oslo_messaging.Target]:
    """The three addresses a listener on ``listen_target`` (with a server) subscribes to."""
    exchange, topic = listen_target.exchange, listen_target.topic
    return {
        "topic": oslo_messaging.Target(exchange=exchange, topic=topic),
        "server": oslo_messaging.Target(exchange=exchange, topic=topic,
                                        server=listen_target.server),
        "fanout": oslo_messaging.Target(exchange=exchange, topic=topic, fanout=True),
    }


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
               record: bool = True, copies: int = 1, **extra: Any) -> None:
    """A cast of ``{"key": key, **extra}``; recorded in the history (owing ``copies``)
    when ``record``."""
    body = {"key": key, **extra}
    if record:
        with kit.sending(key, copies):
            kit.send(driver, to, body)
    else:
        kit.send(driver, to, body)


#: The event type of every notification the scenarios publish.
EVENT = "conformance.event"


def publish(kit: Kit, driver: Any, exchange: str | None, topic: str, priority: str,
            key: str, *, record: bool = True, version: float = 2.0, copies: int = 1) -> None:
    """send_notification to ``(exchange, f"{topic}.{priority}")`` with a keyed body
    (recorded in the history, owing ``copies``, when ``record``)."""
    body = {"key": key, "event_type": EVENT, "priority": priority.upper(), "payload": {}}
    to = target(exchange, f"{topic}.{priority}")
    if record:
        with kit.sending(key, copies):
            kit.notify(driver, to, body, version=version)
    else:
        kit.notify(driver, to, body, version=version)


def record(kit: Kit, where: str) -> Callable[[Any], None]:
    """An inbox's ``on_message`` hook recording each receipt's key in the history."""
    return lambda message: kit.history.received(key_of(message.message), where)


def notification_targets(kit: Kit) -> tuple[oslo_messaging.Target,
                                            list[tuple[oslo_messaging.Target, str]]]:
    """(send target, targets_and_priorities) on a fresh topic, as the public Notifier and
    notification listener form them (the send goes to ``<topic>.info``)."""
    topic = kit.names.topic()
    return (oslo_messaging.Target(topic=f"{topic}.info"),
            [(oslo_messaging.Target(topic=topic), "info")])


class Collected:
    """What a public-API endpoint was handed, item by item (and batch by batch), with one
    condition to wait on: the scenario waits for a count with a deadline, never a sleep."""

    def __init__(self, what: str = "endpoint call(s)") -> None:
        self.what = what
        self._cond = threading.Condition()
        self.items: list[Any] = []
        self.batches: list[list[Any]] = []

    def add(self, item: Any) -> int:
        """Record one item; the number recorded so far."""
        return self.add_batch([item])

    def add_batch(self, items: list[Any]) -> int:
        with self._cond:
            self.batches.append(list(items))
            self.items.extend(items)
            self._cond.notify_all()
            return len(self.items)

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        """The items once there are ``count``; fails if they are not there within ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= count, timeout):
                raise AssertionError(f"expected {count} {self.what} within {timeout:.2f}s, "
                                     f"got {len(self.items)}: {self.items!r}")
            return list(self.items)


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

    def since(self, moment: float) -> float:
        """Seconds from ``moment`` (a ``time.monotonic()``) to the call's end."""
        assert self.finished is not None, f"{self.what} has not finished"
        return self.finished - moment

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


def background(kit: Kit, fn: Callable[..., Any], *args: Any, what: str,
               bound: float | None = None, **kwargs: Any) -> Pending:
    """``kit.call(fn, *args, **kwargs)`` (bounded by ``bound``) on its own thread."""
    return Pending(lambda: kit.call(fn, *args, what=what, bound=bound, **kwargs), what)


def call_in_background(kit: Kit, driver: Any, target: Any, message: dict[str, Any], *,
                       timeout: float | None = None, what: str = "send(wait_for_reply=True)",
                       **send_kwargs: Any) -> Pending:
    """Start ``driver.send(target, {}, message, wait_for_reply=True, ...)`` on a thread."""
    timeout = kit.timing.eventually if timeout is None else timeout
    return Pending(lambda: kit.send(driver, target, message, wait_for_reply=True,
                                    timeout=timeout, **send_kwargs), what)


class _Echo:
    """An endpoint whose ``echo`` returns what it was handed, ctxt and keyword arguments."""

    def echo(self, ctxt: Any, **kwargs: Any) -> dict[str, Any]:
        return {"ctxt": ctxt, "args": kwargs}


def echo_client(kit: Kit) -> Any:
    """A public RPC client of a server whose endpoint ``echo`` answers
    ``{"ctxt": ctxt, "args": kwargs}``: the scenarios about what an endpoint sees."""
    kit.require("rpc")
    target = kit.names.target(server=True)
    transport = kit.rpc_transport()
    kit.rpc_server(transport, target, [_Echo()])
    return kit.rpc_client(transport, target, timeout=kit.timing.eventually)


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


def expect_failure(kit: Kit, pending: Pending, expected: type[BaseException], timeout: float,
                   *, clause: str | None = None, family: str | None = None) -> BaseException:
    """Judge a call that must fail: ``clause`` judges that it ends within ``timeout`` and
    raises ``expected``; ``family`` (a clause such as ``send.errors.messaging-exception``)
    judges, in between, that what it raised is a MessagingException at all.  A scenario
    of one clause gives neither: the scenario is its judgment."""

    def judging(cid: str | None) -> contextlib.AbstractContextManager[None]:
        return kit.clause(cid) if cid else contextlib.nullcontext()

    with judging(clause):
        error = pending.outcome(timeout)
    with judging(family):
        if family and error is not None and not isinstance(
                error, oslo_messaging.MessagingException):
            pytest.fail(f"{pending.what}: expected a MessagingException, it raised "
                        f"{type(error).__module__}.{type(error).__name__}: {error}")
    with judging(clause):
        return expect_raises(pending, expected, timeout)


def attempt(call: Callable[[], Any]) -> Any:
    """``call()``'s value, or the exception it raised, to be judged afterwards."""
    try:
        return call()
    except Exception as exc:
        return exc


def spy_incoming(driver: Any, on_incoming: Callable[[Any], None] | None = None
                 ) -> list[Any]:
    """Every incoming message the listeners ``driver`` makes from now on hand to their
    callback (a public-API server's), recorded as it passes (and handed to
    ``on_incoming`` first); the callback is unchanged."""
    seen: list[Any] = []
    listen = driver.listen

    def spying_listen(*args: Any, **kwargs: Any) -> Any:
        listener = listen(*args, **kwargs)
        start = listener.start

        def spying_start(callback: Callable[[list[Any]], Any]) -> Any:
            def record(incoming: list[Any]) -> Any:
                for message in incoming:
                    if on_incoming is not None:
                        on_incoming(message)
                seen.extend(incoming)
                return callback(incoming)

            return start(record)

        listener.start = spying_start
        return listener

    driver.listen = spying_listen
    return seen


def raise_and_capture(exc: BaseException) -> Any:
    """``sys.exc_info()`` of ``exc`` raised and caught here (a real traceback included)."""
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


# -- what a delivered ctxt kept and gained -----------------------------------------------

_MISSING = object()  # a ctxt key that is not there


def ctxt_lost(sent: dict[str, Any], got: Any) -> dict[str, Any]:
    """The items of ``sent`` that ``got`` lacks or holds with another value."""
    got = got if isinstance(got, dict) else {}
    return {k: v for k, v in sent.items() if got.get(k, _MISSING) != v}


def ctxt_added(sent: dict[str, Any], got: Any) -> list[str]:
    """The keys of ``got`` the sender never sent."""
    return sorted(str(k) for k in got if k not in sent) if isinstance(got, dict) else []


def judge_ctxt(kit: Kit, got_ctxt: Any, got_message: Any, message: Any) -> None:
    """Judge the MUST (every sent item arrives, and the message) and, apart, the DERIVED
    clause that the driver adds no key of its own to the ctxt."""
    with kit.clause("incoming.content.ctxt-and-message", soft=True):
        lost = ctxt_lost(CTXT, got_ctxt)
        assert not lost, (f"expected every sent ctxt item to arrive with its value; lost or "
                          f"changed: {lost!r} (received ctxt {got_ctxt!r})")
        assert got_message == message, f"expected message {message!r}, received {got_message!r}"
    with kit.clause("incoming.content.ctxt-no-added-keys", soft=True):
        added = ctxt_added(CTXT, got_ctxt)
        assert not added, (f"expected the ctxt to hold only the keys sent; the driver added "
                           f"{added} (received ctxt {got_ctxt!r})")
