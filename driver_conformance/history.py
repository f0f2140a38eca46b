"""Delivery history: what was sent, what arrived, and what that means.

A delivery scenario records every send (with its outcome as the sender saw
it) and every receipt, keyed by a unique message key the scenario puts in the
message.  :meth:`History.check` then classifies each key:

* **lost**: the sender was told the send succeeded, and it never arrived;
* **duplicated**: it arrived more often than it should have;
* **unexpected**: it arrived, but no send of it was ever made;
* **recovered**: the sender was told it failed, or never heard back, and it
  arrived anyway (allowed: a failed send may still have reached the backend).

The counts are attached to the scenario's result, so a report shows not only
that "retry never duplicates" failed but how many duplicates there were.

The history judges every scenario that recorded one, whether or not the
scenario looked (see :meth:`driver_conformance.kit.Kit.judge_history`): a
scenario that checks it itself (:meth:`History.check`, with the copies it
expects) is judged by its own assertion; one that forgot is failed on its
behalf when its history is not clean.
"""

from __future__ import annotations

import collections
import dataclasses
import threading

INVOKED = "invoked"
OK = "ok"
FAILED = "failed"
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class DeliveryCounts:
    sent: int
    received: int
    lost: int
    duplicated: int
    unexpected: int
    recovered: int

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.as_dict().items())


class History:
    """Thread-safe record of sends and receipts for one scenario."""

    def __init__(self) -> None:
        #: Whether the scenario looked at the history itself (:meth:`check`).
        self.checked = False
        #: The clause a history that is not clean fails, in a scenario of several.
        self.clause: str | None = None
        self._lock = threading.Condition()
        self._sends: dict[str, str] = {}
        #: Copies each key is owed (a fanout to three listeners owes three).
        self._copies: dict[str, int] = {}
        self._receipts: collections.Counter[str] = collections.Counter()
        self._where: dict[str, list[str]] = collections.defaultdict(list)

    def invoked(self, key: str, copies: int = 1) -> None:
        """Record that the send of ``key`` started; a delivered send owes ``copies``."""
        with self._lock:
            self._sends[key] = INVOKED
            self._copies[key] = copies

    @property
    def wired(self) -> bool:
        """Whether the scenario records receipts too (only then can the history judge)."""
        with self._lock:
            return bool(self._receipts)

    def finished(self, key: str, status: str) -> None:
        """Record how the send of ``key`` ended: OK, FAILED or UNKNOWN (timed out, hung)."""
        with self._lock:
            self._sends[key] = status
            self._lock.notify_all()

    def wait_owed(self, timeout: float) -> bool:
        """Wait until every send that returned has the copies it owes; False after ``timeout``.

        A last message's arrival (a barrier) does not show the ones before it
        have arrived: the public RPC server runs its endpoints on a thread
        pool, so a loaded machine can run the barrier's before an earlier
        cast's.  Judging then would count that cast lost.  A copy owed that
        never comes costs the scenario ``timeout``; a duplicate is still seen
        only if it came before the judgment, as with the barrier alone.
        """
        def owed() -> bool:
            return any(status == OK and self._receipts.get(key, 0) < self._copies.get(key, 1)
                       for key, status in self._sends.items())

        with self._lock:
            return self._lock.wait_for(lambda: not owed(), timeout)

    def received(self, key: str, where: str = "") -> None:
        with self._lock:
            self._receipts[key] += 1
            self._where[key].append(where)
            self._lock.notify_all()

    def wait_received(self, key: str, timeout: float) -> list[str]:
        """Wait until ``key`` was received at least once; return where it was received."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._receipts.get(key, 0) > 0, timeout):
                raise AssertionError(f"expected {key!r} to arrive within {timeout:.2f}s; "
                                     f"it did not")
            return list(self._where[key])

    def receivers(self, key: str) -> list[str]:
        with self._lock:
            return list(self._where[key])

    def check(self, copies: int | None = None) -> DeliveryCounts:
        """Classify every key, expecting ``copies`` receipts of each successful send
        (by default, the copies each send said it owes).

        Calling it says the scenario judges the history itself.
        """
        self.checked = True
        return self.counts(copies)

    def counts(self, copies: int | None = None) -> DeliveryCounts:
        """The classification of :meth:`check`, without taking the judgment over."""
        with self._lock:
            lost = duplicated = recovered = 0
            for key, status in self._sends.items():
                got = self._receipts.get(key, 0)
                copies_owed = self._copies.get(key, 1) if copies is None else copies
                if got > copies_owed:
                    duplicated += 1
                elif status == OK and got < copies_owed:
                    lost += 1
                elif status in (FAILED, UNKNOWN, INVOKED) and got:
                    recovered += 1
            unexpected = sum(1 for key in self._receipts if key not in self._sends)
            return DeliveryCounts(
                sent=len(self._sends),
                received=sum(self._receipts.values()),
                lost=lost,
                duplicated=duplicated,
                unexpected=unexpected,
                recovered=recovered,
            )
