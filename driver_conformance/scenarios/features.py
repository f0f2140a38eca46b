"""Features: what a driver says it supports must match what it does.

Two optional features are declared both by the adapter (:class:`Capabilities`)
and by the driver itself: ``require_features(requeue=True)`` and a ``pool``
passed to ``listen_for_notifications``.  The scenarios hold the two declarations
against each other and against behaviour: a declared feature must be accepted
(and then work, which the OPTIONAL clauses check), an undeclared one must be
refused with ``NotImplementedError``, never silently accepted and half done.
The RPC profile is held to the same rule: a notifications-only driver refuses
``send()`` and ``listen()``.

When a feature is declared supported, the refusal scenario does not apply and
ends NOT RUN; the clause is then decided by the acceptance scenarios.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from driver_conformance import outcomes
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import attempt, key_of, publish, target

# -- require_features ---------------------------------------------------------------------

@pytest.mark.clause("features.requeue.declared")
def test_require_features_without_flags(kit: Kit) -> None:
    """Hypothesis: asking for no feature, or for requeue=False, asks for nothing, so no
    driver may refuse it, whatever it supports (a driver that raises here could not be
    used by any caller that checks features defensively)."""
    driver = kit.driver()
    for kwargs in ({}, {"requeue": False}):
        try:
            kit.call(driver.require_features, what="driver.require_features()", **kwargs)
        except NotImplementedError as exc:
            pytest.fail(f"require_features({kwargs}) must not raise; raised {exc!r}")


@pytest.mark.clause("features.requeue.declared")
def test_requeue_declared_is_accepted(kit: Kit) -> None:
    """Hypothesis: an adapter that declares requeue has a driver that accepts
    require_features(requeue=True); the requeue clauses then run against that claim."""
    kit.require("requeue")
    driver = kit.driver()
    try:
        kit.call(driver.require_features, requeue=True, what="driver.require_features()")
    except NotImplementedError as exc:
        pytest.fail("the adapter declares requeue, but require_features(requeue=True) "
                    f"raised {exc!r}: declare it unsupported or support it")


@pytest.mark.clause("features.requeue.declared")
def test_requeue_undeclared_is_refused(kit: Kit) -> None:
    """Hypothesis: when requeue is declared unsupported, require_features(requeue=True)
    raises NotImplementedError; a driver that accepts it would let callers rely on a
    requeue the suite never checked."""
    if kit.caps.requeue:
        outcomes.not_run("requeue is declared supported: the refusal does not apply")
    driver = kit.driver()
    with pytest.raises(NotImplementedError):
        kit.call(driver.require_features, requeue=True, what="driver.require_features()")


@pytest.mark.clause("features.rpc.declared")
def test_rpc_declared_is_accepted(kit: Kit) -> None:
    """Hypothesis: an adapter that declares rpc has a driver whose listen() and send()
    work: a cast reaches the listener (the RPC clauses then check the profile in full)."""
    kit.require("rpc")
    driver = kit.driver()
    to = kit.names.target(server=True)
    try:
        sub = kit.listen(driver, to)
        kit.send(driver, to, {"key": "rpc"})
    except NotImplementedError as exc:
        pytest.fail(f"the adapter declares rpc, but the driver refused it: {exc!r}; declare "
                    "rpc unsupported (a notifications-only driver) or support it")
    got = [key_of(m.message) for m in sub.inbox.wait_for(1, kit.timing.eventually)]
    assert got == ["rpc"], f"expected the cast ['rpc'] at the listener, got {got}"


@pytest.mark.clause("features.rpc.declared")
def test_rpc_undeclared_is_refused(kit: Kit) -> None:
    """Hypothesis: when rpc is declared unsupported, a cast, a call and listen() each raise
    NotImplementedError (promptly: the call has a short timeout), while notifications
    still flow, so the refusal is about RPC and not a broken driver.  A driver that
    accepts a cast no server will receive lets an RPCClient believe it was sent."""
    if kit.caps.rpc:
        outcomes.not_run("rpc is declared supported: the refusal does not apply")
    kit.require("notifications")
    driver = kit.driver()
    to = kit.names.target(server=True)
    calls: dict[str, Callable[[], Any]] = {
        "send() of a cast": lambda: kit.call(driver.send, to, {}, {"key": "cast"},
                                             what="driver.send() (a cast)"),
        "send(wait_for_reply=True)": lambda: kit.call(
            driver.send, to, {}, {"key": "call"}, wait_for_reply=True,
            timeout=kit.timing.short, what="driver.send(wait_for_reply=True)"),
        "listen()": lambda: kit.call(driver.listen, to, 1, None, what="driver.listen()"),
    }
    not_refused = []
    for what, call in calls.items():
        outcome = attempt(call)
        if isinstance(outcome, NotImplementedError):
            continue
        if isinstance(outcome, BaseException):
            not_refused.append(f"{what} raised {outcome!r}")
            continue
        if what == "listen()":
            kit.on_teardown(outcome.cleanup, "the accepted listener's cleanup()")
        not_refused.append(f"{what} returned {type(outcome).__name__}")
    assert not not_refused, (
        "rpc is declared unsupported, so each of these must raise NotImplementedError: "
        + "; ".join(not_refused))
    ex, t = kit.names.exchange(), kit.names.topic()
    sub = kit.listen_notifications(kit.driver(), [(target(ex, t), "info")])
    publish(kit, driver, ex, t, "info", "still-notifies", record=False)
    sub.inbox.wait_for(1, kit.timing.eventually)


# -- pools --------------------------------------------------------------------------------

@pytest.mark.clause("notify-listen.pool.unsupported-raises")
def test_pool_declared_is_accepted(kit: Kit) -> None:
    """Hypothesis: with pools declared, a pooled listen_for_notifications does not raise
    and its listener receives what is published to its targets (the pools clauses check
    the one-copy-per-pool semantics in full)."""
    kit.require("pools")
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    try:
        sub = kit.listen_notifications(kit.driver(), [(target(ex, t), "info")],
                                       pool=kit.names.pool())
    except NotImplementedError as exc:
        pytest.fail(f"the adapter declares pools, but a pooled listen raised {exc!r}")
    publish(kit, driver, ex, t, "info", "pooled", record=False)
    got = [key_of(m.message) for m in sub.inbox.wait_for(1, kit.timing.eventually)]
    assert got == ["pooled"], f"pooled listener: expected ['pooled'], got {got}"


@pytest.mark.clause("notify-listen.pool.unsupported-raises")
def test_pool_undeclared_is_refused(kit: Kit) -> None:
    """Hypothesis: with pools declared unsupported, listen_for_notifications with a pool
    raises NotImplementedError, while the same call without a pool still works (so the
    refusal is about the pool, not about notifications)."""
    kit.require("notifications")
    if kit.caps.pools:
        outcomes.not_run("pools are declared supported: the refusal does not apply")
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    pairs = [(target(ex, t), "info")]
    with pytest.raises(NotImplementedError):
        kit.listen_notifications(kit.driver(), pairs, pool=kit.names.pool())
    sub = kit.listen_notifications(kit.driver(), pairs)
    publish(kit, driver, ex, t, "info", "plain", record=False)
    sub.inbox.wait_for(1, kit.timing.eventually)


@pytest.mark.clause("notify-listen.pool.unsupported-raises")
def test_public_pool_undeclared_is_refused(kit: Kit) -> None:
    """Hypothesis: through the public API the refusal reaches the caller: starting a
    notification listener with a pool raises NotImplementedError instead of running a
    listener that is not pooled."""
    kit.require("notifications")
    if kit.caps.pools:
        outcomes.not_run("pools are declared supported: the refusal does not apply")

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            """Never reached: the listener must not start."""

    with pytest.raises(NotImplementedError):
        kit.notification_listener(kit.notification_transport(),
                                  [target(None, kit.names.topic())], [Endpoint()],
                                  pool=kit.names.pool())
