"""Bounded driver calls: a hung driver fails its scenario, not the run.

Every call the kit makes into a driver goes through :func:`call_bounded`.
The call runs on a helper thread; if it has not returned within its bound,
the scenario fails with :class:`DriverHung` naming the call, and the thread
is left behind as a daemon.  The kit records which calls of a scenario hung
(:attr:`driver_conformance.kit.Kit.hung`), so the report can say which driver
calls never came back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

class DriverHung(AssertionError):
    """A driver call did not return within its bound."""


def call_bounded(fn: Callable[..., T], *args: Any, bound: float, what: str, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, failing with :class:`DriverHung` after ``bound`` seconds.

    Exceptions raised by ``fn`` propagate unchanged, with their traceback.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, name=f"conformance-call:{what}", daemon=True)
    thread.start()
    if not done.wait(bound):
        raise DriverHung(f"{what} did not return within {bound:.1f}s (driver hung)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
