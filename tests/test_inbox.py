"""The inbox: what a listener delivers, waited for with a deadline, never a sleep."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from driver_conformance.inbox import Inbox


class Message:
    def __init__(self, body: Any) -> None:
        self.message = body
        self.acked = 0

    def acknowledge(self) -> None:
        self.acked += 1


def deliver_later(inbox: Inbox, batches: list[list[Message]]) -> threading.Thread:
    thread = threading.Thread(target=lambda: [inbox(b) for b in batches], daemon=True)
    thread.start()
    return thread


def test_wait_for_returns_as_soon_as_the_count_is_there() -> None:
    inbox = Inbox("a")
    deliver_later(inbox, [[Message(1)], [Message(2), Message(3)]])
    started = time.monotonic()
    got = inbox.wait_for(3, 5.0)
    assert time.monotonic() - started < 1.0
    assert [m.message for m in got] == [1, 2, 3]
    assert [len(b) for b in inbox.batches] == [1, 2] and len(inbox.arrivals) == 3


def test_wait_for_fails_naming_the_inbox_and_the_count() -> None:
    inbox = Inbox("lonely")
    inbox([Message(1)])
    with pytest.raises(AssertionError, match=r"inbox 'lonely': expected 2 .* got 1"):
        inbox.wait_for(2, 0.05)


def test_gather_does_not_judge() -> None:
    inbox = Inbox()
    assert inbox.gather(1, 0.05) == []


def test_messages_are_acknowledged_unless_told_not_to() -> None:
    acked, kept = Message("a"), Message("k")
    Inbox()([acked])
    Inbox(ack=False)([kept])
    assert (acked.acked, kept.acked) == (1, 0)


def test_on_message_runs_for_each_message() -> None:
    seen: list[Any] = []
    inbox = Inbox(on_message=lambda m: seen.append(m.message))
    inbox([Message(1), Message(2)])
    assert seen == [1, 2] and inbox.bodies() == [1, 2]


def test_after_close_deliveries_are_kept_apart() -> None:
    inbox = Inbox()
    inbox([Message("before")])
    inbox.close()
    late = Message("late")
    inbox([late])
    assert inbox.count() == 1 and inbox.after_close == [late] and late.acked == 0


def test_quiet_waits_out_its_window_and_counts_late_arrivals() -> None:
    inbox = Inbox()
    deliver_later(inbox, [[Message("late")]])
    started = time.monotonic()
    got = inbox.quiet(0.1)
    assert time.monotonic() - started >= 0.1
    assert [m.message for m in got] == ["late"]
