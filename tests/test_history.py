"""The delivery-history checker classifies what it is told, and nothing else."""

from __future__ import annotations

import threading
import time

import pytest

from driver_conformance import history as h
from driver_conformance.history import History


def make(sends: dict[str, str], receipts: list[str]) -> History:
    hist = History()
    for key, status in sends.items():
        hist.invoked(key)
        hist.finished(key, status)
    for key in receipts:
        hist.received(key, "l")
    return hist


def test_clean_run() -> None:
    counts = make({"a": h.OK, "b": h.OK}, ["a", "b"]).check()
    assert counts.clean and counts.sent == 2 and counts.received == 2


@pytest.mark.parametrize(("sends", "receipts", "field"), [
    ({"a": h.OK}, [], "lost"),
    ({"a": h.OK}, ["a", "a"], "duplicated"),
    ({"a": h.FAILED}, ["a", "a"], "duplicated"),
    ({}, ["x"], "unexpected"),
    ({"a": h.FAILED}, ["a"], "recovered"),
    ({"a": h.UNKNOWN}, ["a"], "recovered"),
])
def test_each_class(sends: dict[str, str], receipts: list[str], field: str) -> None:
    counts = make(sends, receipts).check().as_dict()
    assert counts[field] == 1
    others = {"lost", "duplicated", "unexpected", "recovered"} - {field}
    assert all(counts[o] == 0 for o in others), counts


def test_failed_and_lost_is_not_lost() -> None:
    assert make({"a": h.FAILED}, []).check().lost == 0


def test_copies_per_key() -> None:
    assert make({"a": h.OK}, ["a", "a"]).check(copies=2).clean
    assert make({"a": h.OK}, ["a"]).check(copies=2).lost == 1


def test_wait_received_returns_as_soon_as_it_arrives() -> None:
    hist = History()
    threading.Timer(0.05, hist.received, args=("k", "there")).start()
    assert hist.wait_received("k", timeout=5) == ["there"]
    with pytest.raises(AssertionError, match="expected 'z' to arrive"):
        hist.wait_received("z", timeout=0.05)


def test_wait_owed_returns_once_every_returned_send_arrived() -> None:
    """A barrier judged before an earlier cast's endpoint ran must not count that cast
    lost: wait_owed waits for it, bounded, and says False when it never comes."""
    history = History()
    for key in ("c-0", "barrier"):
        history.invoked(key)
        history.finished(key, h.OK)
    history.received("barrier")
    late = threading.Timer(0.05, history.received, args=("c-0",))
    late.start()
    assert history.wait_owed(5.0) is True
    assert history.check().clean
    history.invoked("never")
    history.finished("never", h.OK)
    started = time.monotonic()
    assert history.wait_owed(0.1) is False
    assert time.monotonic() - started < 1.0
    assert history.check().lost == 1
