"""HTTP trigger routes, built and matched as the Functions host builds and matches them.

Building (at start-up): the host joins host.json's `extensions.http.routePrefix` and a function's route
as `prefix + "/" + route`, nothing trimmed (WebJobsRouteBuilder.BuildRouteTemplate in
azure-webjobs-sdk-extensions), and hands the template to ASP.NET Core's `Route` (RouteBase: TemplateParser
→ RoutePatternParser, then every inline constraint through DefaultInlineConstraintResolver and
RouteOptions' constraint map). A template ASP.NET refuses throws out of the host's start-up;
`RouteError`'s text is that exception chain as the host logs it (Utility.FlattenException).

Matching (per request): RoutePatternMatcher's two passes over the path's segments (a trailing '/' is
ignored, an empty segment never matches, a catch-all takes the rest as it is, complex segments are matched
right to left), then the constraints on the route values, defaults included. The host tries the routes in
function-name order (see functions.py), not by ASP.NET's precedence.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

ROUTING = "Microsoft.AspNetCore.Routing"
CORELIB = "System.Private.CoreLib"
REGEX = "System.Text.RegularExpressions"

# RoutePatternParser's messages (dotnet/aspnetcore src/Http/Routing/src/Resources.resx).
CONSECUTIVE_SEPARATORS = (
    "The route template separator character '/' cannot appear consecutively. "
    "It must be separated by either a parameter or a literal value."
)
INVALID_TEMPLATE = "The route template cannot start with a '~' character unless followed by a '/'."
MISMATCHED_PARAMETER = (
    "There is an incomplete parameter in the route template. Check that each '{' character has a matching "
    "'}' character."
)
UNESCAPED_BRACE = "In a route parameter, '{' and '}' must be escaped with '{{' and '}}'."
INVALID_PARAMETER_NAME = (
    "The route parameter name '{0}' is invalid. Route parameter names must be non-empty and cannot contain "
    "these characters: '{{', '}}', '/'. The '?' character marks a parameter as optional, and can occur only "
    "at the end of the parameter. The '*' character marks a parameter as catch-all, and can occur only at "
    "the start of the parameter."
)
REPEATED_PARAMETER = "The route parameter name '{0}' appears more than one time in the route template."
CATCH_ALL_OPTIONAL = "A catch-all parameter cannot be marked optional."
OPTIONAL_WITH_DEFAULT = "An optional parameter cannot have default value."
INVALID_LITERAL = "The literal section '{0}' is invalid. Literal sections cannot contain the '?' character."
CATCH_ALL_IN_COMPLEX = (
    "A path segment that contains more than one section, such as a literal section or a parameter, "
    "cannot contain a catch-all parameter."
)
OPTIONAL_PRECEDED = (
    "In the segment '{0}', the optional parameter '{1}' is preceded by an invalid segment '{2}'. "
    "Only a period (.) can precede an optional parameter."
)
OPTIONAL_NOT_LAST = (
    "An optional parameter must be at the end of the segment. In the segment '{0}', optional parameter "
    "'{1}' is followed by '{2}'."
)
CONSECUTIVE_PARAMETERS = (
    "A path segment cannot contain two consecutive parameters. They must be separated by a '/' or by a "
    "literal string."
)
CATCH_ALL_NOT_LAST = "A catch-all parameter can only appear as the last segment of the route template."
ROUTE_EXCEPTION = "An error occurred while creating the route with name '{0}' and template '{1}'."
UNRESOLVED_CONSTRAINT = (
    "The constraint entry '{0}' - '{1}' on the route '{2}' could not be resolved by the constraint "
    "resolver of type 'DefaultInlineConstraintResolver'."
)
NO_CONSTRUCTOR = (
    "Could not find a constructor for constraint type '{0}' with the following number of parameters: {1}."
)
CONSTRUCTOR_FAILED = (
    "An error occurred while trying to create an instance of 'Microsoft.AspNetCore.Routing.Constraints.{0}'."
)

Chain = list[tuple[str, str]]  # (exception source, message), outermost first


def flatten(chain: Sequence[tuple[str, str]]) -> str:
    """An exception chain as the host's Utility.FlattenException writes it."""
    written: list[str] = []
    last = None
    for source, message in chain:
        current = f"{source}: {message}" + ("" if message.endswith(".") else ".")
        if last is None or last.strip() != current.strip():
            written.append(current)
        last = current
    return " ".join(written)


