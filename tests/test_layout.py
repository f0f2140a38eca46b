"""The kit's shape: no import circles (function-local imports included), no room too big.

An import inside a function hides a circle from a reader and from most tools,
but not from the interpreter: the circle is still there, waiting for the
import order that breaks it.  So every ``import`` statement of the package
counts here, wherever it stands, except under ``if TYPE_CHECKING:``, which
the interpreter never runs (a type named in an annotation is not an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

import driver_conformance

PACKAGE = Path(driver_conformance.__file__).parent
#: No source file of the kit may grow past this many lines.
MAX_LINES = 600
#: Files over the limit that are being split, with their size when this was
#: written: a ratchet (a new file over the limit fails, and so does one of
#: these that grew); remove an entry once its file is split.
BEING_SPLIT: dict[str, int] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The kit module ``name`` denotes: itself, or the package or module that defines it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in list(ast.walk(tree)):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []  # never executed
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            if target.startswith("driver_conformance"):
                resolved = resolve(target)
                if resolved and resolved != module:
                    found.add(resolved)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_among_the_kits_modules() -> None:
    graph = {name: imports_of(name, path) for name, path in MODULES.items()}
    # A package's __init__ that only re-exports its own modules is not a circle
    # with them: Python imports the package first whatever a submodule imports.
    for name, targets in graph.items():
        targets.difference_update({t for t in targets if name.startswith(t + ".")})
    assert circles(graph) == []


def test_the_circle_detector_sees_a_function_local_import(tmp_path: Path) -> None:
    """The test above can fail: a circle through an import inside a function is found."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from driver_conformance import plugin\n")
    graph = {"driver_conformance.a": imports_of("driver_conformance.a", a) & {
        "driver_conformance.plugin"}, "driver_conformance.plugin": {"driver_conformance.a"}}
    assert circles(graph) == [["driver_conformance.a", "driver_conformance.plugin"]]


def test_no_source_file_over_the_limit() -> None:
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text("utf-8").splitlines())
             for p in MODULES.values()}
    over = {p: n for p, n in sizes.items() if n > MAX_LINES and n > BEING_SPLIT.get(p, 0)}
    assert over == {}
