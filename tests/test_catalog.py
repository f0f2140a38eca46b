"""The clause catalog: well-formed, and every clause has a scenario."""

from __future__ import annotations

import collections

import pytest

from driver_conformance import cli
from driver_conformance.catalog import AREAS, LEVELS, load_catalog, parse_catalog

CLASSES = ("IncomingMessage", "RpcIncomingMessage", "Listener", "PollStyleListener", "BaseDriver")


def test_catalog_loads_with_unique_ids() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 60
    assert len(set(catalog.ids())) == len(catalog)
    for clause in catalog:
        assert clause.level in LEVELS and clause.area in AREAS
        assert clause.text and clause.check and clause.method
        assert (clause.feature is not None) == (clause.level == "OPTIONAL"), clause.id


def test_every_driver_class_method_is_covered() -> None:
    from oslo_messaging._drivers import base

    methods = {c.method for c in load_catalog()}
    for cls_name in CLASSES:
        cls = getattr(base, cls_name)
        for name, member in vars(cls).items():
            if callable(member) and not name.startswith("_"):
                assert f"{cls_name}.{name}" in methods or any(
                    m.endswith(f".{name}") and m.split(".")[0] in CLASSES for m in methods
                ), f"{cls_name}.{name} has no clause"


def test_every_clause_has_a_scenario() -> None:
    counts = cli.scenario_counts()
    missing = [c.id for c in load_catalog() if not counts[c.id]]
    assert not missing, f"clauses without a scenario: {missing}"


def test_scenarios_name_only_catalog_clauses() -> None:
    unknown = set(cli.scenario_counts()) - set(load_catalog().ids())
    assert not unknown


def test_duplicate_ids_are_rejected() -> None:
    entry = ('[[clause]]\nid="a.b.c"\nlevel="MUST"\nmethod="m"\narea="retry"\n'
             'source="s"\ntext="t"\ncheck="c"\n')
    with pytest.raises(ValueError, match="duplicate clause id"):
        parse_catalog(entry * 2)


def test_clauses_command_prints_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["clauses"]) == 0
    out = capsys.readouterr().out.splitlines()
    catalog = load_catalog()
    assert len(out) == len(catalog) + 1
    by_level = collections.Counter(c.level for c in catalog)
    assert out[-1].startswith(f"{len(catalog)} clauses: {by_level['MUST']} MUST")


def test_bad_subcommand_is_usage_error() -> None:
    assert cli.main(["nope"]) == cli.EXIT_USAGE