class RouteError(ValueError):
    """A route the host cannot create; str() is the exception chain as the host logs it."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        super().__init__(flatten(chain))


class _PatternError(Exception):
    """RoutePatternException: the parser's message."""


# ----------------------------------------------------------------------------------------- parsing


@dataclass
class _Literal:
    text: str
    separator: bool = False  # the '.' before an optional parameter that ends a complex segment

    def debug(self) -> str:
        return self.text


Check = Callable[[str | None], bool]


@dataclass
class _Parameter:
    name: str
    kind: str  # "standard", "optional" or "catchall"
    default: str | None
    policies: list[str]
    encode_slashes: bool = True
    checks: list[Check] = field(default_factory=list)

    @property
    def optional(self) -> bool:
        return self.kind == "optional"

    @property
    def catch_all(self) -> bool:
        return self.kind == "catchall"

    def debug(self) -> str:
        stars = ("*" if self.encode_slashes else "**") if self.catch_all else ""
        policies = "".join(f":{policy}" for policy in self.policies)
        default = f"={self.default}" if self.default is not None else ""
        return "{" + stars + self.name + policies + default + ("?" if self.optional else "") + "}"


_Part = _Literal | _Parameter


class _Context:
    """RoutePatternParser's cursor: `index` starts before the first character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = -1
        self._mark: int | None = None
        self.names: set[str] = set()

    @property
    def current(self) -> str:
        return self.text[self.index] if 0 <= self.index < len(self.text) else "\0"

    def at_end(self) -> bool:
        return self.index >= len(self.text)

    def move_next(self) -> bool:
        self.index += 1
        return self.index < len(self.text)

    def back(self) -> None:
        self.index -= 1

    def mark(self) -> None:
        self._mark = self.index

    def capture(self) -> str:
        assert self._mark is not None
        captured, self._mark = self.text[self._mark : self.index], None
        return captured


def _trim_prefix(pattern: str) -> str:
    if pattern.startswith("~/"):
        return pattern[2:]
    if pattern.startswith("/"):
        return pattern[1:]
    if pattern.startswith("~"):
        raise _PatternError(INVALID_TEMPLATE)
    return pattern


def _parse(pattern: str) -> list[list[_Part]]:
    context = _Context(_trim_prefix(pattern))
    segments: list[list[_Part]] = []
    while context.move_next():
        if context.current == "/":
            # Templates do not start with '/' (trimmed above) and a segment consumes its separator.
            raise _PatternError(CONSECUTIVE_SEPARATORS)
        segments.append(_parse_segment(context))
    for position, segment in enumerate(segments):
        for index, part in enumerate(segment):
            last = position == len(segments) - 1 and index == len(segment) - 1
            if isinstance(part, _Parameter) and part.catch_all and not last:
                raise _PatternError(CATCH_ALL_NOT_LAST)
    return segments


def _parse_segment(context: _Context) -> list[_Part]:
    parts: list[_Part] = []
    while True:
        if context.current == "{":
            if not context.move_next():
                raise _PatternError(MISMATCHED_PARAMETER)
            escaped = context.current == "{"
            context.back()
            parts.append(_parse_literal(context) if escaped else _parse_parameter(context))
        else:
            parts.append(_parse_literal(context))
        if context.current == "/" or context.at_end():
            break
    _check_segment(parts)
    return parts


def _parse_parameter(context: _Context) -> _Parameter:
    context.mark()
    context.move_next()
    while True:
        if context.current == "{":
            if not context.move_next():
                raise _PatternError(MISMATCHED_PARAMETER)
            if context.current != "{":
                raise _PatternError(UNESCAPED_BRACE)
        elif context.current == "}" and (not context.move_next() or context.current != "}"):
            break  # the end of the parameter (a "}}" is an escaped brace inside it)
        if not context.move_next():
            raise _PatternError(MISMATCHED_PARAMETER)
    text = context.capture()
    if text == "{}":
        raise _PatternError(INVALID_PARAMETER_NAME.format(""))
    decoded = text[1:-1].replace("}}", "}").replace("{{", "{")
    parameter = _parameter(decoded)
    if decoded.startswith("*") and decoded.endswith("?"):
        raise _PatternError(CATCH_ALL_OPTIONAL)
    if parameter.optional and parameter.default is not None:
        raise _PatternError(OPTIONAL_WITH_DEFAULT)
    if not parameter.name or any(char in parameter.name for char in "/{}?*"):
        raise _PatternError(INVALID_PARAMETER_NAME.format(parameter.name))
    if parameter.name.lower() in context.names:
        raise _PatternError(REPEATED_PARAMETER.format(parameter.name))
    context.names.add(parameter.name.lower())
    return parameter


def _parameter(text: str) -> _Parameter:
    """RouteParameterParser: `name`, `*name`/`**name`, `name?`, `name:c1:c2(args)`, `name=default`."""
    if not text:
        return _Parameter("", "standard", None, [])
    start, end = 0, len(text) - 1
    kind, encode_slashes = "standard", True
    if text.startswith("**"):
        kind, encode_slashes, start = "catchall", False, 2
    elif text.startswith("*"):
        kind, start = "catchall", 1
    if text[end] == "?":
        kind, end = "optional", end - 1
    current, name = start, ""
    while current <= end:
        char = text[current]
        if char in ":=" and current != start:
            # A name may start with ':' or '=': only a later one ends it.
            name = text[start:current]
            current -= 1
            break
        if current == end:
            name = text[start : current + 1]
        current += 1
    current, policies = _constraints(text, current, end)
    default = text[current + 1 : end + 1] if current <= end and text[current] == "=" else None
    return _Parameter(name, kind, default, policies, encode_slashes)


def _constraints(text: str, current: int, end: int) -> tuple[int, list[str]]:
    """RouteParameterParser.ParseConstraints: ':'-separated, parentheses may hold ':' and '='."""
    found: list[str] = []
    state, start = "start", current
    while True:
        char = text[current] if current <= end else None
        if state == "start":
            if char is None:
                state = "end"
            elif char == ":":
                state, start = "name", current + 1
            elif char == "(":
                state = "paren"
            elif char == "=":
                state, current = "end", current - 1
        elif state == "paren":
            if char is None:
                state = "end"
                found.append(text[start:current])
            elif char == ")":
                following = text[current + 1] if current + 1 <= end else None
                if following is None or following in ":=":
                    found.append(text[start : current + 1])
                    state = "start" if following == ":" else "end"
                    start = current + 1
            elif char in ":=":
                closing = text.find(")", current + 1)
                if closing == -1:
                    found.append(text[start:current])
                    if char == ":":
                        state, start = "name", current + 1
                    else:
                        state, current = "end", current - 1
                else:
                    current = closing
        elif state == "name":
            if char is None or char in ":=":
                if text[start:current]:
                    found.append(text[start:current])
                if char is None:
                    state = "end"
                elif char == ":":
                    start = current + 1
                else:
                    state, current = "end", current - 1
            elif char == "(":
                state = "paren"
        current += 1
        if state == "end":
            return current, found


def _parse_literal(context: _Context) -> _Literal:
    context.mark()
    while context.current != "/":
        if context.current == "{":
            if not context.move_next():
                raise _PatternError(MISMATCHED_PARAMETER)
            if context.current != "{":
                context.back()  # the start of a parameter
                break
        elif context.current == "}" and (not context.move_next() or context.current != "}"):
            raise _PatternError(MISMATCHED_PARAMETER)
        if not context.move_next():
            break
    decoded = context.capture().replace("}}", "}").replace("{{", "{")
    if "?" in decoded:
        raise _PatternError(INVALID_LITERAL.format(decoded))
    return _Literal(decoded)


def _check_segment(parts: list[_Part]) -> None:
    """RoutePatternParser.IsSegmentValid."""
    shown = "".join(part.debug() for part in parts)
    if len(parts) > 1 and any(isinstance(part, _Parameter) and part.catch_all for part in parts):
        raise _PatternError(CATCH_ALL_IN_COMPLEX)
    for index, part in enumerate(parts):
        if not (isinstance(part, _Parameter) and part.optional and len(parts) > 1):
            continue
        if index != len(parts) - 1:
            raise _PatternError(OPTIONAL_NOT_LAST.format(shown, part.name, parts[index + 1].debug()))
        previous = parts[index - 1]
        if not isinstance(previous, _Literal) or previous.text != ".":
            raise _PatternError(OPTIONAL_PRECEDED.format(shown, part.name, previous.debug()))
        parts[index - 1] = _Literal(previous.text, separator=True)
    for before, after in itertools.pairwise(parts):
        if isinstance(before, _Parameter) and isinstance(after, _Parameter):
            raise _PatternError(CONSECUTIVE_PARAMETERS)


# ------------------------------------------------------------------------------------- constraints

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
# NumberStyles.Float | AllowThousands (double, float) and NumberStyles.Number (decimal), invariant culture.
_FLOAT = re.compile(r"\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)
_NUMBER = re.compile(r"\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)\s*", re.ASCII)
_SPECIAL_FLOATS = {"nan", "infinity", "+infinity", "-infinity", "∞", "-∞", "+∞"}


def _integer(value: str, bounds: tuple[int, int]) -> int | None:
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if bounds[0] <= number <= bounds[1] else None


def _is_float(value: str) -> bool:
    if value.strip().lower() in _SPECIAL_FLOATS:
        return True
    return _FLOAT.fullmatch(value) is not None


def _is_decimal(value: str) -> bool:
    if not _NUMBER.fullmatch(value):
        return False
    try:
        return abs(Decimal(value.strip().replace(",", ""))) < Decimal("79228162514264337593543950336")
    except InvalidOperation:
        return False


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip())
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _is_file_name(value: str) -> bool:
    """FileNameRouteConstraint: the last '/'-segment has a '.' followed by something other than dots."""
    name = value.rsplit("/", 1)[-1]
    dot = name.find(".")
    return dot >= 0 and any(char != "." for char in name[dot + 1 :])


def _present(test: Callable[[str], bool]) -> Check:
    # Every built-in constraint refuses a missing value; OptionalRouteConstraint wraps it for `{x?}`.
    return lambda value: value is not None and test(value)


class _CtorFailure(Exception):
    """The constraint's constructor threw: (source, message) of what it threw."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message


