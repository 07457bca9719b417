"""Read the Bicep templates in infra/ through pycep-parser, offline.

No Bicep compiler can run in CI, so the tests in this folder work on pycep's
JSON view of each template. This module holds the small helpers that turn that
view into something the tests can ask questions of: resources with their
condition, module calls, variables, outputs, and a rendering of the few
expression shapes the templates use.

pycep represents an identifier and a string literal alike in JSON (both are
strings), so the tests compare against the identifiers the templates use (for
example a parameter name) where a value is not a literal. In Python they differ:
an identifier (and an accessor folded below) is pycep's `BicepElement`, a `str`
subclass, and a literal is a plain `str`; tests/infra/bicep_types.py relies on
that to tell a literal from an expression.

pycep-parser is pinned (requirements-dev.txt) to the version Checkov pins, so
the tests read the templates as Checkov does. Since pycep 0.5, `a.b`, `a[0]`
and `a::b` parse as accessor operators; `parse()` folds them back into that
text, which is what the tests compare against.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser
from pycep.transformer import BicepElement

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MODULES = INFRA / "modules"
MAIN = INFRA / "main.bicep"
SUBSCRIPTION = INFRA / "subscription.bicep"

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def _parser() -> BicepParser:
    # cache=False: pycep would otherwise write Lark's grammar cache to the temp dir.
    return BicepParser(cache=False)


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """Parse one template; a syntax error raises (and fails the caller)."""
    return _mapping(_fold_accessors(_parser().parse(file_path=path)))


def parse_text(text: str) -> dict[str, Any]:
    """Parse template text (a test's fixture) as parse() parses a file."""
    return _mapping(_fold_accessors(_parser().parse(text=text)))


def _mapping(value: Any) -> dict[str, Any]:
    """A parsed object (a dict), typed as one."""
    assert isinstance(value, dict), value
    return value


_ACCESSOR_TEXT = {
    "property_accessor": "{}.{}",
    "index_accessor": "{}[{}]",
    "nested_resource_accessor": "{}::{}",
}


def _fold_accessors(node: Any) -> Any:
    """`{operator: {type: property_accessor, operands: {a, b}}}` -> "a.b", and so on.

    A property of a function call (`environment().resourceManager`) goes into the
    call's `property_name`, as pycep 0.4 had it. Anything else is left alone.
    """
    if isinstance(node, list):
        return [_fold_accessors(value) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: _fold_accessors(value) for key, value in node.items()}
    operator = node.get("operator")
    if set(node) != {"operator"} or not isinstance(operator, dict):
        return node
    kind = operator.get("type")
    if kind not in _ACCESSOR_TEXT:
        return node
    left, right = operator["operands"]["operand_1"], operator["operands"]["operand_2"]
    if (
        kind == "property_accessor"
        and isinstance(left, dict)
        and set(left) == {"function"}
        and isinstance(right, str)
    ):
        function = dict(left["function"])
        function["property_name"] = ".".join(filter(None, [function.get("property_name"), right]))
        return {"function": function}
    if isinstance(left, str) and isinstance(right, str | int):
        return BicepElement(_ACCESSOR_TEXT[kind].format(left, right))
    return node


@dataclass(frozen=True)
class Resource:
    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    condition: Any  # None when unconditional
    body: dict[str, Any]
    target_scope: str = "resourceGroup"  # of the file that declares it

    @property
    def properties(self) -> dict[str, Any]:
        return _mapping(self.body.get("properties", {}))


@dataclass(frozen=True)
class ModuleCall:
    file: Path
    symbol: str
    path: Path
    condition: Any
    body: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        return _mapping(self.body.get("params", {}))


def _split_condition(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`resource x ... = if (c) { ... }` parses as {condition: c, config: {...}};
    `= [for x in xs: { ... }]` as {loop_type, condition, config: {...}} (the body
    of one iteration)."""
    if set(config) == {"condition", "config"} or "loop_type" in config:
        return config["condition"], _mapping(config["config"])
    return None, config


def resources(path: Path) -> dict[str, Resource]:
    return _resources(parse(path), path)


def resources_from_text(text: str, name: str = "fixture.bicep") -> dict[str, Resource]:
    """The resources of template text; `file` is the name only (nothing is read from it)."""
    return _resources(parse_text(text), Path(name))


def _resources(parsed: dict[str, Any], path: Path) -> dict[str, Resource]:
    scope = parsed.get("globals", {}).get("scope", {}).get("value", "resourceGroup")
    result = {}
    for symbol, raw in parsed.get("resources", {}).items():
        condition, body = _split_condition(raw["config"])
        result[symbol] = Resource(
            file=path,
            symbol=symbol,
            type=raw["type"],
            api_version=raw["api_version"],
            existing=raw["existing"],
            condition=condition,
            body=body,
            target_scope=str(scope),
        )
    return result


def all_resources() -> list[Resource]:
    return [r for path in bicep_files() for r in resources(path).values()]


def resources_of_type(path: Path, type_: str) -> list[Resource]:
    return [r for r in resources(path).values() if r.type.lower() == type_.lower()]


def one_resource(path: Path, type_: str) -> Resource:
    found = [r for r in resources_of_type(path, type_) if not r.existing]
    assert len(found) == 1, f"{path.name}: expected one {type_}, found {[r.symbol for r in found]}"
    return found[0]


def modules(path: Path) -> dict[str, ModuleCall]:
    parsed = parse(path)
    result = {}
    for symbol, raw in parsed.get("modules", {}).items():
        condition, body = _split_condition(raw["config"])
        result[symbol] = ModuleCall(
            file=path,
            symbol=symbol,
            path=(path.parent / raw["detail"]["path"]).resolve(),
            condition=condition,
            body=body,
        )
    return result


def is_literal(value: str) -> bool:
    """A string literal without interpolation, as opposed to an identifier or accessor."""
    return not isinstance(value, BicepElement) and re.search(r"(?<!\\)\$\{", value) is None


def key_text(raw: str) -> str:
    """An object key as written, without the quotes of a quoted key ('azd-service-name')."""
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == "'" else raw


def parameters(path: Path) -> dict[str, Any]:
    return _mapping(parse(path).get("parameters", {}))


def variables(path: Path) -> dict[str, Any]:
    return {name: v["value"] for name, v in parse(path).get("variables", {}).items()}


def outputs(path: Path) -> dict[str, Any]:
    return _mapping(parse(path).get("outputs", {}))


def target_scope(path: Path) -> str:
    scope = parse(path).get("globals", {}).get("scope", {}).get("value", "resourceGroup")
    assert isinstance(scope, str), scope
    return scope


def param_default(path: Path, name: str) -> Any:
    return parameters(path)[name]["default"]


def resolve(path: Path, value: Any) -> Any:
    """Follow `name` and `name.key` references to variables and parameter defaults."""
    if not isinstance(value, str):
        return value
    head, _, rest = value.partition(".")
    vars_ = variables(path)
    params = parameters(path)
    if head in vars_:
        resolved = vars_[head]
    elif head in params and params[head]["default"] is not None:
        resolved = params[head]["default"]
    else:
        return value
    for key in filter(None, rest.split(".")):
        if not isinstance(resolved, dict) or key not in resolved:
            return value
        resolved = resolved[key]
    return resolve(path, resolved)


def render(expr: Any) -> str:
    """A compact text form of the condition shapes the templates use."""
    if expr is None:
        return ""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and "operator" in expr:
        op = expr["operator"]
        if op["type"] == "not":
            return "!" + render(op["operands"]["bool_value"])
        return f"{op['type']}({', '.join(render(v) for v in op['operands'].values())})"
    if isinstance(expr, dict) and "function" in expr:
        fn = expr["function"]
        args = ", ".join(render(v) for v in (fn.get("parameters") or {}).values() if v is not None)
        text = f"{fn['type']}({args})"
        if fn.get("property_name"):
            text += "." + str(fn["property_name"])
        return text
    return json.dumps(expr, sort_keys=True)


def walk(node: Any) -> Iterator[Any]:
    """Every value in a parsed tree, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def functions_called(node: Any) -> Iterator[dict[str, Any]]:
    for value in walk(node):
        if isinstance(value, dict) and isinstance(value.get("function"), dict):
            yield value["function"]


def strings(node: Any) -> Iterator[str]:
    for value in walk(node):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from (k for k in value if isinstance(k, str))


def code_without_comments(path: Path) -> str:
    """The template text with // line comments and /* */ blocks removed."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        # A // inside a quoted string (a URL) is not a comment.
        in_string = False
        cut = len(line)
        for i, ch in enumerate(line):
            if ch == "'":
                in_string = not in_string
            elif not in_string and line.startswith("//", i):
                cut = i
                break
        lines.append(line[:cut])
    return "\n".join(lines)
