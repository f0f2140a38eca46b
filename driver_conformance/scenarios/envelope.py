"""The notification itself: what a listener gets back, and how the backend stores it.

Hypotheses checked here: a notification arrives as it was sent whichever
envelope version it was sent with (``notify.envelope.transparent``), and the
version decides the stored form, 2.0 in the oslo.version/oslo.message
envelope and 1.0 bare (``notify.envelope.by-version``), which only a raw view
of the backend can show (:class:`~driver_conformance.StoredView`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from driver_conformance.kit import Kit
from driver_conformance.scenarios._support import EVENT, target

# -- driver API: the message itself ----------------------------------------------------------

def sample_message(key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A (ctxt, message) pair with the value types a JSON-ish serializer must keep."""
    ctxt = {"user": "u-1", "project_id": None, "roles": ["admin", "reader"],
            "request_id": f"req-{key}", "is_admin": True}
    message = {"key": key, "message_id": f"id-{key}", "publisher_id": "conformance",
               "event_type": EVENT, "priority": "INFO", "timestamp": "2024-01-01 00:00:00",
               "payload": {"text": "caf\u00e9 \u2713", "n": 3, "ratio": 0.25,
                           "nested": {"list": [1, "two", None, {"deep": False}]}}}
    return ctxt, message


@pytest.mark.clause("notify.envelope.transparent")
@pytest.mark.parametrize("version", [1.0, 2.0])
def test_message_arrives_as_sent(kit: Kit, version: float) -> None:
    """Hypothesis: whether or not the driver wraps the message in the 2.0 envelope on the
    wire, the listener's IncomingMessage has .message and .ctxt equal to what was sent (a
    driver that forgets to unwrap, or wraps 1.0, hands the dispatcher the wrong dict)."""
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    sub = kit.listen_notifications(kit.driver(), [(target(ex, t), "info")])
    ctxt, message = sample_message(f"v{version}")
    kit.notify(driver, target(ex, f"{t}.info"), message, version=version, ctxt=ctxt)
    got = sub.inbox.wait_for(1, kit.timing.eventually)[0]
    assert got.message == message, f"version {version}: expected {message!r}, got {got.message!r}"
    assert got.ctxt == ctxt, f"version {version}: expected ctxt {ctxt!r}, got {got.ctxt!r}"


@pytest.mark.clause("notify.envelope.by-version")
@pytest.mark.parametrize("version", [1.0, 2.0])
def test_stored_form_by_version(kit: Kit, version: float) -> None:
    """Version 2.0 is stored in the oslo.version/oslo.message envelope, 1.0 bare.

    Read past the driver, through the adapter's raw view of the backend
    (:class:`~driver_conformance.StoredView`), with no listener on the topic:
    what a listener gets back cannot tell the two forms apart (a driver that
    unwraps both passes ``notify.envelope.transparent`` either way).  Without
    a view the scenario ends NOT RUN.
    """
    view = kit.stored_view()
    driver = kit.driver()
    ex, t = kit.names.exchange(), kit.names.topic()
    marker = kit.names.unique("marker")
    ctxt, message = sample_message(marker)
    kit.notify(driver, target(ex, f"{t}.info"), message, version=version, ctxt=ctxt)
    bodies = kit.call(view.stored_notifications, ex, f"{t}.info", timeout=kit.timing.eventually,
                      what="the adapter's StoredView.stored_notifications()",
                      bound=kit.timing.eventually + kit.timing.call_bound)
    # Nothing stored with no listener is a driver that does not store and forward, judged
    # there; the form of what is stored cannot be judged without something stored.
    with kit.relying_on("notify.store-and-forward.before-first-listener"):
        assert bodies, (f"expected the notification stored at {ex}/{t}.info, "
                        "the raw view found none")
    body = bodies[0].decode("utf-8", "replace")
    assert marker in body, f"expected the stored body to carry the message sent, got {body!r}"
    shown = body if len(body) <= 160 else body[:160] + "..."
    stored = json.loads(body)
    enveloped = isinstance(stored, dict) and "oslo.message" in stored
    if version >= 2.0:
        assert enveloped and stored.get("oslo.version") == "2.0" \
            and isinstance(stored["oslo.message"], str), (
            f"version 2.0: expected the oslo.version/oslo.message envelope, stored {shown!r}")
    else:
        assert not enveloped and "oslo.version" not in stored, (
            f"version 1.0: expected the bare message, not enveloped, stored {shown!r}")
