"""What differs between the oslo.messaging releases the kit is tested against.

The kit drives oslo.messaging's *private* driver API (``oslo_messaging._drivers``)
and relies on how its public API (RPC client and server, notifier, transport)
behaves around a driver; both move between releases.  Every difference the kit
has to know about is handled here, one function per difference, each saying
which releases it concerns and which oslo.messaging source it comes from.  The
rest of the kit calls these functions and never compares version numbers, so
that supporting a new release means reading (and extending) this module only.

Tested releases: 16.1.2, 17.3.2 and 18.3.1, the newest of each series the
``oslo.messaging`` pin in ``pyproject.toml`` admits (``noxfile.py`` has one
session per release).  Between them ``oslo_messaging/_drivers/base.py`` is
identical, and so are ``conffixture.ConfFixture``'s option groups, apart from
``oslo_messaging_tracing`` (new in 18.x; the kit does not depend on it).

Differences handled here:

* 16.x: the RPC client starts a process-wide metrics thread on first use, even
  with metrics disabled (:func:`owned_by_oslo_messaging`).

Differences that need no kit code, because they change what a driver does, not
what the kit assumes, are described in ``docs/findings/releases.rst``.
"""

from __future__ import annotations

import sys
import threading


def owned_by_oslo_messaging(thread: threading.Thread) -> bool:
    """Whether ``thread`` belongs to oslo.messaging's process, not to a driver or transport.

    Scenarios that check that ``cleanup()`` leaves no thread behind must not
    blame the driver for a thread oslo.messaging's public API keeps for the
    whole process, which no ``cleanup()`` is meant to end.  There is one such
    thread: the metrics collector's sender,
    ``oslo_messaging._metrics.client.METRICS_COLLECTOR.send_thread``, a
    non-daemon thread running ``MetricsCollectorClient.send_loop`` that lives
    until ``[oslo_messaging_metrics] metrics_thread_stop_timeout`` (10 s) has
    passed without a metric to send.

    * 16.x (16.1.2): ``_CallContext.cast()`` and ``call()`` in
      ``oslo_messaging/rpc/client.py`` enter
      ``metrics.get_collector(self.conf, "rpc_client", ...)`` unconditionally,
      so the first RPC cast or call in a process builds the collector, and its
      ``__init__`` starts the thread, whether ``metrics_enabled`` is set or not.
      A scenario that makes the process's first RPC call and then checks for
      leftover threads sees it (10 s is longer than any scenario).
    * 17.x and 18.x: the client enters ``metrics.measure_metrics(...)``, which
      returns at once while ``metrics_enabled`` is false (the kit never sets
      it), so the thread exists only where an operator enabled metrics; it is
      still oslo.messaging's then, hence no version check here.
    """
    client = sys.modules.get("oslo_messaging._metrics.client")
    collector = getattr(client, "METRICS_COLLECTOR", None)
    return collector is not None and getattr(collector, "send_thread", None) is thread
