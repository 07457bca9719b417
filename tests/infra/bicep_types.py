"""Check resource bodies in infra/ against the Bicep types of their type and api-version.

No Bicep compiler runs here, so this does the part of its type check that decides
whether Azure Resource Manager would even accept a body: every property a template
sets must exist in the resource type of that api-version (spelled as the type spells
it), literal values must be of the property's type (and one of its values, for an
enum), read-only properties must not be set and required ones must be. Nested
objects and arrays are checked all the way down.

The types come from Azure/bicep-types-az, the files the Bicep compiler is built
with (`generated/<provider>/<namespace>/<api-version>/types.json`, generated from
Azure's REST specs); tests/infra/bicep_types/ keeps an extract of just the types the
templates use (refresh it with tests/infra/extract_bicep_types.py). The format is
that of Azure/bicep-types (src/bicep-types/src/types.ts): property flags Required=1,
ReadOnly=2, WriteOnly=4, DeployTimeConstant=8, Identifier=16; scope flags Tenant=1,
ManagementGroup=2, Subscription=4, ResourceGroup=8, Extension=16.

What is decided, and what is not:
- A value that is an expression (a parameter, variable, function call, property of
  another resource, or an interpolated string) is not evaluated: its type is not
  checked. A conditional (`c ? a : b`) has both branches checked, as Bicep does.
  (pycep 0.5.1 reads `a == b ? x : y` as `a == (b ? x : y)`: such a value is a
  comparison to it, skipped as an expression, never misjudged.)
- Literals are checked: strings (enum membership, minLength/maxLength, the pattern
  where Python's `re` reads it), integers (minValue/maxValue), booleans, null,
  objects and arrays.
- Stricter than Bicep: for an extensible enum (a union of string literals and
  `string`, from the specs' `modelAsString`), Bicep accepts any string; here a
  literal must be one of the listed values, since those are the values the API is
  known to accept. Bicep only warns about unknown or mis-cased properties of
  resource types (BCP037/BCP089, because the types may lag the service); here they
  are errors, because a property the api-version does not have is at best ignored
  by Azure and at worst refused (as `anonymousPullEnabled` on registries@2023-07-01).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.bicep_model import Resource, is_literal

TYPES_DIR = Path(__file__).resolve().parent / "bicep_types"

REQUIRED, READ_ONLY = 1, 2
SCOPES = {"tenant": 1, "managementGroup": 2, "subscription": 4, "resourceGroup": 8}
EXTENSION_SCOPE = 16

# Keys of a resource declaration that are Bicep's own, not the resource body's.
# pycep adds `depends_on` to nested child resources.
LANGUAGE_KEYS = {"parent", "scope", "dependsOn", "depends_on"}


def extract_file_name(upstream_path: str) -> str:
    """generated/web/microsoft.web/2024-04-01/types.json -> web.microsoft.web@2024-04-01.json"""
    provider, namespace, version = upstream_path.split("/")[1:4]
    return f"{provider}.{namespace}@{version}.json"


@dataclass(frozen=True)
class TypeFile:
    path: Path
    source: dict[str, str]
    resources: dict[str, int]
    types: list[dict[str, Any]]

    def at(self, ref: dict[str, str]) -> dict[str, Any]:
        return self.types[int(ref["$ref"].removeprefix("#/"))]


@functools.cache
def type_files() -> tuple[TypeFile, ...]:
    files = []
    for path in sorted(TYPES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        files.append(TypeFile(path, data["source"], data["resources"], data["types"]))
    return tuple(files)


def find_resource_type(type_: str, api_version: str) -> tuple[TypeFile, dict[str, Any]] | None:
    """Resource type names are case-insensitive in ARM, and so in Bicep."""
    wanted = f"{type_}@{api_version}".lower()
    for file in type_files():
        for name, index in file.resources.items():
            if name.lower() == wanted:
                return file, file.types[index]
    return None


# ------------------------------------------------------------------ values


def is_expression(value: Any) -> bool:
    """A value pycep parsed from something other than a literal."""
    if isinstance(value, str):  # identifier, a.b / a[0] / a::b, or '${...}' interpolation
        return not is_literal(value)
    if isinstance(value, dict):
        if "function" in value:
            return True
        operator = value.get("operator")
        if isinstance(operator, dict):
            return not (_negative_int(value) is not None or operator.get("type") == "conditional")
    return False


def _negative_int(value: Any) -> int | None:
    """pycep parses `-3` as the operator minus applied to 3."""
    if isinstance(value, dict) and set(value) == {"operator"}:
        operator = value["operator"]
        if isinstance(operator, dict) and operator.get("type") == "minus":
            operand = operator.get("operands", {}).get("integer_value")
            if isinstance(operand, int) and not isinstance(operand, bool):
                return -operand
    return None


def _branches(value: Any) -> list[Any] | None:
    """Both values of `c ? a : b`."""
    if isinstance(value, dict) and set(value) == {"operator"}:
        operator = value["operator"]
        if isinstance(operator, dict) and operator.get("type") == "conditional":
            operands = operator["operands"]
            return [operands["true_value"], operands["false_value"]]
    return None


def _loop_body(value: Any) -> Any:
    """`[for x in xs: body]` parses as {loop_type, condition, config: body}."""
    if isinstance(value, dict) and "loop_type" in value and "config" in value:
        return value["config"]
    return None


_ESCAPES = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}


def literal_string(raw: str) -> str:
    """pycep keeps a string literal's escapes (\\' stays two characters); resolve them."""
    out = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), raw)
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), out)


def key_name(raw: str) -> str | None:
    """An object key as written: bare, or quoted ('azd-service-name'); None when interpolated."""
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        inner = raw[1:-1]
        return None if is_expression(inner) else literal_string(inner)
    return raw


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int) or _negative_int(value) is not None:
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def describe(file: TypeFile, node: dict[str, Any]) -> str:
    kind = node["$type"]
    if kind == "StringLiteralType":
        return repr(node["value"])
    if kind == "UnionType":
        return " | ".join(describe(file, file.at(e)) for e in node["elements"])
    if kind in ("ObjectType", "DiscriminatedObjectType"):
        return str(node.get("name") or "object")
    if kind == "ArrayType":
        return describe(file, file.at(node["itemType"])) + "[]"
    names = {
        "StringType": "string",
        "IntegerType": "int",
        "BooleanType": "bool",
        "AnyType": "any",
        "NullType": "null",
    }
    return names.get(str(kind), str(kind))


# ------------------------------------------------------------------ the check


class Checker:
    def __init__(self, file: TypeFile) -> None:
        self.file = file

    def value(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        branches = _branches(value)
        if branches is not None:
            return [p for branch in branches for p in self.value(branch, node, path)]
        if is_expression(value):
            return []
        kind = node["$type"]
        method = getattr(self, "_" + kind, None)
        assert method is not None, f"{self.file.path.name}: no check for {kind}"
        problems: list[str] = method(value, node, path)
        return problems

    def _mismatch(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        return [f"{path}: expected {describe(self.file, node)}, got {_kind_of(value)}"]

    def _AnyType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        return []

    def _NullType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        return [] if value is None else self._mismatch(value, node, path)

    def _BooleanType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        return [] if isinstance(value, bool) else self._mismatch(value, node, path)

    def _IntegerType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        number = _negative_int(value)
        if number is None:
            if not isinstance(value, int) or isinstance(value, bool):
                return self._mismatch(value, node, path)
            number = value
        if "minValue" in node and number < node["minValue"]:
            return [f"{path}: {number} is below the minimum {node['minValue']}"]
        if "maxValue" in node and number > node["maxValue"]:
            return [f"{path}: {number} is above the maximum {node['maxValue']}"]
        return []

    def _StringType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, str):
            return self._mismatch(value, node, path)
        text = literal_string(value)
        if "minLength" in node and len(text) < node["minLength"]:
            return [f"{path}: {text!r} is shorter than {node['minLength']} characters"]
        if "maxLength" in node and len(text) > node["maxLength"]:
            return [f"{path}: {text!r} is longer than {node['maxLength']} characters"]
        pattern = node.get("pattern")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error:  # a .NET-only construct: not decided here
                return []
            if not compiled.search(text):
                return [f"{path}: {text!r} does not match the pattern {pattern}"]
        return []

    def _StringLiteralType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, str):
            return self._mismatch(value, node, path)
        return [] if literal_string(value) == node["value"] else [f"{path}: expected {node['value']!r}"]

    def _UnionType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        elements = [self.file.at(e) for e in node["elements"]]
        literals = [e["value"] for e in elements if e["$type"] == "StringLiteralType"]
        if isinstance(value, str) and literals:
            # An enum (closed, or extensible when `string` is an element): see the module doc.
            text = literal_string(value)
            if text in literals:
                return []
            hint = [v for v in literals if v.lower() == text.lower()]
            if hint:
                return [f"{path}: {text!r} is mis-cased; the type says {hint[0]!r}"]
            return [f"{path}: {text!r} is not one of {', '.join(map(repr, literals))}"]
        attempts = [self.value(value, element, path) for element in elements]
        if any(not problems for problems in attempts):
            return []
        return min(attempts, key=len)

    def _ArrayType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        item = self.file.at(node["itemType"])
        body = _loop_body(value)
        if body is not None:
            return self.value(body, item, f"{path}[for]")
        if not isinstance(value, list):
            return self._mismatch(value, node, path)
        problems = []
        if "minLength" in node and len(value) < node["minLength"]:
            problems.append(f"{path}: fewer than {node['minLength']} items")
        if "maxLength" in node and len(value) > node["maxLength"]:
            problems.append(f"{path}: more than {node['maxLength']} items")
        for index, element in enumerate(value):
            problems += self.value(element, item, f"{path}[{index}]")
        return problems

    def _ObjectType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return self._mismatch(value, node, path)
        return self.properties(value, node.get("properties", {}), node.get("additionalProperties"), path)

    def _DiscriminatedObjectType(self, value: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return self._mismatch(value, node, path)
        discriminator = node["discriminator"]
        elements = node["elements"]
        given = value.get(discriminator)
        here = f"{path}.{discriminator}" if path else discriminator
        if given is None:
            return [f"{here}: required (one of {', '.join(map(repr, elements))})"]
        base = dict(node.get("baseProperties", {}))
        if is_expression(given):
            # Which element applies is not known: accept what some element declares.
            merged = dict(base)
            for ref in elements.values():
                merged.update(self.file.at(ref).get("properties", {}))
            known = {k: v for k, v in value.items() if k in merged}
            unknown = [f"{path}.{k}" if path else k for k in value if k not in merged]
            return [f"{u}: not a property of any {node['name']} variant" for u in unknown] + [
                p
                for k, v in known.items()
                if k != discriminator
                for p in self.value(v, self.file.at(merged[k]["type"]), f"{path}.{k}" if path else k)
            ]
        if not isinstance(given, str) or literal_string(given) not in elements:
            return [f"{here}: {given!r} is not one of {', '.join(map(repr, elements))}"]
        element = self.file.at(elements[literal_string(given)])
        properties = {**base, **element.get("properties", {})}
        return self.properties(value, properties, element.get("additionalProperties"), path)

    def properties(
        self,
        value: dict[str, Any],
        declared: dict[str, Any],
        additional: dict[str, str] | None,
        path: str,
    ) -> list[str]:
        problems = []
        by_lower = {name.lower(): name for name in declared}
        present = set()
        for raw_key, item in value.items():
            name = key_name(raw_key)
            here = f"{path}.{name or raw_key}" if path else (name or raw_key)
            if name is None:  # an interpolated key: only a map can take it
                if additional is None:
                    problems.append(f"{here}: a computed key, on an object with fixed properties")
                else:
                    problems += self.value(item, self.file.at(additional), here)
                continue
            if name in declared:
                present.add(name)
                prop = declared[name]
                if prop["flags"] & READ_ONLY:
                    problems.append(f"{here}: read-only, cannot be set")
                    continue
                problems += self.value(item, self.file.at(prop["type"]), here)
            elif name.lower() in by_lower:
                present.add(by_lower[name.lower()])
                problems.append(f"{here}: mis-cased; the type says {by_lower[name.lower()]!r}")
            elif additional is not None:
                problems += self.value(item, self.file.at(additional), here)
            else:
                problems.append(f"{here}: no such property (known: {', '.join(sorted(declared))})")
        for name, prop in declared.items():
            if prop["flags"] & REQUIRED and not prop["flags"] & READ_ONLY and name not in present:
                problems.append(f"{path + '.' if path else ''}{name}: required, not set")
        return problems


def _deploy_scope(resource: Resource) -> int:
    """The scope a declaration deploys at: extension when scoped to another resource."""
    scope = resource.body.get("scope")
    if scope is not None and isinstance(scope, str):
        return EXTENSION_SCOPE
    if isinstance(scope, dict) and "function" in scope:
        kind = scope["function"]["type"]
        return {
            "resource_group": SCOPES["resourceGroup"],
            "subscription": SCOPES["subscription"],
            "management_group": SCOPES["managementGroup"],
            "tenant": SCOPES["tenant"],
        }.get(kind, 0)
    return SCOPES.get(resource.target_scope, 0)


def check_resource(resource: Resource) -> list[str]:
    """Every problem with one resource declaration, as 'path: what'."""
    found = find_resource_type(resource.type, resource.api_version)
    if found is None:
        return [
            f"no Bicep types for {resource.type}@{resource.api_version} in tests/infra/bicep_types/ "
            "(unknown api-version, or refresh the extract: tests/infra/extract_bicep_types.py)"
        ]
    file, resource_type = found
    problems = []
    scopes = resource_type["readableScopes" if resource.existing else "writableScopes"]
    deploy_scope = _deploy_scope(resource)
    if deploy_scope and scopes and not scopes & deploy_scope:
        verb = "read" if resource.existing else "deployed"
        problems.append(f"cannot be {verb} at this scope (scope flags {scopes}, here {deploy_scope})")
    body = {k: v for k, v in resource.body.items() if k not in LANGUAGE_KEYS}
    if resource.existing:
        extra = set(body) - {"name"}
        if extra:
            problems.append(f"an existing resource takes only name, parent and scope, not {sorted(extra)}")
        body = {k: v for k, v in body.items() if k == "name"}
        node = file.at(resource_type["body"])
        if node["$type"] == "DiscriminatedObjectType":
            return problems
        name = node["properties"]["name"]
        return problems + Checker(file).value(body.get("name"), file.at(name["type"]), "name")
    return problems + Checker(file).value(body, file.at(resource_type["body"]), "")


def check_all(resources: Iterable[Resource]) -> dict[str, list[str]]:
    """Problems by 'file:symbol (type@version)', only where there are some."""
    report = {}
    for resource in resources:
        problems = check_resource(resource)
        if problems:
            report[f"{resource.file.name}:{resource.symbol} ({resource.type}@{resource.api_version})"] = (
                problems
            )
    return report
