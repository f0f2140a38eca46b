"""Broken listeners: callback batches and stop, and poll-style listeners.

Mirrors :mod:`driver_conformance.scenarios.listeners`.  The variants come in
two groups, as the scenarios do: the callback listener's batches and stop,
and ``poll()`` of a poll-style listener (its timeout, batch size, batch
timer, stop, and errors).  What a listener delivers is :mod:`.incoming`'s.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from driver_conformance.broken._registry import variant
from driver_conformance.broken.wrappers import (
    WrappedDriver,
    WrappedListener,
    WrappedPollAdapter,
    WrappedPoller,
)

# -- callback-style listeners ----------------------------------------------------------


@variant("callback-after-stop", "listener.stop.no-callback-after",
         "stop() returns at once but the listener keeps calling back until cleanup()")
class CallbackAfterStop(WrappedDriver):
    """``stop()`` only flags the listener; the consumer runs on until ``cleanup()``.

    Drivers that stop consuming lazily (a flag checked by the consumer
    thread at its next turn, or a cancel deferred to cleanup) call the
    callback after ``stop()`` returned, while the server is already shutting
    its executor down.
    """

    def on_listener_stop(self, listener: WrappedListener | WrappedPollAdapter) -> None:
        return None


@variant("batches-ignored", "listener.batch.at-most-batch-size",
         "batch_size is ignored: the callback gets everything available at once")
class BatchesIgnored(WrappedDriver):
    """A listener asked for batches of N gathers up to 100 messages per callback.

    A driver that uses its prefetch count as the batch size hands a batch
    notification listener more than it asked for in one call.
    """

    BIG = 100

    def listen(self, target: Any, batch_size: int, batch_timeout: float | None) -> Any:
        return super().listen(target, self.BIG if batch_size > 1 else batch_size,
                              batch_timeout)

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Any:
        return super().listen_for_notifications(
            targets_and_priorities, pool, self.BIG if batch_size > 1 else batch_size,
            batch_timeout)


# -- poll-style listeners --------------------------------------------------------------


@variant("poll-batch-timer-from-entry", "poll.batch-timeout.from-first-message",
         "poll()'s batch timer starts when poll() is entered, as batch_poll_helper does")
class PollBatchTimerFromEntry(WrappedDriver):
    """``poll`` collects one message at a time until ``batch_timeout`` after poll *entry*.

    This is exactly oslo.messaging's ``batch_poll_helper``, used by every
    in-tree driver: ``timeout = batch_timeout or timeout``, so a first
    message arriving late in the window is returned at the window's end
    instead of ``batch_timeout`` after it arrived.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        limit = batch_timeout or timeout
        deadline = None if limit is None else time.monotonic() + limit
        got: list[Any] = []
        while len(got) < batch_size:
            # None only when the caller gave neither timer: its own "wait until a
            # message or stop()", which the wrapped poll ends by returning [].
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            one = poller.inner.poll(timeout=left, batch_size=1)
            if not one:
                break
            got += one
        return poller.wrap(got)


@variant("poll-batch-not-waited", "poll.batch-size.waits-for-full-batch",
         "poll() returns as soon as one message is there, without waiting for the batch")
class PollBatchNotWaited(WrappedDriver):
    """``poll(batch_size>1)`` returns whatever is available once the first message came.

    A driver that treats batch_size as a maximum and never waits for more:
    batch notification listeners get batches of one under light load.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=timeout, batch_size=batch_size,
                                             batch_timeout=0))


@variant("poll-over-batch-size", "poll.returns.up-to-batch-size",
         "poll() returns up to batch_size + 3 messages")
class PollOverBatchSize(WrappedDriver):
    """``poll`` fetches ``batch_size + 3`` messages per call.

    A driver that adds its prefetch to the batch (or fetches a fixed number)
    returns more messages than the caller can take in one batch.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=timeout, batch_size=batch_size + 3,
                                             batch_timeout=batch_timeout))


@variant("poll-timeout-ignored", "poll.timeout.returns-empty",
         "poll(timeout=T) does not wait: it returns [] at once when nothing is there")
class PollTimeoutIgnored(WrappedDriver):
    """A finite ``timeout`` is treated as 0: poll never blocks waiting for a message.

    A non-blocking ``basic_get``-style poll: callers expecting to wait up to
    ``timeout`` spin instead.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        return poller.wrap(poller.inner.poll(timeout=0.0 if timeout is not None else None,
                                             batch_size=batch_size,
                                             batch_timeout=batch_timeout))


@variant("poll-stop-not-unblocking", "poll.stop.unblocks",
         "stop() does not wake a poll() in progress (only cleanup() does)")
class PollStopNotUnblocking(WrappedDriver):
    """``stop()`` only sets a flag; a ``poll(timeout=None)`` in progress stays blocked.

    A poller that checks its stop flag between receives but never interrupts
    the receive itself: the server's stop() then waits forever for its
    polling thread.  ``cleanup()`` does interrupt it, so nothing leaks.
    """

    def on_poller_stop(self, poller: WrappedPoller) -> None:
        return None


@variant("poll-stop-hangs", "poll.stop.unblocks",
         "stop() blocks until cleanup() (a stop waiting on its own consumer thread)")
class PollStopHangs(WrappedDriver):
    """``stop()`` waits for the poller's consumer to finish, which only ``cleanup()`` ends.

    A driver whose stop joins a thread that is itself waiting to be told to
    stop: stop() never returns on its own (here: until cleanup(), or
    :data:`HANG` seconds).  Only the stop clauses may fail for it; the other
    poll scenarios rely on stop() and are not judged (NOT RUN).
    """

    #: The longest stop() blocks when no cleanup() comes (longer than any call bound).
    HANG = 60.0

    def on_poller_stop(self, poller: WrappedPoller) -> None:
        released = poller.state.setdefault("cleaned", threading.Event())
        released.wait(self.HANG)
        poller.inner.stop()

    def on_poller_cleanup(self, poller: WrappedPoller) -> None:
        poller.state.setdefault("cleaned", threading.Event()).set()
        poller.really_cleanup()


@variant("poll-raises-after-stop", "poll.errors.no-raise",
         "poll() raises once the listener is stopped or cleaned up")
class PollRaisesAfterStop(WrappedDriver):
    """``poll()`` on a stopped poller raises ``RuntimeError`` instead of returning.

    Backend consumers raise on a cancelled consumer; a driver that does not
    catch it breaks the contract "poll does not raise".  The poll thread of
    the adapter is spared (it would retry forever, once a second, and never
    let ``stop()`` return), so only direct callers see the exception.
    """

    def on_poll(self, poller: WrappedPoller, timeout: float | None, batch_size: int,
                batch_timeout: float | None) -> list[Any]:
        spared = threading.current_thread() is poller.adapter_thread
        if poller.stopped and not spared:
            raise RuntimeError("poll() on a stopped listener: consumer cancelled")
        return super().on_poll(poller, timeout, batch_size, batch_timeout)
