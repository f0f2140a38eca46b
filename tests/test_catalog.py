"""The clause catalog: well-formed, and every clause has a scenario."""

from __future__ import annotations

import ast
import collections
import contextlib
import inspect
import io
import re
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driver_conformance import cli, outcomes
from driver_conformance.catalog import AREAS, LEVELS, load_catalog, parse_catalog
from driver_conformance.kit import Kit

CLASSES = ("IncomingMessage", "RpcIncomingMessage", "Listener", "PollStyleListener", "BaseDriver")


def test_catalog_loads_with_unique_ids() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 60
    assert len(set(catalog.ids())) == len(catalog)
    for clause in catalog:
        assert clause.level in LEVELS and clause.area in AREAS
        assert clause.text and clause.check and clause.method
        assert (clause.feature is not None) == (clause.level == "OPTIONAL"), clause.id


#: The word a clause's quoted text must contain for each level that stands on a word.
MODAL_WORDS = {"MUST": "must", "SHOULD": "should", "MAY": "may"}


def level_without_its_word(clauses: list[Any]) -> list[tuple[str, str]]:
    """(id, level) of MUST/SHOULD/MAY clauses whose quoted text lacks the level's word."""
    return [(c.id, c.level) for c in clauses if c.level in MODAL_WORDS
            and not re.search(rf"\b{MODAL_WORDS[c.level]}\b", c.text, re.IGNORECASE)]


def test_every_clause_says_why_its_level() -> None:
    lacking = [c.id for c in load_catalog() if not c.why.strip()]
    assert not lacking, f"clauses without a why: {lacking}"


def test_each_level_stands_on_its_word() -> None:
    """MUST, SHOULD and MAY quote a sentence with must, should, may; DERIVED and OPTIONAL
    stand on a public-API need or a declared feature instead."""
    wrong = level_without_its_word(list(load_catalog()))
    assert not wrong, f"clauses whose quoted text lacks the word of their level: {wrong}"


def test_the_modal_word_check_can_fail() -> None:
    entry = ('[[clause]]\nid="a.b.{n}"\nlevel="{level}"\nmethod="m"\narea="retry"\n'
             'source="s"\ntext="{text}"\nwhy="w"\ncheck="c"\n')
    catalog = parse_catalog(
        entry.format(n=1, level="MUST", text="Raises: Does not raise an exception")
        + entry.format(n=2, level="SHOULD", text="It Should block")
        + entry.format(n=3, level="MAY", text="Mayhem is not a permission")
        + entry.format(n=4, level="DERIVED", text="RPCServer needs it"))
    assert level_without_its_word(list(catalog)) == [("a.b.1", "MUST"), ("a.b.3", "MAY")]


def test_a_clause_without_why_is_rejected() -> None:
    entry = ('[[clause]]\nid="a.b.c"\nlevel="MUST"\nmethod="m"\narea="retry"\n'
             'source="s"\ntext="t must"\ncheck="c"\n')
    with pytest.raises(ValueError, match=r"missing fields.*why"):
        parse_catalog(entry)


def test_derived_clauses_name_a_public_api_module() -> None:
    """A DERIVED clause stands on a need of the public API, so its source is not base.py."""
    wrong = [c.id for c in load_catalog()
             if c.level == "DERIVED" and c.source in ("base.py", "driver guide")]
    assert not wrong, f"DERIVED clauses whose source is the driver text: {wrong}"


def uncovered_methods(methods: set[str]) -> list[str]:
    """The public methods of the driver classes no clause names, class by class.

    ``Listener.stop`` is not covered by a clause on ``PollStyleListener.stop``:
    the two classes are different obligations, whatever their methods' names.
    """
    from oslo_messaging._drivers import base

    return [f"{cls_name}.{name}" for cls_name in CLASSES
            for name, member in vars(getattr(base, cls_name)).items()
            if callable(member) and not name.startswith("_")
            and f"{cls_name}.{name}" not in methods]


def test_every_driver_class_method_is_covered() -> None:
    assert uncovered_methods({c.method for c in load_catalog()}) == []


def test_method_coverage_is_per_class() -> None:
    """The check above can fail: a clause on one class's ``stop`` does not cover another's."""
    methods = {c.method for c in load_catalog()} - {"Listener.stop"}
    assert uncovered_methods(methods) == ["Listener.stop"]