def _long(argument: str | None) -> int:
    """Convert.ChangeType(argument, typeof(long), InvariantCulture)."""
    if argument is None:
        raise _CtorFailure(CORELIB, "Null object cannot be converted to a value type.")
    if not _INTEGER.fullmatch(argument):
        raise _CtorFailure(CORELIB, f"The input string '{argument}' was not in a correct format.")
    number = int(argument)
    if not _INT64[0] <= number <= _INT64[1]:
        raise _CtorFailure(CORELIB, "Value was either too large or too small for an Int64.")
    return number


def _int(argument: str | None) -> int:
    number = _long(argument)
    if not _INT32[0] <= number <= _INT32[1]:
        raise _CtorFailure(CORELIB, "Value was either too large or too small for an Int32.")
    return number


def _not_negative(number: int, name: str) -> int:
    if number < 0:
        raise _CtorFailure(
            CORELIB,
            f"Value must be greater than or equal to 0. (Parameter '{name}')\nActual value was {number}.",
        )
    return number


def _ordered(low: int, high: int, low_name: str, high_name: str) -> None:
    if low > high:
        raise _CtorFailure(
            CORELIB,
            f"The value for argument '{low_name}' should be less than or equal to the value for the argument "
            f"'{high_name}'. (Parameter '{low_name}')\nActual value was {low}.",
        )


