"""Broken lifecycle: listen(), send() and cleanup() return too early.

Mirrors :mod:`driver_conformance.scenarios.lifecycle`.  Each variant moves
work that must be done before a call returns (subscribing, handing a
message to the backend, tearing threads down) to later or to a background
thread, which is what the lifecycle scenarios catch: a lost message or a
thread still running after cleanup.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from driver_conformance.broken._registry import _pause, variant
from driver_conformance.broken.wrappers import ListenInfo, WrappedDriver, WrappedListener


@variant("lazy-subscribe", "listen.blocks.until-subscribed",
         "listen() returns before subscribing; the subscription is made by start()")
class LazySubscribe(WrappedDriver):
    """The subscription is made in ``start()``, not in ``listen()``.

    A message sent between ``listen()`` and ``start()`` finds no queue bound
    to its address and is dropped; the contract makes ``listen()`` block
    until the subscription exists precisely so that it is kept.
    """

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        listener = WrappedListener(
            self, None, batch_size, batch_timeout, ListenInfo("rpc", [(target, None)]),
            make_inner=lambda: self.inner.listen(target, batch_size, batch_timeout))
        with self._lock:
            self._listeners.append(listener)
        return listener


@variant("cleanup-leaking-threads", "driver.cleanup.blocks",
         "cleanup() returns at once and tears the driver down in a background thread")
class CleanupLeakingThreads(WrappedDriver):
    """``cleanup()`` hands the real cleanup to a lingering non-daemon thread and returns.

    Drivers that close connections asynchronously (a reaper thread, a
    ``close()`` that only schedules) return from cleanup while their threads
    still run; the reaper waits a moment before working, as such reapers do.
    """

    def on_cleanup(self) -> None:
        def reap() -> None:
            _pause(1.0)
            self.inner.cleanup()

        threading.Thread(target=reap, name=f"reference-reaper-{uuid.uuid4().hex[:6]}",
                         daemon=False).start()


@variant("cast-async-handoff", "send.cast.returns-after-handoff",
         "a cast returns before the message is handed to the backend")
class CastAsyncHandoff(WrappedDriver):
    """Casts are queued for a background publisher and ``send()`` returns at once.

    A driver with a send buffer that ``cleanup()`` does not flush: a cast
    made right before cleanup is silently lost.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("wait_for_reply"):
            return super().send(target, ctxt, message, **kwargs)

        def publish() -> None:
            _pause(0.3)
            try:
                WrappedDriver.send(self, target, ctxt, message, **kwargs)
            except Exception:  # the buffer is gone with the driver; nobody hears of it
                pass

        threading.Thread(target=publish, name="broken-publisher", daemon=True).start()
        return None


@variant("notify-async-handoff", "notify.send.blocks-until-accepted",
         "send_notification() returns before the backend has the notification")
class NotifyAsyncHandoff(WrappedDriver):
    """Notifications are queued for a background publisher; ``cleanup()`` does not flush it.

    The notification twin of ``cast-async-handoff``: a service that
    notifies and then shuts down loses its last notifications.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        def publish() -> None:
            _pause(0.3)
            try:
                WrappedDriver.send_notification(self, target, ctxt, message, version, retry)
            except Exception:
                pass

        threading.Thread(target=publish, name="broken-notifier", daemon=True).start()
        return None
