"""A model of the delivery contract, for the model-based (stateful) scenario.

Pure bookkeeping, no driver and no kit: the scenario tells the :class:`Model`
what it did (a server joined, a fanout cast went out, a pool lost its last
listener) and the :class:`Ledger` what each listener received; the model says
what every send owes and which receipts break the contract.

What a send owes is written as :class:`Owed` entries: "between ``lo`` and
``hi`` copies of this message in this *group* of listeners".  Groups are

* ``rpc``: every RPC server of the topic (a cast to the topic is owed once
  here, whichever server takes it);
* ``server:<label>``: one RPC server (server casts, fanout copies);
* ``pool:<label>``: the notification listeners of one pool (``default`` is
  ``pool=None``).

A receipt in a group no entry of its send names is a misdelivery.  Entries
are *due* when the contract says the copy must already have arrived (there
was a live subscriber when it was sent, or a listener came back to a pool
that stored it); other entries only cap the count (a cast to a topic nobody
listens on may be dropped or kept for a later server, but never duplicated).
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

RPC = "rpc"
_MISSING = object()
DEFAULT_POOL = "default"

# The clauses the model checks, by what goes wrong.
TOPIC_ONE_COPY = "send.one-of-many.single-copy"
TOPIC_REACHES = "listen.address.exchange-topic"
SERVER_REACHES = "listen.address.exchange-topic-server"
ADDRESS = "send.address.topic-exchange-server"
FANOUT = "send.fanout.all-subscribers"
REPLY = "send.wait-for-reply.returns-reply"
NOTIFY_ONE_COPY = "notify.delivery.single-copy"
POOL_ONE_COPY = "notify-listen.pool.one-copy-per-pool"
STORED = "notify.store-and-forward.subscriber-absent"
NOTIFY_ADDRESS = "notify.address.exchange-and-topic"
REQUEUE = "incoming.requeue.redelivers"
NO_CALLBACK_AFTER_STOP = "listener.stop.no-callback-after"
UNLIMITED_RETRY = "send.retry.unlimited"
NOTIFY_RETRY = "notify.retry.honoured"
CONTENT = "incoming.content.ctxt-and-message"


def server_group(label: str) -> str:
    return f"server:{label}"


def pool_group(pool: str) -> str:
    return f"pool:{pool}"


@dataclasses.dataclass
class Owed:
    """Between ``lo`` and ``hi`` copies of one message in ``group``."""

    group: str
    lo: int
    hi: int
    clause: str
    #: Whether ``lo`` must already be met; False while the copy may still be
    #: dropped (nobody subscribed) or is held for a listener that has left.
    due: bool
    why: str


@dataclasses.dataclass
class Sent:
    """One message the scenario sent, and what it owes."""

    key: str
    kind: str
    body: dict[str, Any]
    ctxt: dict[str, Any]
    owed: list[Owed]
    #: The clause a receipt outside every owed group breaks.
    address_clause: str


@dataclasses.dataclass(frozen=True)
class Receipt:
    key: str
    listener: str
    groups: frozenset[str]
    message: Any
    ctxt: Any
    #: The receiving callback requeued this copy instead of acknowledging it.
    requeued: bool = False


class Ledger:
    """Thread-safe record of what every listener received, with one condition to wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._receipts: list[Receipt] = []
        self._errors: list[str] = []

    def record(self, receipt: Receipt) -> None:
        with self._cond:
            self._receipts.append(receipt)
            self._cond.notify_all()

    def error(self, text: str) -> None:
        """A listener callback saw something wrong (a driver method raised)."""
        with self._cond:
            self._errors.append(text)
            self._cond.notify_all()

    def errors(self) -> list[str]:
        with self._cond:
            return list(self._errors)

    def receipts(self, key: str | None = None) -> list[Receipt]:
        with self._cond:
            return [r for r in self._receipts if key is None or r.key == key]

    def count(self, key: str, group: str) -> int:
        with self._cond:
            return sum(1 for r in self._receipts if r.key == key and group in r.groups)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (returning early) until ``predicate()`` holds; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def quiet(self, window: float) -> None:
        """Wait out one quiet window, whatever arrives meanwhile."""
        deadline = time.monotonic() + window
        with self._cond:
            while (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)


