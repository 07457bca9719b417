"""No import cycles among the project's modules.

Edges are the imports a module runs when it is loaded: those at module level, in class bodies and under
`if TYPE_CHECKING:` (a cycle only the type checker follows is still a design cycle). Imports inside
function bodies are left out: they are deliberate lazy imports that keep the app's cold start short.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "devstack", "triggers")
SCRIPTS = ("function_app.py",)


@dataclass(frozen=True)
class Edge:
    target: str
    line: int


def module_files() -> dict[str, Path]:
    """Every module of the tree by dotted name; a package by the name of its `__init__`'s package."""
    files = [ROOT / name for name in SCRIPTS]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    modules: dict[str, Path] = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def load_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs while it loads: not those inside function bodies."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    statements = [c for c in children if isinstance(c, ast.stmt)]
                    nested = [c for c in children if isinstance(c, ast.ExceptHandler | ast.match_case)]
                    yield from load_time_imports(statements)
                    for clause in nested:
                        yield from load_time_imports(clause.body)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name `from <dots><name> import ...` starts from, inside `module`."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def edges(modules: dict[str, Path]) -> dict[str, list[Edge]]:
    graph: dict[str, list[Edge]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        found: list[Edge] = []
        for node in load_time_imports(tree.body):
            if isinstance(node, ast.Import):
                found += [Edge(alias.name, node.lineno) for alias in node.names]
                continue
            source = resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                # `from pkg import name` loads the module pkg.name when there is one, not just pkg.
                child = f"{source}.{alias.name}"
                found.append(Edge(child if child in modules else source, node.lineno))
        graph[module] = [edge for edge in found if edge.target in modules and edge.target != module]
    return graph


def strongly_connected(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's components with more than one module: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def shortest_cycle(graph: dict[str, list[Edge]], members: set[str], start: str) -> list[tuple[str, Edge]]:
    """The shortest cycle from `start` back to itself inside a component, as (importer, import) steps."""
    paths: dict[str, list[tuple[str, Edge]]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph[node]:
            if edge.target not in members:
                continue
            path = [*paths[node], (node, edge)]
            if edge.target == start:
                return path
            if edge.target not in paths:
                paths[edge.target] = path
                queue.append(edge.target)
    raise AssertionError(f"no cycle through {start}")  # every member of a component is on one


def cycles_in(graph: dict[str, list[Edge]], component: list[str], modules: dict[str, Path]) -> list[str]:
    """The shortest cycle through each module of a component, each once, every step with its line."""
    members = set(component)
    seen: set[tuple[str, ...]] = set()
    described: list[str] = []
    for start in component:
        cycle = shortest_cycle(graph, members, start)
        names = [source for source, _ in cycle]
        turn = names.index(min(names))
        key = tuple(names[turn:] + names[:turn])
        if key in seen:
            continue
        seen.add(key)
        steps = [
            f"{source} ({modules[source].relative_to(ROOT)}:{edge.line}) -> {edge.target}"
            for source, edge in cycle
        ]
        described.append("\n    ".join(steps))
    return described


def test_resolves_relative_imports_and_submodules() -> None:
    modules = module_files()
    graph = edges(modules)
    assert "devstack.emulator.service" in modules
    assert "shared.api" in modules  # a package, by its __init__
    targets = {edge.target for edge in graph["devstack.emulator.app"]}
    assert "devstack.emulator.arm.routing" in targets  # from .routing import ArmRouter
    assert "devstack.emulator.arm.resources" in targets  # from . import resources
    assert "devstack.emulator" not in targets  # not the parent package of what `from . import` names


def test_no_import_cycles() -> None:
    modules = module_files()
    graph = edges(modules)
    cycles = [cycle for group in strongly_connected(graph) for cycle in cycles_in(graph, group, modules)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)
