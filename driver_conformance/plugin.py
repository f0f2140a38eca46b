"""The pytest plugin: ``pytest --driver=NAME`` runs the conformance suite.

Loaded through the ``pytest11`` entry point, it does nothing to a user's own
test run unless ``--driver`` or ``--transport-url`` is given.  Then it builds
the run (:class:`~driver_conformance.run.ConformanceRun`: the adapter, the
URL, the timing), puts it in ``config.stash`` (:mod:`driver_conformance.stash`)
and registers one plugin object per feature, each on pytest's own hooks:

========================  ======================================================
``collection``            the scenarios, their clause marks, ``--clause``, the backend
``fixtures``              ``kit``, ``timing``, ``conformance_run``
``judging``               each clause judged by its own check
``results``               the one collector; the verdict and the exit status
``expectations``          ``--expectations``: known deviations, by clause
``certify``               ``--certify``: refuse runs that cannot certify
``report``                ``--report-json``
``summary``               the terminal summary
========================  ======================================================

No feature imports another's plugin or this module; they share the stash.
"""

from __future__ import annotations

import pytest

from driver_conformance import registry as registry_mod
from driver_conformance import stash
from driver_conformance.configuration import ConfigFileError, options_set_in, resolve_config_file
from driver_conformance.drivers import quiet_import_oslo_messaging
from driver_conformance.run import ConformanceRun
from driver_conformance.timing import Timing
from driver_conformance.urls import BadTransportURL


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("driver-conformance", "oslo.messaging driver conformance")
    group.addoption("--driver", metavar="NAME",
                    help="run the conformance suite against the adapter NAME "
                         "(see `driver-conformance list`)")
    group.addoption("--transport-url", metavar="URL",
                    help="transport URL of the driver under test; alone, tests any "
                         "installed oslo.messaging driver by its URL scheme")
    group.addoption("--clause", metavar="PATTERN", action="append", default=[],
                    help="judge only clauses matching PATTERN (glob or dotted prefix; "
                         "repeatable); only their scenarios run")
    group.addoption("--time-scale", metavar="F", type=float, default=1.0,
                    help="stretch every timing constant by F (slow machines); default 1.0")
    group.addoption("--report-json", metavar="PATH", default=None,
                    help="write the run's conformance report (JSON) to PATH")
    group.addoption("--expectations", metavar="FILE",
                    help="the driver's known deviations (TOML: a path, or a shipped name "
                         "such as rabbit, fake, kafka); a listed clause failing as listed "
                         "is expected, anything else that fails, or a listed clause that "
                         "passes, fails the run")
    group.addoption("--oslo-config-file", metavar="PATH", action="append", default=[],
                    help="an oslo.config file loaded into every driver the run builds (a "
                         "path, or a shipped configuration such as rabbit-quorum; "
                         "repeatable, later files win): the run judges that configuration")
    group.addoption("--certify", action="store_true", default=False,
                    help="certification run: refuse any run that deselects, skips or "
                         "expects to fail a required clause, and mark the report as one")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    """For a conformance run, import oslo.messaging quietly before any conftest does.

    A driver's conftest imports oslo.messaging (its adapter builds drivers);
    imported there first, the eventlet-era dependencies' import-time warnings
    would open the run's warnings summary.  Imported here, they are silenced
    once and the conftest finds the module loaded.
    """
    if any(a == option or a.startswith(option + "=") for a in args
           for option in ("--driver", "--transport-url")):
        quiet_import_oslo_messaging()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(*ids): the contract clause(s) this scenario judges")
    config.addinivalue_line(
        "markers", "model: the model-based scenario (many clauses; slow to shrink)")
    from driver_conformance import testing

    # The reference driver as a fake for users' own tests: fixtures only,
    # nothing runs unless a test asks for one.
    config.pluginmanager.register(testing, "driver-conformance-testing")
    driver = config.getoption("driver")
    url = config.getoption("transport_url")
    if not driver and not url:
        return
    config.stash[stash.RUN] = make_run(config, driver, url)
    register_features(config)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """A conftest loaded during collection joins the run's kit hooks (overrides, facts)."""
    config = manager.get_plugin("pytestconfig")
    if config is None or stash.RUN not in config.stash:
        return
    pm = config.stash[stash.RUN].registry.pm
    if registry_mod.is_kit_plugin(plugin) and not pm.is_registered(plugin):
        pm.register(plugin, name=manager.get_name(plugin))


def make_run(config: pytest.Config, driver: str | None, url: str | None) -> ConformanceRun:
    """The run the options ask for; a bad option is a one-line usage error."""
    scale = config.getoption("time_scale")
    if not scale or scale <= 0:
        raise pytest.UsageError(f"--time-scale must be a positive number, got {scale!r}")
    quiet_import_oslo_messaging()
    try:
        registry = registry_mod.registry_for_pytest(config.pluginmanager)
        adapter = registry.get(driver or registry_mod.BY_URL)
    except registry_mod.UnknownAdapter as exc:
        raise pytest.UsageError(
            f"{exc} (an adapter defined in a conftest.py is found when pytest loads that "
            "conftest at start-up: the one in the rootdir, or one in a directory given on "
            "the command line)") from None
    except (registry_mod.AdapterLoadError, registry_mod.AdapterConflict) as exc:
        raise pytest.UsageError(str(exc)) from None
    url = url or adapter.default_url
    if not url:
        raise pytest.UsageError(f"adapter {adapter.name!r} has no default URL; "
                                "give one with --transport-url")
    try:
        adapter.validate_url(url)
    except (BadTransportURL, LookupError) as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        files = [resolve_config_file(v) for v in config.getoption("oslo_config_file") or []]
        options_set_in(files)
    except ConfigFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    return ConformanceRun(adapter=adapter, registry=registry, user_url=url,
                          timing=Timing(scale, quiet_base=adapter.quiet_window),
                          config_files=files)


def register_features(config: pytest.Config) -> None:
    """Register each feature's plugin object for this conformance run."""
    from driver_conformance import (
        certify,
        collection,
        expectations_plugin,
        fixtures,
        judging,
        results_plugin,
        summary,
    )
    from driver_conformance.report import plugin as report_plugin

    pm = config.pluginmanager
    # Collection first: it settles which clauses the run judges (--clause).
    pm.register(collection.CollectionPlugin(config), "driver-conformance-collection")
    results_plugin.register(config)
    pm.register(fixtures, "driver-conformance-fixtures")
    pm.register(judging.JudgingPlugin(), "driver-conformance-judging")
    if config.getoption("expectations"):
        expectations_plugin.register(config, config.getoption("expectations"))
    if config.getoption("certify"):
        pm.register(certify.CertifyPlugin(config), "driver-conformance-certify")
    pm.register(report_plugin.ReportPlugin(config), "driver-conformance-report")
    pm.register(summary.SummaryPlugin(), "driver-conformance-summary")
