"""HTTP trigger route templates, matched the way ASP.NET Core routing matches them for the Functions host.

A template is `/`-separated segments of literals and `{parameters}`:
`{name}`, `{name:int}` (constraints chain: `{n:int:min(1)}`), optional `{name?}`, default `{name=v}`,
catch-all `{*rest}` (or `{**rest}`) as the last segment, and complex segments such as `{file}.{ext}`.
Literals match case-insensitively; `{{` and `}}` are literal braces. Values come back URL-decoded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class RouteError(ValueError):
    """A route template the host cannot serve."""


def _integer(value: str, bounds: tuple[int, int]) -> int | None:
    if not re.fullmatch(r"[+-]?\d+", value):
        return None
    number = int(value)
    return number if bounds[0] <= number <= bounds[1] else None


def _is_float(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return number not in (float("inf"), float("-inf")) and number == number


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _numbers(args: str, count: int, name: str) -> list[int]:
    parts = [part.strip() for part in args.split(",")] if args else []
    if len(parts) != count or not all(re.fullmatch(r"-?\d+", part) for part in parts):
        raise RouteError(f"route constraint {name}({args}) needs {count} integer argument(s)")
    return [int(part) for part in parts]


Check = Callable[[str], bool]


def _constraint(name: str, args: str | None) -> Check:
    """One inline constraint as a predicate on the (decoded) value."""
    simple: dict[str, Check] = {
        "int": lambda v: _integer(v, _INT32) is not None,
        "long": lambda v: _integer(v, _INT64) is not None,
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
    }
    if name in simple:
        if args is not None:
            raise RouteError(f"route constraint {name!r} takes no argument")
        return simple[name]
    text = args or ""
    if name == "regex":
        try:
            pattern = re.compile(text, re.IGNORECASE)
        except re.error as exc:
            raise RouteError(f"route constraint regex({text}) is not a valid pattern: {exc}") from exc
        # ASP.NET's regex constraint is not anchored: anchor it yourself with ^ and $.
        return lambda v: pattern.search(v) is not None
    if name in ("minlength", "maxlength"):
        (limit,) = _numbers(text, 1, name)
        return (lambda v: len(v) >= limit) if name == "minlength" else (lambda v: len(v) <= limit)
    if name == "length":
        parts = _numbers(text, text.count(",") + 1, name)
        if len(parts) == 1:
            return lambda v: len(v) == parts[0]
        if len(parts) == 2:
            return lambda v: parts[0] <= len(v) <= parts[1]
        raise RouteError(f"route constraint length({text}) takes one or two integers")
    if name in ("min", "max"):
        (limit,) = _numbers(text, 1, name)

        def bound(v: str) -> bool:
            number = _integer(v, _INT64)
            return number is not None and (number >= limit if name == "min" else number <= limit)

        return bound
    if name == "range":
        low, high = _numbers(text, 2, name)

        def within(v: str) -> bool:
            number = _integer(v, _INT64)
            return number is not None and low <= number <= high

        return within
    raise RouteError(f"route constraint {name!r} is not supported by the devstack host")


@dataclass
class _Parameter:
    name: str
    checks: list[Check] = field(default_factory=list)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False
    constrained: bool = False


_Part = str | _Parameter


def _split_constraints(body: str) -> list[str]:
    """`name:int:regex(a:b)` -> ['name', 'int', 'regex(a:b)']: colons inside parentheses do not split."""
    pieces, depth, current = [], 0, ""
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == ":" and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return pieces


def _parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default = None
    # A default value may contain anything; it starts at the first '=' outside parentheses.
    depth = 0
    for index, char in enumerate(body):
        depth += char == "("
        depth -= char == ")"
        if char == "=" and depth == 0:
            body, default = body[:index], body[index + 1 :]
            break
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraints = _split_constraints(body)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteError(f"route {template!r}: {name!r} is not a valid parameter name")
    checks = []
    for text in constraints:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", text, re.DOTALL)
        if match is None:
            raise RouteError(f"route {template!r}: cannot read the constraint {text!r}")
        checks.append(_constraint(match.group(1), match.group(2)))
    if optional and default is not None:
        raise RouteError(f"route {template!r}: {name!r} cannot be optional and have a default")
    return _Parameter(name, checks, optional, default, catch_all, bool(checks))


def _segment(text: str, template: str) -> list[_Part]:
    parts: list[_Part] = []
    literal, index = "", 0
    while index < len(text):
        char = text[index]
        if text.startswith("{{", index) or text.startswith("}}", index):
            literal += char
            index += 2
        elif char == "{":
            depth, end = 1, index + 1
            body = ""
            while end < len(text) and depth:
                if text.startswith("{{", end) or text.startswith("}}", end):
                    body += text[end]
                    end += 2
                    continue
                if text[end] == "{":
                    raise RouteError(f"route {template!r}: unescaped '{{' inside a parameter")
                if text[end] == "}":
                    depth -= 1
                    if not depth:
                        break
                body += text[end]
                end += 1
            if depth:
                raise RouteError(f"route {template!r}: unterminated parameter")
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(_parameter(body, template))
            index = end + 1
        elif char == "}":
            raise RouteError(f"route {template!r}: unmatched '}}'")
        else:
            literal += char
            index += 1
    if literal:
        parts.append(literal)
    return parts


class RouteTemplate:
    """One route template compiled to a matcher."""

    def __init__(self, template: str) -> None:
        self.template = template
        stripped = template.strip("/")
        segments = [_segment(text, template) for text in stripped.split("/")] if stripped else []
        names: set[str] = set()
        self._parameters: list[_Parameter] = []
        pattern = ""
        precedence: list[int] = []
        for position, parts in enumerate(segments):
            if not parts:
                raise RouteError(f"route {template!r}: empty segment")
            params = [part for part in parts if isinstance(part, _Parameter)]
            for param in params:
                if param.name.lower() in names:
                    raise RouteError(f"route {template!r}: parameter {param.name!r} appears twice")
                names.add(param.name.lower())
                if param.catch_all and position != len(segments) - 1:
                    raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
                if len(parts) > 1 and (param.catch_all or param.optional):
                    raise RouteError(
                        f"route {template!r}: {param.name!r} cannot be optional in a complex segment"
                    )
            if len(parts) == 1 and isinstance(parts[0], _Parameter):
                param = parts[0]
                group = f"p{len(self._parameters)}"
                self._parameters.append(param)
                if param.catch_all:
                    pattern += rf"(?:/(?P<{group}>.*))?"
                    precedence.append(5)
                elif param.optional or param.default is not None:
                    pattern += rf"(?:/(?P<{group}>[^/]+))?"
                    precedence.append(3 if param.constrained else 4)
                else:
                    pattern += rf"/(?P<{group}>[^/]+)"
                    precedence.append(3 if param.constrained else 4)
                continue
            pattern += "/"
            for part in parts:
                if isinstance(part, str):
                    pattern += re.escape(part)
                else:
                    group = f"p{len(self._parameters)}"
                    self._parameters.append(part)
                    pattern += rf"(?P<{group}>[^/]+?)"
            precedence.append(1 if all(isinstance(part, str) for part in parts) else 2)
        self._regex = re.compile(rf"^{pattern}/?$" if pattern else r"^/?$", re.IGNORECASE | re.DOTALL)
        # Lower sorts first: literal segments beat complex ones, constrained beat plain, catch-all last.
        self.precedence: tuple[int, ...] = tuple(precedence)

    @property
    def parameters(self) -> list[str]:
        return [param.name for param in self._parameters]

    def match(self, path: str) -> dict[str, str] | None:
        """The route parameters if `path` (decoded, starting with '/') matches, else None."""
        found = self._regex.match(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, param in enumerate(self._parameters):
            value = found.group(f"p{index}")
            if value is None or (param.catch_all and value == ""):
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"
