"""Features: what a driver says it supports must match what it does.

Two optional features are declared both by the adapter (:class:`Capabilities`)
and by the driver itself: ``require_features(requeue=True)`` and a ``pool``
passed to ``listen_for_notifications``.  The scenarios hold the two declarations
against each other and against behaviour: a declared feature must be accepted
(and then work, which the OPTIONAL clauses check), an undeclared one must be
refused with ``NotImplementedError``, never silently accepted and half done.

When a feature is declared supported, the refusal scenario does not apply and
ends NOT RUN; the clause is then decided by the acceptance scenarios.
"""

from __future__ import annotations

import pytest

from driver_conformance import outcomes
from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import key_of, target


def publish_info(kit: Kit, driver: object, exchange: str, topic: str, key: str) -> None:
    kit.notify(driver, target(exchange, f"{topic}.info"),
               {"key": key, "event_type": "conformance.event", "priority": "INFO",
                "payload": {}})


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
    publish_info(kit, driver, ex, t, "pooled")
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
    publish_info(kit, driver, ex, t, "plain")
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
        def info(self, ctxt: object, publisher_id: str, event_type: str, payload: object,
                 metadata: object) -> None:
            """Never reached: the listener must not start."""

    with pytest.raises(NotImplementedError):
        kit.notification_listener(kit.notification_transport(),
                                  [target(None, kit.names.topic())], [Endpoint()],
                                  pool=kit.names.pool())
