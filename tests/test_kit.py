"""The kit's own helpers, on a stub run: profiles required, calls bounded, teardown ordered.

No backend and no driver: the "drivers" here are small objects that record
what the kit calls, so each test is a few milliseconds (waits are bounded by
a fraction of a second).
"""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest

from driver_conformance import outcomes
from driver_conformance.adapter import Capabilities
from driver_conformance.bounded import DriverHung
from driver_conformance.inbox import Inbox
from driver_conformance.kit import Kit, Subscription
from driver_conformance.timing import Timing


def stub_kit(**caps: bool) -> Kit:
    run: Any = types.SimpleNamespace(timing=Timing(scale=0.02), capabilities=Capabilities(**caps),
                                     prefix="unit", observed={}, backend=None,
                                     adapter=types.SimpleNamespace(name="stub"))
    return Kit(run)


class Recorder:
    """A stand-in driver: records each call, returns None."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record


def test_notify_sends_what_the_public_notifier_sends() -> None:
    driver = Recorder()
    stub_kit().notify(driver, "target", {"k": 1})
    assert driver.calls == [("send_notification", ("target", {}, {"k": 1}, 2.0, -1), {})]


@pytest.mark.parametrize("method", ["send", "listen", "rpc_transport"])
def test_rpc_methods_are_unsupported_without_the_rpc_profile(method: str) -> None:
    kit, driver = stub_kit(rpc=False), Recorder()
    args = {"send": (driver, "target", {}), "listen": (driver, "target"),
            "rpc_transport": ()}[method]
    with pytest.raises(outcomes.Unsupported, match="no support for rpc"):
        getattr(kit, method)(*args)
    assert driver.calls == [], "the driver must not be called at all"


def test_notification_methods_are_unsupported_without_notifications() -> None:
    kit, driver = stub_kit(notifications=False), Recorder()
    with pytest.raises(outcomes.Unsupported, match="no support for notifications"):
        kit.notify(driver, "target", {})
    with pytest.raises(outcomes.Unsupported):
        kit.listen_notifications(driver, [])
    assert driver.calls == []


def test_a_hung_call_fails_within_its_bound_and_is_recorded() -> None:
    kit, release = stub_kit(), threading.Event()
    try:
        with pytest.raises(DriverHung, match="stuck"):
            kit.call(release.wait, 5.0, what="stuck", bound=0.05)
    finally:
        release.set()
    assert kit.hung == ["stuck"]


def test_teardown_runs_in_reverse_and_reports_what_failed() -> None:
    kit, order = stub_kit(), []
    kit.on_teardown(lambda: order.append("first made"), "first")

    def broken() -> None:
        order.append("second made")
        raise RuntimeError("boom")

    kit.on_teardown(broken, "second")
    errors = kit.close()
    assert order == ["second made", "first made"]
    assert errors == ["second raised RuntimeError('boom')"]
    assert kit.close() == errors, "teardown actions run once"


def test_a_subscription_stops_only_what_it_started() -> None:
    kit, listener = stub_kit(), Recorder()
    unstarted = Subscription(kit, listener, Inbox("a"), "listener")
    unstarted.cleanup()
    assert [c[0] for c in listener.calls] == ["cleanup"]
    listener.calls.clear()
    started = Subscription(kit, listener, Inbox("b"), "listener")
    started.start()
    started.cleanup()
    started.cleanup()
    assert [c[0] for c in listener.calls] == ["start", "stop", "cleanup"]


def test_relying_on_an_unknown_clause_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="no such clause"):
        stub_kit().relying_on("no.such.clause")


def test_names_are_unique_under_the_prefix() -> None:
    names = stub_kit().names
    first, second = names.target(server=True), names.target(server=True)
    assert first.topic != second.topic and first.server != second.server
    assert all(n.startswith("unit-") for n in (first.topic, first.exchange, first.server))
