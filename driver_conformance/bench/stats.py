"""Summaries of latency samples and of message accounting.

Percentiles use the nearest-rank method on the sorted samples: with few
samples (a short run, a slow driver) p99.9 is then simply the maximum rather
than an interpolation between two samples that suggests more precision than
the run has.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

#: The percentiles every latency summary reports, as (key, fraction).
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99_9", 0.999),
)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted ``sorted_values`` (not empty)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(samples_s: Sequence[float]) -> dict[str, Any]:
    """Latency summary in milliseconds: count, mean, p50, p90, p99, p99.9 and max.

    An empty sample list gives ``count: 0`` and ``None`` everywhere else, so a
    workload whose messages were all lost still has a summary of the same shape.
    """
    out: dict[str, Any] = {"count": len(samples_s)}
    if not samples_s:
        out.update({"mean": None, **{k: None for k, _ in PERCENTILES}, "max": None})
        return out
    ordered = sorted(samples_s)
    out["mean"] = round(statistics.fmean(ordered) * 1e3, 4)
    for key, fraction in PERCENTILES:
        out[key] = round(percentile(ordered, fraction) * 1e3, 4)
    out["max"] = round(ordered[-1] * 1e3, 4)
    return out


@dataclasses.dataclass
class Accounting:
    """Where every measured message went.

    ``expected`` is the number of deliveries the contract asks for: one per
    message sent for calls, casts and pool-less notifications (whichever
    server or listener takes it), one per subscriber for fanout and one per
    pool for pooled notifications.  ``unique`` counts distinct
    (subscriber, sequence) deliveries, ``received`` every delivery including
    copies; so ``lost = expected - unique`` and ``duplicated = received - unique``.
    """

    sent: int = 0
    send_failed: int = 0
    expected: int = 0
    received: int = 0
    unique: int = 0
    #: Call replies that carried another call's sequence number.
    wrong_replies: int = 0
    #: Deliveries of sequence numbers never sent in the measured phase.
    unexpected: int = 0

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.unique)

    @property
    def duplicated(self) -> int:
        return self.received - self.unique

    def add(self, other: Accounting) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        data = dataclasses.asdict(self)
        data["lost"] = self.lost
        data["duplicated"] = self.duplicated
        return data