def test_every_clause_names_a_method_of_its_class() -> None:
    from oslo_messaging._drivers import base

    wrong = [(c.id, c.method) for c in load_catalog()
             if c.method.split(".")[0] not in CLASSES
             or not hasattr(getattr(base, c.method.split(".")[0]), c.method.split(".")[1])]
    assert not wrong


#: Clauses no scenario can judge yet, each with why: a ratchet (a clause that gets a judging
#: scenario must leave this list, and no other clause may join it without a reason).
NO_JUDGING_SCENARIO_YET: dict[str, str] = {}


def always_not_run(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` ends NOT RUN whatever the driver: its body, at its top level (not
    under an ``if``), calls ``outcomes.not_run`` or ``pytest.skip``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
    for stmt in func.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(call, ast.Call):
            name = ast.unparse(call.func)
            if name in ("outcomes.not_run", "not_run", "pytest.skip"):
                return True
    return False


def judging_scenarios(items: list[tuple[str, Callable[..., Any], list[str]]]
                      ) -> collections.Counter[str]:
    """How many scenarios that can judge it (not always NOT RUN) each clause has."""
    counts: collections.Counter[str] = collections.Counter()
    for _, fn, clauses in items:
        if not always_not_run(fn):
            counts.update(set(clauses))
    return counts


@pytest.fixture(scope="module")
def scenario_items() -> list[tuple[str, Callable[..., Any], list[str]]]:
    """(node id, test function, clauses) of every collected scenario."""
    from driver_conformance.collection import SCENARIOS_DIR
    from driver_conformance.stash import clause_ids

    found: list[tuple[str, Callable[..., Any], list[str]]] = []

    class Collect:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
            found.extend((i.nodeid, i.function, clause_ids(i)) for i in items
                         if isinstance(i, pytest.Function))

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pytest.ini").write_text("[pytest]\n")
        args = ["--collect-only", "-qq", "-p", "no:cacheprovider", "-c", f"{tmp}/pytest.ini",
                "--rootdir", tmp, "--driver=reference", str(SCENARIOS_DIR)]
        with contextlib.redirect_stdout(io.StringIO()):
            pytest.main(args, plugins=[Collect()])  # exits with the kit's verdict code
    assert found, "expected the scenarios to be collected"
    return found


def test_every_clause_has_a_scenario(
        scenario_items: list[tuple[str, Callable[..., Any], list[str]]]) -> None:
    counts = cli.scenario_counts()
    missing = [c.id for c in load_catalog() if not counts[c.id]]
    assert not missing, f"clauses without a scenario: {missing}"
    judging = judging_scenarios(scenario_items)
    unjudged = [c.id for c in load_catalog()
                if not judging[c.id] and c.id not in NO_JUDGING_SCENARIO_YET]
    assert not unjudged, f"clauses whose scenarios always end NOT RUN: {unjudged}"
    judged_now = [cid for cid in NO_JUDGING_SCENARIO_YET if judging[cid]]
    assert not judged_now, f"remove from NO_JUDGING_SCENARIO_YET: {judged_now}"


def test_a_scenario_that_always_ends_not_run_covers_nothing() -> None:
    """The coverage check can fail: a clause covered only by such a scenario counts as
    not covered, while a scenario that ends NOT RUN only on some drivers still covers."""

    def never(kit: Kit) -> None:
        """Always NOT RUN."""
        outcomes.not_run("no raw view")

    def sometimes(kit: Kit) -> None:
        if kit.caps.rpc:
            outcomes.not_run("declared supported")
        kit.driver()

    counts = judging_scenarios([("a::never", never, ["x.y.z"]),
                                ("a::sometimes", sometimes, ["x.y.w"])])
    assert counts == {"x.y.w": 1}


def test_scenarios_name_only_catalog_clauses() -> None:
    unknown = set(cli.scenario_counts()) - set(load_catalog().ids())
    assert not unknown


def test_duplicate_ids_are_rejected() -> None:
    entry = ('[[clause]]\nid="a.b.c"\nlevel="MUST"\nmethod="m"\narea="retry"\n'
             'source="s"\ntext="t"\nwhy="w"\ncheck="c"\n')
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
