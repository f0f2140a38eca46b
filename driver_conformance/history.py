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
        self._lock = threading.Condition()
        self._sends: dict[str, str] = {}
        self._receipts: collections.Counter[str] = collections.Counter()
        self._where: dict[str, list[str]] = collections.defaultdict(list)

    def invoked(self, key: str) -> None:
        with self._lock:
            self._sends[key] = INVOKED

    def finished(self, key: str, status: str) -> None:
        """Record how the send of ``key`` ended: OK, FAILED or UNKNOWN (timed out, hung)."""
        with self._lock:
            self._sends[key] = status

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

    def check(self, copies: int = 1) -> DeliveryCounts:
        """Classify every key, expecting ``copies`` receipts of each successful send."""
        with self._lock:
            lost = duplicated = recovered = 0
            for key, status in self._sends.items():
                got = self._receipts.get(key, 0)
                if got > copies:
                    duplicated += 1
                elif status == OK and got < copies:
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
