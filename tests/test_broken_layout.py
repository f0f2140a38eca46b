"""The layout of the negative controls: from a clause to its variants in one step.

A variant breaking a clause lives in ``driver_conformance/broken/<area>.py``,
where ``<area>`` is the clause's area in the catalog, the same name as the
scenario module that must catch it (``scenarios/retry.py`` and
``broken/retry.py``).  These tests keep it that way, so that a reader of a
failing scenario, or of a clause in the catalog, knows where its negative
controls are without searching; and they keep the package's two other
rules: small modules, and no wait without a bound in a wrapper.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import driver_conformance.broken as broken
from driver_conformance import cli
from driver_conformance.broken import VARIANTS
from driver_conformance.catalog import AREAS, load_catalog

BROKEN_DIR = Path(broken.__file__).parent
#: The guide's limit on a source file's length.
MAX_LINES = 600
#: Blocking calls that wait forever when given no bound.
BLOCKING = frozenset({"wait", "join", "get"})


def test_every_variant_lives_in_the_module_of_its_clause_area() -> None:
    catalog = load_catalog()
    misplaced = [
        (v.name, v.wrapper.__module__, catalog[v.clause].area)
        for v in VARIANTS
        if v.wrapper.__module__ != f"{broken.__name__}.{catalog[v.clause].area}"
    ]
    assert not misplaced, (
        "expected each variant in driver_conformance/broken/<area of its clause>.py; "
        f"(variant, module, clause area): {misplaced}")


def test_variants_are_in_catalog_area_order() -> None:
    catalog = load_catalog()
    order = [AREAS.index(catalog[v.clause].area) for v in VARIANTS]
    assert order == sorted(order), (
        "expected VARIANTS area by area, in catalog.AREAS order; got "
        f"{[(v.name, catalog[v.clause].area) for v in VARIANTS]}")


@pytest.mark.parametrize("area", AREAS)
def test_each_area_module_mirrors_its_scenario_module(area: str) -> None:
    module = importlib.import_module(f"{broken.__name__}.{area}")
    assert (BROKEN_DIR.parent / "scenarios" / f"{area}.py").is_file()
    assert f":mod:`driver_conformance.scenarios.{area}`" in (module.__doc__ or ""), (
        f"expected broken/{area}.py's docstring to say which scenario module it mirrors")


def test_detect_list_shows_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    """``driver-conformance detect --list``: a name line and a description line per variant."""
    assert cli.main(["detect", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * len(VARIANTS), f"expected two lines per variant, got {lines}"
    listed = [tuple(line.split()) for line in lines[::2]]
    assert listed == [(v.name, v.clause) for v in VARIANTS]
    assert [line.strip() for line in lines[1::2]] == [v.description for v in VARIANTS]


@pytest.mark.parametrize("path", sorted(BROKEN_DIR.glob("*.py")), ids=lambda p: p.name)
def test_module_is_small_and_every_wait_is_bounded(path: Path) -> None:
    """No module over :data:`MAX_LINES`; no ``.wait()``, ``.join()`` or ``.get()`` unbounded.

    A call of one of those names with no argument (or only ``None``) is what
    blocks forever when the thread or event it waits for never comes; a
    negative control that hangs hides the very regression it is there to
    show.  ``dict.get(key)`` and ``", ".join(parts)`` always have an argument.
    """
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_LINES, f"{path.name} is over {MAX_LINES} lines"
    unbounded = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in BLOCKING):
            continue
        args = [*node.args, *(k.value for k in node.keywords if k.arg == "timeout")]
        if not args or all(isinstance(a, ast.Constant) and a.value is None for a in args):
            unbounded.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not unbounded, f"unbounded waits in {path.name}: {unbounded}"
