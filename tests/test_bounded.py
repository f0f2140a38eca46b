"""Bounded driver calls: the value or the exception comes back, a hang fails in time."""

from __future__ import annotations

import threading
import time

import pytest

from driver_conformance.bounded import DriverHung, call_bounded


def test_the_value_comes_back() -> None:
    assert call_bounded(lambda a, b=0: a + b, 2, b=3, bound=1.0, what="add") == 5


def test_the_exception_comes_back_unchanged() -> None:
    error = KeyError("k")

    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        call_bounded(fail, bound=1.0, what="fail")
    assert caught.value is error


def test_a_hang_fails_after_the_bound_naming_the_call() -> None:
    release = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(DriverHung, match=r"listener.stop\(\) did not return within 0.1s"):
            call_bounded(release.wait, 5.0, bound=0.1, what="listener.stop()")
    finally:
        release.set()
    assert time.monotonic() - started < 1.0


def test_a_hang_is_an_assertion_so_it_fails_the_scenario() -> None:
    assert issubclass(DriverHung, AssertionError)


def test_the_call_runs_on_a_named_daemon_thread() -> None:
    thread = call_bounded(threading.current_thread, bound=1.0, what="who")
    assert thread.name == "conformance-call:who" and thread.daemon
