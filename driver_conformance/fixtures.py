"""The fixtures scenarios use; registered with pytest only for a conformance run.

``kit`` is the one a scenario needs (see :mod:`driver_conformance.kit`);
``timing`` and ``conformance_run`` are there for scenarios that only need the
constants or the run's facts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from driver_conformance.kit import Kit
from driver_conformance.run import ConformanceRun
from driver_conformance.timing import Timing


@pytest.fixture(scope="session")
def conformance_run(pytestconfig: pytest.Config) -> ConformanceRun:
    from driver_conformance.plugin import session_of

    session = session_of(pytestconfig)
    session.ensure_started()
    return session.run


@pytest.fixture
def timing(conformance_run: ConformanceRun) -> Timing:
    return conformance_run.timing


@pytest.fixture
def kit(conformance_run: ConformanceRun, request: pytest.FixtureRequest) -> Iterator[Kit]:
    """Per-scenario helpers; tears down everything the scenario made, bounded."""
    before = set(threading.enumerate())
    kit = Kit(conformance_run)
    yield kit
    errors = kit.close()
    counts = kit.history.check()
    node: Any = request.node
    if counts.sent or counts.received:
        node.user_properties.append(("delivery", counts.as_dict()))
    leaked = [t.name for t in threading.enumerate()
              if t not in before and t.is_alive() and not t.name.startswith("conformance-")]
    if leaked:
        node.user_properties.append(("leaked_threads", leaked))
    if errors:
        raise AssertionError("teardown: " + "; ".join(errors))
