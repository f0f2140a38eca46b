"""``driver-conformance bench``: performance of drivers through the public oslo.messaging API.

The benchmark uses the same adapters as the conformance suite (so the same
backend isolation, name prefixes and cleanup) and drives each driver only
through ``RPCClient``, ``RPCServer``, ``Notifier`` and notification
listeners, because that is what a service built on oslo.messaging sees.

Speed is never reported without accounting: every message carries a
sequence number, every receipt is recorded, and each result says how many
messages were sent, received, lost and duplicated, so a fast but lossy
driver cannot look good.  See ``docs/bench.rst``.

This module holds only constants, so importing it (from ``report``) is cheap.
"""

from __future__ import annotations

#: The ``kind`` of a bench document, to tell it from a conformance report.
KIND = "driver-conformance-bench"
#: Version of the bench document format; readers accept the same major version.
#: 1.1 added, all optional for readers: per-round figures (``results[].rounds``),
#: ``cpu_s``, the yardstick flag of drivers, and ratios of p50 and CPU per
#: message with their p25-p75 spread in ``comparison``.
SCHEMA_VERSION = "1.1"

__all__ = ["KIND", "SCHEMA_VERSION"]
