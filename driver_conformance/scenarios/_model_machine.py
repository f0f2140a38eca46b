"""The model scenario's machinery: what its examples share, and the driver plumbing.

:mod:`driver_conformance.scenarios.model` holds the scenario and its rules
(:func:`~driver_conformance.scenarios.model.make_machine`); this module holds
what every rule stands on: the :class:`Session` the examples of one test share
(seed, counters, the shrink budget), the :func:`checked` step wrapper, and
:class:`ModelMachineBase`, which builds listeners, sends, waits for the copies a
send owes and mirrors each example into the kit's delivery history.  The
leading underscore keeps the module out of scenario collection.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import oslo_messaging
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine

from driver_conformance import model_checker as mc
from driver_conformance.catalog import load_catalog
from driver_conformance.history import OK, UNKNOWN
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit, Subscription
from driver_conformance.model_checker import ModelFailure, clause_of, failure_type
from driver_conformance.scenarios._support import key_of
from driver_conformance.timing import Stopwatch

#: The quiet window that ends each example (scaled); short, since there are several.
QUIET = 0.2
#: How long to wait for an owed copy once a failure has been seen (scaled).
SHRINK_PATIENCE = 0.5
#: Wall time allowed for shrinking a failure (scaled).
SHRINK_BUDGET = 15.0
PRIORITY = "info"

F = TypeVar("F", bound=Callable[..., Any])


def final_replay() -> bool:
    """Whether Hypothesis is replaying the failure it will report (the last run)."""
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # raised when no Hypothesis test is running: not a replay
        return False


class Session:
    """What the examples of one test share: seed, counters, and the shrink budget."""

    def __init__(self, kit: Kit, seed: int) -> None:
        self.kit = kit
        self.seed = seed
        self.examples = 0
        self.ops: dict[str, int] = {}
        self.first_failure: Stopwatch | None = None

    def judges(self, problem: str) -> bool:
        """Whether ``problem`` is a violation of a clause the run judges (or no clause's)."""
        clause = clause_of(problem)
        return clause not in load_catalog() or self.kit.judged(clause)

    def failed(self) -> None:
        if self.first_failure is None:
            self.first_failure = Stopwatch()

    def patience(self) -> float:
        """Ceiling for an owed copy: the kit's "eventually", shorter while shrinking."""
        if self.first_failure is None:
            return self.kit.timing.eventually
        return min(self.kit.timing.eventually, self.kit.timing.s(SHRINK_PATIENCE))

    def quiet(self) -> float:
        """The example's quiet window; halved while shrinking, whole for the final replay.

        A shorter window can only miss a late extra copy, which makes a
        candidate pass, never fail; the replay Hypothesis reports uses the
        whole window, so a failure found in a short one is found again.
        """
        if self.first_failure is None or final_replay():
            return self.kit.timing.s(QUIET)
        return self.kit.timing.s(QUIET / 2)

    def budget_spent(self) -> bool:
        return (self.first_failure is not None
                and self.first_failure.elapsed() > self.kit.timing.s(SHRINK_BUDGET)
                and not final_replay())


def checked(fn: F) -> F:
    """Run a step; an exception from the driver fails the example with the model's trace."""

    @functools.wraps(fn)
    def wrapper(self: ModelMachineBase, *args: Any, **kwargs: Any) -> None:
        try:
            fn(self, *args, **kwargs)
        except ModelFailure:
            raise
        except oslo_messaging.MessageDeliveryFailure as exc:
            # Every send of the model retries without limit (the public API's
            # default), so giving up on one breaks the retry clause of its kind.
            clause = mc.NOTIFY_RETRY if kwargs.get("op") == "notify" else mc.UNLIMITED_RETRY
            self.fail([f"[{clause}] {fn.__name__} {kwargs.get('op', '')}: "
                       f"MessageDeliveryFailure with unlimited retry: {exc}"], cause=exc)
        except Exception as exc:
            self.fail([f"{fn.__name__}: {type(exc).__name__}: {exc}"], cause=exc)

    return wrapper  # type: ignore[return-value]


class ModelMachineBase(RuleBasedStateMachine):
    """Driver plumbing for the state machine; the rules are in :func:`make_machine`."""

    session: Session
    drivers: list[Any]
    pools: tuple[str, ...]
    requeue: bool

    def __init__(self) -> None:
        super().__init__()
        self.session.examples += 1
        self.example = self.session.examples
        self.kit = self.session.kit
        self.active = not self.session.budget_spent()
        self.failed = False
        #: Keys actually handed to the driver (none in a model-only example).
        self.sent_keys: list[str] = []
        self.model = mc.Model()
        self.ledger = mc.Ledger()
        self.numbers = itertools.count(1)
        self.exchange = self.kit.names.exchange()
        self.topic = self.kit.names.topic()
        self.notify_topic = self.kit.names.topic()
        self.pool_names: dict[str, str | None] = {mc.DEFAULT_POOL: None}
        self.pool_names.update({p: self.kit.names.pool() for p in self.pools[1:]})
        self.server_names: dict[str, str] = {}
        self.subs: dict[str, Subscription] = {}
        self.closed: dict[str, Inbox] = {}
        self._requeued: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # -- failing ----------------------------------------------------------------------
    def fail(self, problems: list[str], *, cause: BaseException | None = None) -> None:
        """End the example with the model's trace (see the module docstring).

        Under ``--clause`` a violation of a clause the run does not judge is
        not a failure: it returns, and the example goes on.
        """
        problems = [p for p in problems if self.session.judges(p)]
        if not problems:
            return
        self.session.failed()
        self.failed = True
        self.model.trace.append(f"!! violation seen here: {problems[0]}")
        trace = "\n".join(f"  {i:2d}. {line}" for i, line in enumerate(self.model.trace, 1))
        names = ", ".join(f"{label}={name}" for label, name in self.server_names.items())
        raise failure_type(problems[0])(
            f"model violated in example {self.example} (hypothesis seed {self.session.seed}):\n"
            + "\n".join(f"- {p}" for p in problems)
            + f"\nmodel trace (what each step owed):\n{trace}"
            + f"\nexchange {self.exchange}, topic {self.topic}, notification topic "
            f"{self.notify_topic}.{PRIORITY}; servers {names or 'none'}"
        ) from cause

    # -- listeners --------------------------------------------------------------------
    def next_label(self, prefix: str) -> str:
        return f"{prefix}{next(self.numbers)}"

    def rpc_inbox(self, label: str) -> Inbox:
        """Acknowledge first (as the RPC server does), record, reply to calls."""
        groups = frozenset({mc.RPC, mc.server_group(label)})

        def on_message(message: Any) -> None:
            body = message.message
            self.ledger.record(mc.Receipt(key_of(body), label, groups, body, message.ctxt))
            if isinstance(body, dict) and body.get("call"):
                try:
                    message.reply({"key": body.get("key"), "by": label})
                except Exception as exc:
                    self.ledger.error(f"[rpc-incoming.reply.no-raise] reply() at {label} "
                                      f"raised {exc!r}")

        return Inbox(label, on_message=on_message)

    def notification_inbox(self, label: str, pool: str) -> Inbox:
        """Record, then requeue the first copy a pool gets of a requeue-flagged message."""
        groups = frozenset({mc.pool_group(pool)})

        def on_message(message: Any) -> None:
            body = message.message
            key = key_of(body)
            with self._lock:
                again = isinstance(body, dict) and bool(body.get("requeue")) and (
                    (key, pool) not in self._requeued)
                if again:
                    self._requeued.add((key, pool))
            self.ledger.record(mc.Receipt(key, label, groups, body, message.ctxt, again))
            what = "requeue" if again else "acknowledge"
            try:
                message.requeue() if again else message.acknowledge()
            except Exception as exc:
                self.ledger.error(f"[incoming.{what}.no-raise] {what}() at {label} "
                                  f"raised {exc!r}")

        return Inbox(label, ack=False, on_message=on_message)

    def driver_for(self, label: str) -> Any:
        """Listeners alternate between two drivers: same-connection and cross-connection."""
        return self.drivers[1 + int(label[1:]) % 2]

    def stop(self, label: str) -> None:
        sub = self.subs.pop(label)
        sub.cleanup()
        self.closed[label] = sub.inbox

    # -- sending and checking -----------------------------------------------------------
    def send(self, sent: mc.Sent, target: oslo_messaging.Target, **kwargs: Any) -> Any:
        self.sent_keys.append(sent.key)
        # The driver gets copies: a driver that writes into what it is given (the
        # rabbit driver adds its own keys to the message) must not change the model.
        result = self.kit.send(self.drivers[0], target, copy.deepcopy(sent.body),
                               ctxt=copy.deepcopy(sent.ctxt), **kwargs)
        self.settle([sent.key])
        return result

    def publish(self, sent: mc.Sent) -> None:
        target = oslo_messaging.Target(exchange=self.exchange,
                                       topic=f"{self.notify_topic}.{PRIORITY}")
        self.sent_keys.append(sent.key)
        self.kit.notify(self.drivers[0], target, copy.deepcopy(sent.body),
                        ctxt=copy.deepcopy(sent.ctxt))
        self.settle([sent.key])

    def settle(self, keys: list[str]) -> None:
        """Wait (returning early) for the copies ``keys`` owe now; fail if one is missing.

        Only missing copies fail a step.  Extra copies (duplicates, strays,
        callbacks after stop) are checked once, at the end of the example:
        whether one has arrived by the time a step looks depends on timing,
        and an example must fail at the same step every time it is replayed,
        or Hypothesis cannot shrink it (it reports inconsistent generation).
        """
        model, ledger = self.model, self.ledger
        patience = self.session.patience()
        ledger.wait_until(lambda: not model.missing(ledger, keys), patience)
        problems = model.missing(ledger, keys)
        if problems:
            self.fail([*problems, f"(waited {patience:.2f}s for the owed copies)"])

    def after_close(self) -> list[str]:
        problems = []
        for label, inbox in self.closed.items():
            if inbox.after_close:
                keys = ", ".join(key_of(m.message) for m in inbox.after_close)
                problems.append(f"[{mc.NO_CALLBACK_AFTER_STOP}] {label} was stopped and "
                                f"cleaned up, then its callback got: {keys}")
        return problems

    def mirror_history(self) -> None:
        """Write the example into kit.history, one history key per owed copy.

        The history counts one copy per key, so each (message, group) pair is
        a key of its own, and a requeued first copy another; copies that were
        not owed (optional ones) count as "unknown" sends, stray ones as
        unexpected receipts.
        """
        history = self.kit.history
        for key in self.sent_keys:
            sent = self.model.sent[key]
            groups = {o.group for o in sent.owed}
            for owed in sent.owed:
                status = OK if owed.due and owed.lo else UNKNOWN
                names = [f"{key}@{owed.group}"]
                if sent.body.get("requeue"):
                    names.append(f"{key}@{owed.group}#requeued")
                for name in names:
                    history.invoked(name)
                    history.finished(name, status)
            for r in self.ledger.receipts(key):
                group = next((g for g in sorted(r.groups) if g in groups), None)
                where = f"{key}@{group or r.listener}"
                history.received(where + ("#requeued" if r.requeued else ""), r.listener)

    def teardown(self) -> None:
        """One quiet window and the final check, then stop what is left."""
        problems: list[str] = []
        if self.active and not self.failed and self.sent_keys:
            self.ledger.quiet(self.session.quiet())
            problems = self.model.violations(self.ledger) + self.after_close()
        self.mirror_history()
        for label in list(self.subs):
            try:
                self.stop(label)
            except Exception as exc:
                problems.append(f"stopping {label}: {type(exc).__name__}: {exc}")
        if problems and not self.failed:
            self.fail([*problems, "(after the example's quiet window)"])
