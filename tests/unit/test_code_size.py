"""No function in the product or devstack grows past what a reader holds in one screen.

A long function is where steps hide as closures and a reviewer stops reading; past this size the code
is split into named steps (see CONTRIBUTING.md). The limit counts lines from `def` to the last line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("shared", "devstack", "triggers")
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    files = [ROOT / "function_app.py"]
    for tree in TREES:
        files.extend(sorted((ROOT / tree).rglob("*.py")))
    return files


def _long_functions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_a_screen() -> None:
    modules = _modules()
    assert len(modules) > 50, "the trees were not found"
    too_long = [entry for path in modules for entry in _long_functions(path)]
    assert too_long == [], "split these into named steps:\n" + "\n".join(too_long)
