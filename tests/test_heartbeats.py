"""The heartbeat scenarios tell a driver's early timeout from the kit's own stalled thread."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from driver_conformance.scenarios._support import Pending
from driver_conformance.scenarios.timeouts import Heartbeats, heartbeats_stalled
from driver_conformance.timing import Timing

CMT = 0.2


class Message:
    """An incoming call whose ``heartbeat()`` blocks while ``hold`` is clear."""

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()

    def heartbeat(self) -> None:
        self.hold.wait(5)


def stand_in_kit() -> Any:
    return SimpleNamespace(timing=Timing(1.0),
                           call=lambda fn, *a, what, **kw: fn(*a, **kw))


def held_for(seconds: float) -> Message:
    """A message whose ``heartbeat()`` blocks the kit's thread for the first ``seconds``."""
    message = Message()
    message.hold.clear()
    threading.Timer(seconds, message.hold.set).start()
    return message


def beat_for(message: Message, seconds: float) -> tuple[Heartbeats, Pending]:
    kit = stand_in_kit()
    beats = Heartbeats(kit, message, CMT / 4)
    done = threading.Event()
    pending = Pending(lambda: done.wait(seconds), "a call")
    pending.done.wait(seconds + 5)
    beats.stop()
    return beats, pending


def test_regular_heartbeats_do_not_excuse_an_early_timeout() -> None:
    beats, pending = beat_for(Message(), CMT * 3)
    assert beats.beats >= 4
    assert beats.largest_gap(pending.finished) < CMT / 2
    assert not heartbeats_stalled(stand_in_kit(), pending, beats, CMT)


def test_a_heartbeat_thread_silent_for_the_call_monitor_is_a_stall() -> None:
    """The thread's own silence: a long pause before its first beat (a stalled scheduler)."""
    kit = stand_in_kit()
    beats = Heartbeats(kit, Message(), CMT * 1.5)
    pending = Pending(lambda: threading.Event().wait(CMT * 3), "a call")
    pending.done.wait(CMT * 3 + 5)
    beats.stop()
    assert beats.largest_gap(pending.finished) >= CMT * 1.4
    assert heartbeats_stalled(kit, pending, beats, CMT)


def test_time_inside_the_drivers_heartbeat_is_not_the_kits_silence() -> None:
    """A ``heartbeat()`` that blocks is the driver's doing: it excuses no early timeout."""
    beats, pending = beat_for(held_for(CMT * 2.5), CMT * 2)
    assert beats.largest_gap(pending.finished) < CMT / 2
    assert not heartbeats_stalled(stand_in_kit(), pending, beats, CMT)