def _regex(argument: str | None) -> Check:
    if argument is None:
        raise _CtorFailure(CORELIB, "Value cannot be null. (Parameter 'regexPattern')")
    try:
        # .NET regex, CultureInvariant | IgnoreCase, not anchored; Python's re reads most such patterns alike.
        pattern = re.compile(argument, re.IGNORECASE)
    except re.error as exc:
        raise _CtorFailure(REGEX, f"Invalid pattern '{argument}' at offset {exc.pos}. {exc.msg}.") from exc
    return _present(lambda value: pattern.search(value) is not None)


def _length(arguments: list[str]) -> Check:
    if len(arguments) == 1:
        exact = _not_negative(_int(arguments[0]), "length")
        return _present(lambda value: len(value) == exact)
    low = _not_negative(_int(arguments[0]), "minLength")
    high = _not_negative(_int(arguments[1]), "maxLength")
    _ordered(low, high, "minLength", "maxLength")
    return _present(lambda value: low <= len(value) <= high)


def _bounded(low: int | None, high: int | None) -> Check:
    def within(value: str) -> bool:
        number = _integer(value, _INT64)
        return number is not None and (low is None or number >= low) and (high is None or number <= high)

    return _present(within)


def _range(arguments: list[str]) -> Check:
    low, high = _long(arguments[0]), _long(arguments[1])
    _ordered(low, high, "min", "max")
    return _bounded(low, high)


