"""The package's layering, checked by parsing every import (``ast``; lazy imports inside
functions and ``TYPE_CHECKING`` blocks count too: a dependency is a dependency).

From the bottom up; a subpackage imports only from layers below its own (and itself):

    core                                   imports nothing else of guiagent
    envs, models, grounding, record        import only core (not each other)
    agent
    skills                                 (their steps runner injected from above)
    scenario
    app                                    assembles a run (guiagent/app.py)
    faces: cli, commands, console, narrate, eval, bench, demo, testing, serve, the public
           API in guiagent/__init__.py; they may import each other, without cycles

There are no import cycles between subpackages.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "guiagent"

FACES = frozenset(
    {"__init__", "__main__", "cli", "commands", "console", "narrate", "eval", "bench", "demo"}
    | {"testing", "serve", "cliparse", "reference_docs"}  # cli.py's parsing, the docs generator
)
LAYERS: list[frozenset[str]] = [
    frozenset({"core"}),
    frozenset({"envs", "models", "grounding", "record"}),
    frozenset({"agent"}),
    frozenset({"skills"}),
    frozenset({"scenario"}),
    frozenset({"app"}),
    FACES,
]
# modules that live in a subpackage but belong to another layer
MODULE_LAYER = {
    # the pytest plugin is a face (pytest's entry point) built on guiagent.testing's fixtures
    "guiagent.scenario.pytest_plugin": "testing",
}


@dataclass(frozen=True)
class Edge:
    source: str  # unit (subpackage or top-level module) that imports
    target: str
    where: str  # file:line
    imported: str


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    if module in MODULE_LAYER:
        return MODULE_LAYER[module]
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports(path: Path) -> list[tuple[str, int]]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _imports_in(path.read_text(encoding="utf-8"), package, str(path))


def _imports_in(source: str, package: str, filename: str) -> list[tuple[str, int]]:
    """The guiagent modules ``source`` (a module of ``package``) imports, with their lines."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, node.lineno))
            # `from guiagent import agent` imports the subpackage
            if name == "guiagent":
                found.extend(
                    (f"guiagent.{a.name}", node.lineno)
                    for a in node.names
                    if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()
                )
    return [(n, line) for n, line in found if n == "guiagent" or n.startswith("guiagent.")]


@functools.cache
def _edges() -> tuple[Edge, ...]:
    edges: list[Edge] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _unit(_module_name(path))
        where = str(path.relative_to(PACKAGE.parent))
        for imported, line in _imports(path):
            if imported == "guiagent":
                continue  # the package itself (its version): no subpackage
            target = _unit(imported)
            if target != source:
                edges.append(Edge(source, target, f"{where}:{line}", imported))
    return tuple(edges)


def _layer(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"guiagent.{unit} has no layer: add it to LAYERS in {__file__}")


def test_every_subpackage_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    for unit in units:
        _layer(unit)


def test_core_imports_nothing_else_of_guiagent() -> None:
    bad = [e for e in _edges() if e.source == "core"]
    assert not bad, "guiagent/core must import nothing else of guiagent:\n" + "\n".join(
        f"  {e.where}: imports {e.imported}" for e in bad
    )


def test_imports_go_down_the_layers() -> None:
    bad = []
    for e in _edges():
        source, target = _layer(e.source), _layer(e.target)
        if target < source or (target == source and LAYERS[source] is FACES):
            continue
        bad.append(f"  {e.where}: {e.source} imports {e.imported} ({e.target} is not below it)")
    assert not bad, "imports against the layering (see this file's docstring):\n" + "\n".join(bad)


def test_no_import_cycles_between_subpackages() -> None:
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for e in _edges():
        graph.setdefault(e.source, set()).add(e.target)
        where.setdefault((e.source, e.target), e.where)
    cycles = _cycles(graph)
    described = [
        " -> ".join([*cycle, cycle[0]])
        + "  ("
        + ", ".join(where[(a, b)] for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        + ")"
        for cycle in cycles
    ]
    assert not cycles, "import cycles between subpackages:\n  " + "\n  ".join(described)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected group of two or more units."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the unit graph is small
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_shortest_cycle(graph, group) for group in groups]


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph.get(path[-1], set()) & group):
            if nxt == start:
                return path
            if nxt not in path:
                paths.append([*path, nxt])
    return sorted(group)


def test_the_checker_sees_lazy_relative_and_type_only_imports() -> None:
    """The parser itself: imports inside functions, relative and TYPE_CHECKING imports count."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..core import geometry\n"
        "from . import policy\n"
        "if TYPE_CHECKING:\n"
        "    from guiagent.skills.model import SecretStore\n"
        "def later():\n"
        "    import guiagent.narrate.a11y\n"
        "    from guiagent import envs\n"
    )
    names = {name for name, _ in _imports_in(source, "guiagent.agent", "sample.py")}
    assert {
        "guiagent.core",
        "guiagent.agent",
        "guiagent.skills.model",
        "guiagent.narrate.a11y",
        "guiagent.envs",
    } <= names
