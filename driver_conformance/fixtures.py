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

from driver_conformance import compat, stash
from driver_conformance.judging import judgments_of
from driver_conformance.kit import Kit
from driver_conformance.run import ConformanceRun
from driver_conformance.timing import Timing


@pytest.fixture(scope="session")
def conformance_run(pytestconfig: pytest.Config) -> ConformanceRun:
    run = pytestconfig.stash[stash.RUN]
    if not run.ensure_started():
        # Collection runs nothing when the backend is unreachable; a scenario
        # run some other way (``pytest --fixtures-per-test``, say) ends here.
        pytest.exit(f"driver-conformance: {run.start_error}", returncode=8)
    return run


@pytest.fixture
def timing(conformance_run: ConformanceRun) -> Timing:
    return conformance_run.timing


@pytest.fixture
def kit(conformance_run: ConformanceRun, request: pytest.FixtureRequest) -> Iterator[Kit]:
    """Per-scenario helpers; tears down everything the scenario made, bounded."""
    before = set(threading.enumerate())
    node: Any = request.node
    kit = Kit(conformance_run, judgments_of(node))
    node.stash[stash.KIT] = kit
    yield kit
    errors = kit.close()
    counts = kit.history.counts()
    if counts.sent or counts.received:
        node.user_properties.append(("delivery", counts.as_dict()))
    if kit.hung:
        node.user_properties.append(("hung", list(kit.hung)))
    leaked = [t.name for t in threading.enumerate()
              if t not in before and t.is_alive() and not t.name.startswith("conformance-")
              and not compat.owned_by_oslo_messaging(t)]
    if leaked:
        node.user_properties.append(("leaked_threads", leaked))
    if errors:
        raise AssertionError("teardown: " + "; ".join(errors))
