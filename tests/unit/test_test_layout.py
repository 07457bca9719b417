"""The tests' own layout: no test module or conftest imports another one; what they share lives in
tests/support, whose modules import only each other (fixtures there load as plugins from tests/conftest.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
SUPPORT = TESTS / "support"


def module_of(path: Path) -> str:
    """The dotted name of a file under the repository root (a package by its __init__.py)."""
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) of each import in `source`, at any depth; `from a import b` names both `a` and `a.b`,
    since b may be a module. Relative imports are resolved against `module`'s package."""
    here = module.split(".") if package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    return imports(path.read_text(), module_of(path), path.name == "__init__.py")


def is_test_module_or_conftest(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest")


def test_no_test_module_or_conftest_imports_another() -> None:
    checked = sorted(p for p in TESTS.rglob("*.py") if p.name.startswith("test_") or p.name == "conftest.py")
    assert len(checked) > 50, "the walk found the test modules"
    found = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in checked
        for line, module in imports_of(path)
        if is_test_module_or_conftest(module)
    ]
    assert found == [], "move what is shared to tests/support (fixtures to a plugin there)"


def test_support_modules_import_only_support_modules() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in sorted(SUPPORT.rglob("*.py"))
        for line, module in imports_of(path)
        if module.split(".")[0] == "tests" and not module.startswith("tests.support")
    ]
    assert found == []


def test_support_holds_no_tests() -> None:
    names = [path.name for path in SUPPORT.rglob("*.py")]
    assert [name for name in names if name.startswith("test_") or name == "conftest.py"] == []


@pytest.mark.parametrize(
    ("source", "module", "offends"),
    [
        ("from tests.integration.test_api import Api\n", "tests.hostile.conftest", True),
        ("from tests.conftest import Devstack\n", "tests.e2e.test_x", True),
        ("def f():\n    from tests.integration import test_host\n", "tests.unit.test_x", True),
        ("from .conftest import Target\n", "tests.hostile.test_x", True),
        ("from . import test_y\n", "tests.hostile.test_x", True),
        ("from ..integration.test_api import Api\n", "tests.hostile.test_x", True),
        ("import tests.reliability.test_restarts as restarts\n", "tests.e2e.test_x", True),
        ("from tests.support.api import Api\n", "tests.hostile.test_x", False),
        ("from tests.infra.bicep_model import all_resources\n", "tests.infra.test_x", False),
        ("from shared.tasks import pack_context\n", "tests.unit.test_x", False),
    ],
)
def test_the_check_sees_each_way_of_importing(source: str, module: str, offends: bool) -> None:
    found = [name for _, name in imports(source, module) if is_test_module_or_conftest(name)]
    assert bool(found) is offends, found