@dataclass(frozen=True)
class _ConstraintType:
    """One entry of RouteOptions' default constraint map: its type and constructors' arities."""

    type_name: str
    arities: tuple[int, ...]
    build: Callable[[list[str | None]], Check]


def _simple(test: Callable[[str], bool]) -> Callable[[list[str | None]], Check]:
    return lambda _: _present(test)


def _min_length(args: list[str | None]) -> Check:
    limit = _not_negative(_int(args[0]), "minLength")
    return _present(lambda v: len(v) >= limit)


def _max_length(args: list[str | None]) -> Check:
    limit = _not_negative(_int(args[0]), "maxLength")
    return _present(lambda v: len(v) <= limit)


_CONSTRAINTS: dict[str, _ConstraintType] = {
    "int": _ConstraintType("IntRouteConstraint", (0,), _simple(lambda v: _integer(v, _INT32) is not None)),
    "bool": _ConstraintType(
        "BoolRouteConstraint", (0,), _simple(lambda v: v.strip().lower() in ("true", "false"))
    ),
    "datetime": _ConstraintType("DateTimeRouteConstraint", (0,), _simple(_is_datetime)),
    "decimal": _ConstraintType("DecimalRouteConstraint", (0,), _simple(_is_decimal)),
    "double": _ConstraintType("DoubleRouteConstraint", (0,), _simple(_is_float)),
    "float": _ConstraintType("FloatRouteConstraint", (0,), _simple(_is_float)),
    "guid": _ConstraintType("GuidRouteConstraint", (0,), _simple(_is_guid)),
    "long": _ConstraintType("LongRouteConstraint", (0,), _simple(lambda v: _integer(v, _INT64) is not None)),
    "minlength": _ConstraintType("MinLengthRouteConstraint", (1,), _min_length),
    "maxlength": _ConstraintType("MaxLengthRouteConstraint", (1,), _max_length),
    "length": _ConstraintType("LengthRouteConstraint", (1, 2), lambda args: _length([str(a) for a in args])),
    "min": _ConstraintType("MinRouteConstraint", (1,), lambda args: _bounded(_long(args[0]), None)),
    "max": _ConstraintType("MaxRouteConstraint", (1,), lambda args: _bounded(None, _long(args[0]))),
    "range": _ConstraintType("RangeRouteConstraint", (2,), lambda args: _range([str(a) for a in args])),
    "alpha": _ConstraintType(
        "AlphaRouteConstraint", (0,), _simple(lambda v: re.fullmatch(r"[a-z]*", v, re.I) is not None)
    ),
    "regex": _ConstraintType("RegexInlineRouteConstraint", (1,), lambda args: _regex(args[0])),
    "required": _ConstraintType("RequiredRouteConstraint", (0,), _simple(lambda v: v != "")),
    "file": _ConstraintType("FileNameRouteConstraint", (0,), _simple(_is_file_name)),
    "nonfile": _ConstraintType("NonFileNameRouteConstraint", (0,), _simple(lambda v: not _is_file_name(v))),
}


