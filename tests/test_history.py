"""The delivery-history checker classifies what it is told, and nothing else."""

from __future__ import annotations

import threading

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