class Model:
    """The topology of one example and what each send owes; see the module docstring."""

    def __init__(self) -> None:
        self.servers: list[str] = []
        #: Live notification listeners: label -> pool.
        self.listeners: dict[str, str] = {}
        #: Pools that have had a listener at some point (their queue stores messages).
        self.subscribed_pools: set[str] = set()
        self.sent: dict[str, Sent] = {}
        self.trace: list[str] = []

    # -- topology ---------------------------------------------------------------------
    def live_pools(self) -> list[str]:
        return sorted(set(self.listeners.values()))

    def join_server(self, label: str) -> None:
        self.servers.append(label)
        self.trace.append(f"{label} joins (servers: {', '.join(self.servers)})")

    def leave_server(self, label: str) -> None:
        self.servers.remove(label)
        self.trace.append(f"{label} leaves (servers: {', '.join(self.servers) or 'none'})")

    def join_listener(self, label: str, pool: str) -> list[Sent]:
        """A notification listener joins ``pool``; returns the sends now due there."""
        returning = pool in self.subscribed_pools and pool not in self.listeners.values()
        self.listeners[label] = pool
        self.subscribed_pools.add(pool)
        now_due: list[Sent] = []
        if returning:
            for sent in self.sent.values():
                for owed in sent.owed:
                    if owed.group == pool_group(pool) and not owed.due and owed.lo:
                        owed.due = True
                        now_due.append(sent)
        pending = f"; {len(now_due)} stored notification(s) now due" if now_due else ""
        self.trace.append(f"{label} joins pool {pool}{pending}")
        return now_due

    def leave_listener(self, label: str) -> None:
        pool = self.listeners.pop(label)
        self.trace.append(f"{label} leaves pool {pool}")

    # -- sends ------------------------------------------------------------------------
    def _add(self, sent: Sent, what: str) -> Sent:
        self.sent[sent.key] = sent
        owes = "; ".join(f"{o.why}" for o in sent.owed) or "no copy anywhere"
        self.trace.append(f"{what} {sent.key}: owes {owes}")
        return sent

    def topic_cast(self, key: str, body: dict[str, Any], ctxt: dict[str, Any],
                   *, call: bool = False) -> Sent:
        """A cast (or call) to the topic: one copy among the live servers, if any."""
        if self.servers:
            owed = Owed(RPC, 1, 1, TOPIC_ONE_COPY, True,
                        f"1 copy among {', '.join(self.servers)}")
        else:
            owed = Owed(RPC, 0, 1, TOPIC_ONE_COPY, False,
                        "at most 1 copy (no server: may be dropped or kept)")
        kind = "topic call" if call else "topic cast"
        return self._add(Sent(key, kind, body, ctxt, [owed], ADDRESS), kind)

    def server_cast(self, key: str, body: dict[str, Any], ctxt: dict[str, Any],
                    server: str, *, call: bool = False) -> Sent:
        """A cast (or call) to one server: that server, and only it, if it is live."""
        if server in self.servers:
            owed = [Owed(server_group(server), 1, 1, SERVER_REACHES, True,
                         f"1 copy at {server} only")]
        else:
            owed = []  # nobody ever listened on this server name
        kind = f"{'call' if call else 'cast'} to server {server}"
        return self._add(Sent(key, kind, body, ctxt, owed, ADDRESS), kind)

    def fanout(self, key: str, body: dict[str, Any], ctxt: dict[str, Any]) -> Sent:
        """A fanout cast: one copy at every server live when it was sent, none elsewhere."""
        owed = [Owed(server_group(s), 1, 1, FANOUT, True, f"1 copy at {s}")
                for s in self.servers]
        return self._add(Sent(key, "fanout cast", body, ctxt, owed, ADDRESS), "fanout cast")

    def notify(self, key: str, body: dict[str, Any], ctxt: dict[str, Any],
               pools: Iterable[str], *, requeue: bool = False) -> Sent:
        """A notification: one copy per pool (two when the first is requeued).

        A pool with live listeners owes its copies now; a pool whose listeners
        all left still has its subscription and owes them when a listener
        comes back (store-and-forward); a pool that never had a listener may
        get them later or never.
        """
        copies = 2 if requeue else 1
        live = set(self.listeners.values())
        owed = []
        for pool in pools:
            group = pool_group(pool)
            one_copy = NOTIFY_ONE_COPY if pool == DEFAULT_POOL else POOL_ONE_COPY
            if pool in live:
                owed.append(Owed(group, copies, copies, one_copy, True,
                                 f"{copies} in pool {pool}"))
            elif pool in self.subscribed_pools:
                owed.append(Owed(group, copies, copies, STORED, False,
                                 f"{copies} in pool {pool} once it has a listener again"))
            else:
                owed.append(Owed(group, 0, copies, one_copy, False,
                                 f"at most {copies} in never-subscribed pool {pool}"))
        kind = "notification (requeued once per pool)" if requeue else "notification"
        return self._add(Sent(key, kind, body, ctxt, owed, NOTIFY_ADDRESS), kind)

    # -- checking ---------------------------------------------------------------------
    def missing(self, ledger: Ledger, keys: Iterable[str]) -> list[str]:
        """Due copies of ``keys`` that have not arrived (yet)."""
        problems = []
        for key in keys:
            sent = self.sent[key]
            for owed in sent.owed:
                if not owed.due:
                    continue
                got = ledger.count(key, owed.group)
                if got < owed.lo:
                    clause = owed.clause
                    if sent.body.get("requeue") and got:
                        clause = REQUEUE  # the first copy came and was requeued
                    elif owed.clause == TOPIC_ONE_COPY:
                        clause = TOPIC_REACHES
                    problems.append(
                        f"[{clause}] {sent.kind} {key}: expected {owed.why}, got {got}"
                        f"{self._where(ledger, key)}"
                    )
        return problems

    def excess(self, ledger: Ledger, keys: Iterable[str]) -> list[str]:
        """Copies of ``keys`` beyond what is owed, or where nothing is owed."""
        problems = []
        for key in keys:
            sent = self.sent[key]
            for owed in sent.owed:
                got = ledger.count(key, owed.group)
                if got > owed.hi:
                    clause = owed.clause
                    if sent.body.get("requeue"):
                        # Extra copies of a requeued message come from its
                        # redelivery: charged to requeue, whichever pool's
                        # count they broke (the one-copy clauses are judged
                        # by the messages nobody requeued).
                        clause = f"{REQUEUE} / {clause}"
                    problems.append(
                        f"[{clause}] {sent.kind} {key}: expected {owed.why}, got {got}"
                        f"{self._where(ledger, key, owed.group)}"
                    )
            groups = {o.group for o in sent.owed}
            stray = [r.listener for r in ledger.receipts(key) if not groups & r.groups]
            if stray:
                problems.append(
                    f"[{sent.address_clause}] {sent.kind} {key}: "
                    f"delivered where it was not addressed: {', '.join(stray)} "
                    f"(owed: {'; '.join(o.why for o in sent.owed) or 'nothing'})"
                )
        return problems

    def content(self, ledger: Ledger, keys: Iterable[str]) -> list[str]:
        """Receipts whose message differs from what was sent, or whose ctxt lost an item.

        The ctxt may gain items (the rabbit driver adds ``client_timeout`` to
        RPC requests); a copy redelivered after a requeue must equal the
        requeued copy in ctxt and message, extra items included.
        """
        problems = []
        for key in keys:
            sent = self.sent[key]
            first: dict[str, Receipt] = {}
            for r in ledger.receipts(key):
                ctxt = r.ctxt if isinstance(r.ctxt, dict) else {}
                if r.message != sent.body or any(
                        ctxt.get(k, _MISSING) != v for k, v in sent.ctxt.items()):
                    problems.append(
                        f"[{CONTENT}] {sent.kind} {key} at {r.listener}: expected ctxt "
                        f"{sent.ctxt!r} and message {sent.body!r}, got {r.ctxt!r} and "
                        f"{r.message!r}"
                    )
                    continue
                for group in sorted(r.groups):
                    requeued = first.get(group)
                    if requeued is None:
                        if r.requeued:
                            first[group] = r
                    elif (r.ctxt, r.message) != (requeued.ctxt, requeued.message):
                        problems.append(
                            f"[{REQUEUE}] {sent.kind} {key}: redelivered at {r.listener} "
                            f"with ctxt {r.ctxt!r}, message {r.message!r}; requeued at "
                            f"{requeued.listener} with ctxt {requeued.ctxt!r}, message "
                            f"{requeued.message!r}"
                        )
        return problems

    def violations(self, ledger: Ledger, keys: Iterable[str] | None = None) -> list[str]:
        """Everything wrong with ``keys`` (default: every send) as the ledger stands."""
        keys = list(self.sent if keys is None else keys)
        return (self.missing(ledger, keys) + self.excess(ledger, keys)
                + self.content(ledger, keys) + ledger.errors())

    def _where(self, ledger: Ledger, key: str, group: str | None = None) -> str:
        at = [r.listener + (" (requeued)" if r.requeued else "")
              for r in ledger.receipts(key) if group is None or group in r.groups]
        inside = f" in {group}" if group else ""
        return f" (received{inside} at: {', '.join(at)})" if at else ""