def _resolve(parameter: str, text: str, template: str) -> Check:
    """DefaultInlineConstraintResolver → ParameterPolicyActivator, with their errors."""
    opening = text.find("(")
    if opening >= 0 and text.endswith(")"):
        key, argument = text[:opening], text[opening + 1 : -1]
    else:
        key, argument = text, None
    kind = _CONSTRAINTS.get(key.lower())
    if kind is None:
        raise RouteError([(ROUTING, UNRESOLVED_CONSTRAINT.format(parameter, text, template))])
    arguments: list[str | None]
    if kind.arities == (1,):
        # One constructor of one parameter: the whole argument text, commas and all (regex patterns).
        arguments = [argument]
    else:
        arguments = [part.strip() for part in argument.split(",")] if argument is not None else []
        if len(arguments) not in kind.arities:
            raise RouteError([(ROUTING, NO_CONSTRUCTOR.format(kind.type_name, len(arguments)))])
    try:
        return kind.build(arguments)
    except _CtorFailure as exc:
        raise RouteError(
            [(ROUTING, CONSTRUCTOR_FAILED.format(kind.type_name)), (exc.source, exc.message)]
        ) from exc


# ---------------------------------------------------------------------------------------- matching


def request_path(raw_path: str) -> str:
    """Request.Path as Kestrel gives it: percent-decoded, except an encoded '/' (%2F) stays encoded."""
    pieces = re.split(r"(%2[fF])", raw_path)
    return "".join(piece if index % 2 else unquote(piece) for index, piece in enumerate(pieces))


def _tokens(path: str) -> list[tuple[str, int]]:
    """PathTokenizer: (segment, its start) after the leading '/'; a trailing '/' makes no segment."""
    if len(path) <= 1:
        return []
    found: list[tuple[str, int]] = []
    start = 1
    while start < len(path):
        slash = path.find("/", start)
        if slash == -1:
            found.append((path[start:], start))
            break
        found.append((path[start:slash], start))
        start = slash + 1
    return found


def _rfind(text: str, literal: str, end: int) -> int:
    return text.lower().rfind(literal.lower(), 0, end) if end > 0 else -1


def _match_complex(parts: list[_Part], segment: str, values: dict[str, str | None]) -> bool:
    last = len(parts) - 1
    final = parts[last]
    if isinstance(final, _Parameter) and final.optional:
        separator = parts[last - 1]
        assert isinstance(separator, _Literal)
        if _match_complex_from(parts, segment, values, last):
            return True
        if segment.lower().endswith(separator.text.lower()):
            return False
        return _match_complex_from(parts, segment, values, last - 2)
    return _match_complex_from(parts, segment, values, last)


