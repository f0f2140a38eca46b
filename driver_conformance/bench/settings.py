"""The bench's knobs, apart from the workloads so the CLI can read defaults cheaply."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs of a bench run; the defaults keep three drivers under two minutes."""

    #: Seconds of measured sending per workload (and per driver).
    duration: float = 2.0
    #: Seconds of warm-up sending before each measured phase (not counted).
    warmup: float = 0.3
    #: Cap on messages (or calls) sent in one measured phase.
    max_messages: int = 20000
    #: Client threads of the ``call-concurrent`` workload.
    concurrency: int = 8
    #: Servers (cast, fanout), listeners (notify) or pools (notify-pools).
    subscribers: int = 2
    #: Deliveries allowed in flight before the sender waits: throughput is then
    #: what the driver delivers, not how fast it accepts messages into a backlog.
    window: int = 100
    #: ``RPCClient`` timeout for calls.
    call_timeout: float = 5.0
    #: ``call_monitor_timeout`` of the ``call-monitor`` workload: 2 s makes oslo's
    #: watchdog heartbeat every second (below 2 it only logs a warning per call).
    call_monitor_timeout: float = 2.0
    #: Bound on the wait for stragglers after sending stops.
    drain: float = 5.0
    #: After everything expected arrived, how long to keep listening for copies.
    settle: float = 0.2
    #: Bound on every setup or teardown call into the driver.
    call_bound: float = 15.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