# -- naming a violation by its clause --------------------------------------------------

class ModelFailure(AssertionError):
    """The driver did something the model does not allow."""


_FAILURE_TYPES: dict[str, type[ModelFailure]] = {}


def first_model_failure(exc: BaseException) -> BaseException | None:
    """The model violation ``exc`` is or wraps, if any.

    A violation that does not happen again when hypothesis replays its example
    (a driver whose bug depends on timing) reaches us inside hypothesis's
    ``FlakyFailure`` group.  It was still seen: the driver did deliver what the
    model forbids once, so it is charged to its clause like any other.
    """
    if isinstance(exc, ModelFailure):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_model_failure(inner)
            if found is not None:
                return found
    return None


def clause_of(problem: str) -> str:
    """The clause a problem line names (``[clause] ...``), or ``driver-error``."""
    match = re.match(r"\[([a-z0-9.-]+)", problem)
    return match.group(1) if match else "driver-error"


def failure_type(problem: str) -> type[ModelFailure]:
    """A ``ModelFailure`` subclass per clause of the first violation seen.

    Hypothesis shrinks a failure towards smaller examples that fail with the
    same exception type at the same place.  One type per clause keeps it on
    the bug it found (a fanout copy missing) instead of wandering to another
    one the smaller example happens to show.
    """
    clause = clause_of(problem)
    if clause not in _FAILURE_TYPES:
        _FAILURE_TYPES[clause] = type(f"ModelFailure[{clause}]", (ModelFailure,), {})
    return _FAILURE_TYPES[clause]
