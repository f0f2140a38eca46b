"""The pytest plugin: ``pytest --driver=NAME`` runs the conformance suite.

Loaded through the ``pytest11`` entry point, it does nothing to a user's own
test run unless ``--driver`` or ``--transport-url`` is given.  Then it picks
the adapter, adds the installed scenario modules to the collection, checks
every scenario's clause markers against the catalog, and sums the outcomes up
per clause at the end.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import catalog as catalog_mod
from driver_conformance import registry as registry_mod
from driver_conformance.adapter import BackendUnavailable
from driver_conformance.outcomes import classify_skip
from driver_conformance.timing import Timing
from driver_conformance.urls import BadTransportURL, mask_url

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
#: Exit code when the backend cannot be reached (pytest uses 0-6, the verdict 7).
EXIT_BACKEND_UNAVAILABLE = 8

_RUN_KEY = pytest.StashKey["ConformanceSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("driver-conformance", "oslo.messaging driver conformance")
    group.addoption("--driver", metavar="NAME",
                    help="run the conformance suite against the adapter NAME "
                         "(see `driver-conformance list`)")
    group.addoption("--transport-url", metavar="URL",
                    help="transport URL of the driver under test; alone, tests any "
                         "installed oslo.messaging driver by its URL scheme")
    group.addoption("--clause", metavar="PATTERN", action="append", default=[],
                    help="run only scenarios of clauses matching PATTERN "
                         "(glob or dotted prefix; repeatable)")
    group.addoption("--time-scale", metavar="F", type=float, default=1.0,
                    help="stretch every timing constant by F (slow machines); default 1.0")
    group.addoption("--report-json", metavar="PATH", default=None,
                    help="write the run's conformance report (JSON) to PATH")
    group.addoption("--expectations", metavar="FILE",
                    help="the driver's known deviations (TOML: a path, or a shipped name: "
                         "rabbit, kombu-memory, fake, kafka); listed scenarios are expected "
                         "to fail, and a listed one that passes fails the run")
    group.addoption("--certify", action="store_true", default=False,
                    help="certification run: refuse any run that deselects, skips or "
                         "expects to fail a required clause, and mark the report as one")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(*ids): the contract clause(s) this scenario checks"
    )
    driver = config.getoption("driver")
    url = config.getoption("transport_url")
    if not driver and not url:
        return
    session = ConformanceSession.from_options(config, driver, url)
    config.stash[_RUN_KEY] = session
    config.pluginmanager.register(session, "driver-conformance-session")
    from driver_conformance import fixtures
    from driver_conformance.report import pytest_hooks as report_hooks

    config.pluginmanager.register(fixtures, "driver-conformance-fixtures")
    config.pluginmanager.register(report_hooks, "driver-conformance-report")
    if config.getoption("expectations"):
        from driver_conformance import expectations_plugin

        expectations_plugin.register(config, config.getoption("expectations"),
                                     known_clauses=session.catalog.ids())
    if str(SCENARIOS_DIR) not in map(str, config.args):
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            config.args.append(str(SCENARIOS_DIR))
        else:
            config.args[:] = [str(SCENARIOS_DIR)]


def _usage_error(message: str) -> pytest.UsageError:
    return pytest.UsageError(message)


class ConformanceSession:
    """The plugin object registered for a conformance run; holds hooks and fixtures."""

    def __init__(self, config: pytest.Config, adapter: Any, registry: Any, url: str,
                 timing: Timing) -> None:
        from driver_conformance.results import ResultCollector
        from driver_conformance.run import ConformanceRun

        self.config = config
        self.catalog = catalog_mod.load_catalog()
        self.run = ConformanceRun(adapter=adapter, registry=registry, user_url=url,
                                  timing=timing)
        self.results = ResultCollector()
        self.patterns: list[str] = config.getoption("clause")
        self.started = False
        self.start_error: str | None = None

    @classmethod
    def from_options(cls, config: pytest.Config, driver: str | None,
                     url: str | None) -> ConformanceSession:
        scale = config.getoption("time_scale")
        if not scale or scale <= 0:
            raise _usage_error(f"--time-scale must be a positive number, got {scale!r}")
        quiet_import_oslo_messaging()
        try:
            pm = registry_mod.make_plugin_manager()
        except registry_mod.AdapterLoadError as exc:
            raise _usage_error(str(exc)) from None
        for plugin in config.pluginmanager.get_plugins():
            if registry_mod.is_kit_plugin(plugin) and not pm.is_registered(plugin):
                pm.register(plugin)
        try:
            registry = registry_mod.AdapterRegistry(pm)
            adapter = registry.get(driver or registry_mod.BY_URL)
        except (registry_mod.UnknownAdapter, registry_mod.AdapterConflict) as exc:
            raise _usage_error(str(exc)) from None
        url = url or adapter.default_url
        if not url:
            raise _usage_error(f"adapter {adapter.name!r} has no default URL; "
                               "give one with --transport-url")
        try:
            adapter.validate_url(url)
        except (BadTransportURL, LookupError) as exc:
            raise _usage_error(str(exc)) from None
        return cls(config, adapter, registry, url,
                   Timing(scale, quiet_base=adapter.quiet_window))

    # -- header and collection ------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        run = self.run
        return [f"driver-conformance: adapter {run.adapter.name!r}, "
                f"url {run.masked_url}, time scale {run.timing.scale:g}"]

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
            ids = clause_ids(item)
            in_scenarios = SCENARIOS_DIR in Path(str(item.path)).parents
            if in_scenarios and not ids:
                problems.append(f"{item.name}: scenario names no clause (@pytest.mark.clause)")
            problems += [f"{item.name}: unknown clause id {cid!r}"
                         for cid in ids if cid not in self.catalog]
        if problems:
            report.outcome = "failed"
            report.longrepr = "; ".join(problems) + " (see `driver-conformance clauses`)"
            report.result = []
        return report

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[Any]) -> None:
        if not self.patterns:
            return
        wanted: set[str] = set()
        for pattern in self.patterns:
            matched = self.catalog.matching(pattern)
            if not matched:
                raise _usage_error(f"--clause {pattern!r} matches no clause "
                                   "(see `driver-conformance clauses`)")
            wanted.update(c.id for c in matched)
        keep, drop = [], []
        for item in items:
            (keep if wanted & set(clause_ids(item)) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    # -- running ----------------------------------------------------------------------
    def ensure_started(self) -> None:
        if self.start_error:
            pytest.exit(self.start_error, returncode=EXIT_BACKEND_UNAVAILABLE)
        if self.started:
            return
        self.started = True
        try:
            self.run.start()
        except BackendUnavailable as exc:
            self.start_error = f"driver-conformance: {mask_url(str(exc))}"
            pytest.exit(self.start_error, returncode=EXIT_BACKEND_UNAVAILABLE)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.started:
            self.run.finish()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        ids = clause_ids(item)
        if ids:
            item.user_properties.append(("clauses", ids))

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.results.add(report)

    def pytest_report_teststatus(self, report: Any, config: pytest.Config) -> Any:
        if report.skipped and not hasattr(report, "wasxfail"):
            kind = classify_skip(str(report.longrepr[2]) if isinstance(report.longrepr, tuple)
                                 else "")
            if kind == "unsupported":
                return "unsupported", "U", "UNSUPPORTED"
            if kind == "not-run":
                return "not run", "N", "NOT RUN"
        return None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from driver_conformance.summary import write_summary

        write_summary(terminalreporter, self)

def clause_ids(item: Any) -> list[str]:
    ids: list[str] = []
    for mark in item.iter_markers("clause"):
        ids.extend(mark.args)
    return ids


def quiet_import_oslo_messaging() -> None:
    """Import oslo.messaging once with its import-time deprecation noise silenced.

    Importing it drags in eventlet-era modules that warn at import time; the
    warnings concern oslo.messaging's own dependencies, not the driver under
    test, and would otherwise open every run's output.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging  # noqa: F401


def session_of(config: pytest.Config) -> ConformanceSession:
    """The conformance session of a run started with ``--driver`` / ``--transport-url``."""
    return config.stash[_RUN_KEY]
