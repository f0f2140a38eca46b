"""The shared state of a conformance run: stash keys, and the clause marks of an item.

Every feature of the kit's pytest side (collection, judging, results, the
report, expectations, certification, the terminal summary) is a plugin
object of its own, registered for a conformance run by
:mod:`driver_conformance.plugin`.  They never import each other: what one
feature produces and another reads lives in ``config.stash`` (or an item's
``stash``) under one of the keys below, as in pytest's own plugins.  This
module is a leaf: it imports nothing of the kit at run time, so any module
may use it without making a circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    pass

#: The run: adapter, backend, timing (set by the plugin at configure time).
RUN = pytest.StashKey["ConformanceRun"]()
#: The clause IDs a run judges: None for every clause, else the ``--clause`` selection.
JUDGED = pytest.StashKey["frozenset[str] | None"]()
#: The one collector of per-scenario results (fed by the results plugin).
RESULTS = pytest.StashKey["ResultCollector"]()
#: The driver's expected deviations (``--expectations``), when given.
EXPECTATIONS = pytest.StashKey["Expectations"]()
#: Verdicts and the exit status, settled once at session finish before
#: anything (the report, the summary) records them.
OUTCOME = pytest.StashKey["RunOutcome"]()

#: Per item: the judgments of its clauses.
JUDGMENTS = pytest.StashKey["Judgments"]()
#: Per item: the scenario's kit, once the ``kit`` fixture made one.
KIT = pytest.StashKey["Kit"]()


def clause_ids(item: Any) -> list[str]:
    """The clause IDs an item's ``@pytest.mark.clause(...)`` marks name, in order, once each."""
    ids: list[str] = []
    for mark in item.iter_markers("clause"):
        ids.extend(cid for cid in mark.args if cid not in ids)
    return ids


def judged_clauses(item: Any) -> list[str]:
    """The item's clauses this run judges: all it names, or those ``--clause`` selected."""
    judged = item.config.stash.get(JUDGED, None)
    return [cid for cid in clause_ids(item) if judged is None or cid in judged]


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker."""
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """Whether this process hands scenarios to pytest-xdist workers and runs none itself."""
    return config.pluginmanager.has_plugin("dsession")
