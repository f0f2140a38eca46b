"""Time in scenarios: scaled constants, deadlines, and waits that return early.

Every duration a scenario uses goes through :class:`Timing`, so one factor
(``--time-scale``) stretches them all on a slow or loaded machine.  Nothing
here sleeps to synchronise: positive outcomes are waited for on a condition
with a deadline and return as soon as they hold, and "nothing else arrives"
is a single bounded quiet window.
"""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass(frozen=True)
class Timing:
    """The kit's timing constants, multiplied by ``scale``."""

    scale: float = 1.0
    #: Unscaled length of the quiet window; adapters set it from their backend's
    #: latency (an in-process broker needs less than a networked one).
    quiet_base: float = 0.5

    def s(self, seconds: float) -> float:
        """``seconds`` stretched by the scale factor."""
        return seconds * self.scale

    @property
    def eventually(self) -> float:
        """Ceiling for a positive outcome (a message arriving, a reply)."""
        return self.s(5.0)

    @property
    def quiet(self) -> float:
        """The window in which "nothing else arrives" is checked."""
        return self.s(self.quiet_base)

    @property
    def short(self) -> float:
        """Nominal value for a timer clause (a send timeout, a batch timeout).

        Short, because every timer scenario waits it out; the tolerances of
        :meth:`lower` and :meth:`upper` are what keep it stable under load.
        """
        return self.s(0.2)

    @property
    def call_bound(self) -> float:
        """The longest any single driver call may take before it counts as hung."""
        return self.s(10.0)

    @property
    def after_hang(self) -> float:
        """The bound of each teardown call after one has hung (it has failed already)."""
        return self.s(1.0)

    @property
    def slack(self) -> float:
        """Absolute tolerance added above a nominal duration (scheduling, GC, a loaded box)."""
        return self.s(0.6)

    def lower(self, nominal: float) -> float:
        """The earliest a timer of ``nominal`` (already scaled) may fire: 10% early at most."""
        return nominal * 0.9 - 0.02

    def upper(self, nominal: float) -> float:
        """The latest a timer of ``nominal`` (already scaled) may fire."""
        return nominal * 1.25 + self.slack


class Deadline:
    """A point in monotonic time; ``remaining()`` never goes below zero."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at


class Stopwatch:
    """Elapsed monotonic seconds since creation."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
