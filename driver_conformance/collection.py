"""Collection of a conformance run: the scenarios, their clauses, the selection, the backend.

The installed scenario modules are added to whatever the user asked pytest to
collect; every scenario must name catalog clauses (a scenario that names none,
or an unknown ID, is a collection error, exit 2); ``--clause`` keeps the
scenarios of the matching clauses and makes those clauses the only ones
judged (:data:`driver_conformance.stash.JUDGED`).

The backend is prepared once collection is done, in every process that runs
scenarios (one, or each pytest-xdist worker), before the first scenario: when
it cannot be reached, nothing runs, the run ends with exit status 8 and one
line naming the host (never the password), and the report still says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driver_conformance import stash
from driver_conformance.catalog import load_catalog
from driver_conformance.configuration import OverridesError, as_override, options_set_in

SCENARIOS_DIR = Path(__file__).parent / "scenarios"


def overrides_over_user_values(run: Any) -> list[str]:
    """One line per adapter override of an option the user's files set: applied, or kept."""
    user_set = options_set_in(run.config_files)
    lines = []
    for group, values in run.registry.option_overrides(run.adapter).items():
        for name, value in values.items():
            if (group, name) not in user_set:
                continue
            override = as_override(value)
            if override.changes_behaviour:
                lines.append(f"your [{group}] {name} is kept (the adapter's "
                             f"{override.value!r} would change behaviour: {override.reason})")
            else:
                lines.append(f"the adapter overrides your [{group}] {name} with "
                             f"{override.value!r}: {override.reason}")
    return lines


class CollectionPlugin:
    """Adds the scenarios, checks their clause marks, applies ``--clause``, starts the run."""

    def __init__(self, config: pytest.Config) -> None:
        self.catalog = load_catalog()
        self.patterns: list[str] = list(config.getoption("clause") or [])
        config.stash[stash.JUDGED] = self.selected() if self.patterns else None
        if str(SCENARIOS_DIR) not in map(str, config.args):
            if config.args_source == pytest.Config.ArgsSource.ARGS:
                config.args.append(str(SCENARIOS_DIR))
            else:
                config.args[:] = [str(SCENARIOS_DIR)]

    def selected(self) -> frozenset[str]:
        wanted: set[str] = set()
        for pattern in self.patterns:
            matched = self.catalog.matching(pattern)
            if not matched:
                raise pytest.UsageError(f"--clause {pattern!r} matches no clause "
                                        "(see `driver-conformance clauses`)")
            wanted.update(c.id for c in matched)
        return frozenset(wanted)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        run = config.stash[stash.RUN]
        lines = [f"driver-conformance: adapter {run.adapter.name!r}, "
                 f"url {run.masked_url}, time scale {run.timing.scale:g}"]
        if run.config_files:
            lines.append("driver-conformance: configuration judged: "
                         + ", ".join(str(f) for f in run.config_files))
            lines += [f"driver-conformance: {line}" for line in overrides_over_user_values(run)]
        return lines

    def pytest_collect_file(self, file_path: Path, parent: Any) -> Any:
        if (file_path.parent == SCENARIOS_DIR and file_path.suffix == ".py"
                and not file_path.name.startswith("_")):
            return pytest.Module.from_parent(parent, path=file_path)
        return None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: Any) -> Any:
        report = yield
        if not report.passed:
            return report
        problems = []
        for item in report.result:
            if not isinstance(item, pytest.Item):
                continue
            ids = stash.clause_ids(item)
            if SCENARIOS_DIR in Path(str(item.path)).parents and not ids:
                problems.append(f"{item.name}: scenario names no clause (@pytest.mark.clause)")
            problems += [f"{item.name}: unknown clause id {cid!r}"
                         for cid in ids if cid not in self.catalog]
        if problems:
            report.outcome = "failed"
            report.longrepr = "; ".join(problems) + " (see `driver-conformance clauses`)"
            report.result = []
        return report

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[Any]) -> None:
        judged = config.stash[stash.JUDGED]
        if judged is None:
            return
        keep, drop = [], []
        for item in items:
            (keep if judged & set(stash.clause_ids(item)) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    # tryfirst: before pytest-xdist's worker sends the collected items to its controller.
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Prepare the backend before the first scenario; if it can't be, run nothing."""
        config = session.config
        if config.option.collectonly or not session.items:
            return
        run = config.stash[stash.RUN]
        try:
            started = run.ensure_started()
        except OverridesError as exc:
            raise pytest.UsageError(str(exc)) from None
        if not started:
            session.items[:] = []
            session.testscollected = 0

    # A wrapper, tryfirst: the backend is torn down and cleaned before anything
    # records the run, so the report and the summary can say how the cleanup went.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        session.config.stash[stash.RUN].finish()
        return (yield)