def _match_complex_from(parts: list[_Part], segment: str, values: dict[str, str | None], index: int) -> bool:
    """RoutePatternMatcher.MatchComplexSegmentCore: literals found right to left, parameters in between."""
    last_index = len(segment)
    pending: _Parameter | None = None
    last_literal: _Literal | None = None
    found: dict[str, str] = {}
    while index >= 0:
        new_last = last_index
        part = parts[index]
        if isinstance(part, _Parameter):
            pending = part
        else:
            last_literal = part
            start = last_index - 1 if pending is not None else last_index
            if start <= 0:
                return False
            at = _rfind(segment, part.text, start)
            if at == -1:
                return False
            if index == len(parts) - 1 and at + len(part.text) != len(segment):
                return False  # a literal at the end of the template must end the segment
            new_last = at
        if pending is not None and ((last_literal is not None and isinstance(part, _Literal)) or index == 0):
            if last_literal is None or isinstance(part, _Parameter):
                value_start, length = 0, last_index
            else:
                value_start = new_last + len(last_literal.text)
                length = last_index - value_start
            value = segment[value_start : value_start + length]
            if not value:
                return False
            found[pending.name] = value
            pending, last_literal = None, None
        last_index = new_last
        index -= 1
    if last_index == 0 or isinstance(parts[0], _Parameter):
        values.update(found)
        return True
    return False


class RouteTemplate:
    """One route as the host creates it: parsed, constraints resolved, ready to match request paths."""

    def __init__(self, template: str, name: str | None = None) -> None:
        self.template = template
        self.name = name if name is not None else template
        try:
            self._segments = _parse(template)
        except _PatternError as exc:
            message = str(exc)
            raise RouteError(
                [
                    (ROUTING, ROUTE_EXCEPTION.format(self.name, template)),
                    (ROUTING, f"{message} (Parameter 'routeTemplate')"),
                    (ROUTING, message),
                ]
            ) from exc
        self._parameters = [
            part for segment in self._segments for part in segment if isinstance(part, _Parameter)
        ]
        for parameter in self._parameters:
            try:
                parameter.checks = [_resolve(parameter.name, text, template) for text in parameter.policies]
            except RouteError as exc:
                raise RouteError(
                    [(ROUTING, ROUTE_EXCEPTION.format(self.name, template)), *exc.chain]
                ) from exc

    @property
    def parameters(self) -> list[str]:
        return [parameter.name for parameter in self._parameters]

    def match(self, path: str) -> dict[str, str] | None:
        """The route values if `path` (Request.Path: decoded but for %2F, starting with '/') matches."""
        tokens = _tokens(path)
        segments = self._segments
        position = 0
        for text, _ in tokens:
            if not text or position >= len(segments):
                return None
            segment = segments[position]
            first = segment[0]
            if len(segment) == 1 and isinstance(first, _Parameter) and first.catch_all:
                break
            if len(segment) == 1 and isinstance(first, _Literal) and text.lower() != first.text.lower():
                return None
            position += 1
        for segment in segments[position:]:
            # Route segments left over: only parameters that may go without a value.
            first = segment[0]
            if len(segment) > 1 or isinstance(first, _Literal):
                return None
            if first.catch_all:
                break
            if first.default is None and not first.optional:
                return None
        values: dict[str, str | None] = {}
        position = 0
        for text, start in tokens:
            segment = segments[position]
            position += 1
            first = segment[0]
            if len(segment) == 1 and isinstance(first, _Parameter):
                if first.catch_all:
                    values[first.name] = path[start:] or first.default
                    break
                values[first.name] = text
            elif len(segment) > 1 and not _match_complex(segment, text, values):
                return None
        for segment in segments[position:]:
            first = segment[0]
            if not isinstance(first, _Parameter) or not (first.catch_all or first.default is not None):
                continue
            if first.default is not None or first.name not in values:
                values[first.name] = first.default
        for parameter in self._parameters:
            if parameter.default is not None and parameter.name not in values:
                values[parameter.name] = parameter.default
        for parameter in self._parameters:
            if parameter.optional and parameter.name not in values:
                continue  # OptionalRouteConstraint: no value, nothing to check
            if not all(check(values.get(parameter.name)) for check in parameter.checks):
                return None
        # The host hands the worker the values that are not null.
        return {name: value for name, value in values.items() if value is not None}

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"
