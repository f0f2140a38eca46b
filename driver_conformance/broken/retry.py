"""Broken retry: sends while the backend is down, flaky or cut.

Mirrors :mod:`driver_conformance.scenarios.retry`.  These breakages are
only visible while the backend misbehaves, so every variant here is
caught through the adapter's fault injection: retrying too much, too
little, not at all, with duplicates, or failing with the wrong exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import oslo_messaging

from driver_conformance.broken._registry import _pause, variant
from driver_conformance.broken.wrappers import WrappedDriver


@variant("wrong-exceptions", "send.errors.messaging-exception",
         "send() failures surface as builtin TimeoutError/ConnectionError, "
         "not MessagingException")
class WrongExceptions(WrappedDriver):
    """Timeouts become ``TimeoutError``, delivery failures ``ConnectionError``.

    This is the driver that lets its backend library's exceptions escape
    (socket timeouts, connection errors) instead of translating them into
    oslo.messaging's, so callers catching ``MessagingException`` miss them.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        try:
            return super().send(target, ctxt, message, **kwargs)
        except oslo_messaging.MessagingTimeout as exc:
            raise TimeoutError(str(exc)) from None
        except oslo_messaging.MessageDeliveryFailure as exc:
            raise ConnectionError(str(exc)) from None


class _OwnRetryLoop(WrappedDriver):
    """Retries sends itself, one attempt of the wrapped driver at a time (``retry=0``)."""

    def _retrying(self, attempt: Callable[[], Any], retry: int | None,
                  timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            try:
                return attempt()
            except oslo_messaging.MessageDeliveryFailure:
                failures += 1
                if retry is not None and retry >= 0 and failures > retry:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise oslo_messaging.MessagingTimeout(
                        f"send timed out after {failures} attempt(s)") from None
                _pause(0.05)


@variant("duplicate-on-retry", "send.retry.no-duplicates",
         "a publish whose confirmation was lost is published again under a new id")
class DuplicateOnRetry(_OwnRetryLoop):
    """The driver's retry loop republishes a message whenever an attempt reports failure.

    Every attempt is a fresh publish (a new message id), so when the backend
    stored the message but its confirmation was lost, the retry stores a
    second copy: the classic at-least-once retry loop the contract forbids.
    Casts and notifications only; calls are sent as the reference sends them.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        if kwargs.get("wait_for_reply"):
            return super().send(target, ctxt, message, **kwargs)
        retry, timeout = kwargs.get("retry"), kwargs.get("timeout")
        once = dict(kwargs, retry=0)
        return self._retrying(lambda: WrappedDriver.send(self, target, ctxt, message, **once),
                              retry, timeout)

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return self._retrying(
            lambda: WrappedDriver.send_notification(self, target, ctxt, message, version, 0),
            retry, None)


@variant("retry-ignored", "send.retry.bounded-delivery-failure",
         "retry=0 and retry=N are treated as unlimited retries")
class RetryIgnored(WrappedDriver):
    """``send()`` retries forever whatever ``retry`` says.

    A driver whose reconnect loop has no attempt counter: with the backend
    down, a caller asking for no retry (or N retries) blocks until the
    backend comes back instead of getting MessageDeliveryFailure.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        kwargs["retry"] = None
        return super().send(target, ctxt, message, **kwargs)


@variant("retry-overshoot", "send.retry.bounded-delivery-failure",
         "retry=N makes N + 3 retries before giving up")
class RetryOvershoot(WrappedDriver):
    """``send()`` gives up, as it should, but only after more attempts than allowed.

    An off-by-several attempt counter (counting reconnects and publishes
    separately, say): the caller still gets MessageDeliveryFailure, a little
    late, so only counting the attempts the backend saw can tell.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        retry = kwargs.get("retry")
        if retry is not None and retry >= 0:
            kwargs["retry"] = retry + 3
        return super().send(target, ctxt, message, **kwargs)


@variant("no-retry", "send.retry.unlimited",
         "send() never retries: retry=None fails at the first backend error")
class NoRetry(WrappedDriver):
    """``send()`` makes one attempt whatever ``retry`` says.

    A driver without a reconnect loop: any broker hiccup fails the send, even
    when the caller asked for unlimited retries.
    """

    def send(self, target: Any, ctxt: Any, message: Any, **kwargs: Any) -> Any:
        kwargs["retry"] = 0
        return super().send(target, ctxt, message, **kwargs)


@variant("notify-no-retry", "notify.retry.honoured",
         "send_notification() ignores retry and never retries")
class NotifyNoRetry(WrappedDriver):
    """``send_notification()`` makes one attempt whatever ``retry`` says.

    Notifications often take a separate code path in drivers, and the retry
    argument is easy to drop there: retry=-1 then fails during an outage
    instead of waiting for the backend.
    """

    def send_notification(self, target: Any, ctxt: Any, message: Any, version: float,
                          retry: int | None = None) -> Any:
        return super().send_notification(target, ctxt, message, version, 0)
