"""Event Grid's advanced filters: the string operators, as the docs (event-grid/event-filtering) say;
the other operators are refused (400), so a subscription devstack accepts filters as Azure's would.

- Shape (specs/eventgrid-mgmt, AdvancedFilter): `operatorType`, `key`, `values` (strings).
- Key: an envelope field (`ID`, `Topic`, `Subject`, `EventType`, `DataVersion`; CloudEvents `id`, `source`,
  `type`, `specversion`) or a data field with `.` between levels (`data.operationName`). No escape for a
  key with a dot in its name.
- Matching: every string comparison ignores case; a filter's values are OR, the filters AND. A key the
  event lacks matches only StringNotIn; a value of another type is ignored (so the negative operators
  match it); an array is searched element by element when `enableAdvancedFilteringOnArrays` is set.
- Limits: 25 advanced filters and 25 values across all of them per subscription; 512 characters a value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .model import Json, invalid

MAX_FILTERS = 25
MAX_VALUES = 25
MAX_VALUE_LENGTH = 512

Compare = Callable[[str, str], bool]
POSITIVE: dict[str, Compare] = {
    "StringIn": lambda key, value: key == value,
    "StringBeginsWith": str.startswith,
    "StringEndsWith": str.endswith,
    "StringContains": lambda key, value: value in key,
}
NEGATIVE: dict[str, str] = {  # each negative operator fails where its positive one matches
    "StringNotIn": "StringIn",
    "StringNotBeginsWith": "StringBeginsWith",
    "StringNotEndsWith": "StringEndsWith",
    "StringNotContains": "StringContains",
}
SUPPORTED = (*POSITIVE, *NEGATIVE)
MISSING_MATCHES = {"StringNotIn"}  # the documented operator that a missing key matches
ABSENT = object()


def parse_advanced_filters(raw: Any) -> list[Json]:
    """The subscription's advanced filters as stored; 400 for a shape, operator or limit Azure refuses
    (and for the operators devstack does not evaluate)."""
    if not isinstance(raw, list):
        raise invalid("'advancedFilters' must be a list.")
    if len(raw) > MAX_FILTERS:
        raise invalid(f"The number of advanced filters ({len(raw)}) exceeds the limit of {MAX_FILTERS}.")
    parsed: list[Json] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid(f"advancedFilters[{position}] must be an object.")
        operator, key, values = item.get("operatorType"), item.get("key"), item.get("values")
        if operator not in SUPPORTED:
            raise invalid(
                f"Advanced filter operator '{operator}' is not supported by devstack's Event Grid; "
                f"supported: {', '.join(SUPPORTED)}."
            )
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise invalid(f"advancedFilters[{position}].key must be a field name like data.key1.")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise invalid(f"advancedFilters[{position}].values must be a non-empty list of strings.")
        for value in values:
            if len(value) > MAX_VALUE_LENGTH:
                raise invalid(
                    f"advancedFilters[{position}] has a value of {len(value)} characters; the limit is "
                    f"{MAX_VALUE_LENGTH}."
                )
        parsed.append({"operatorType": operator, "key": key, "values": list(values)})
    total = sum(len(f["values"]) for f in parsed)
    if total > MAX_VALUES:
        raise invalid(
            f"The advanced filters have {total} values; the limit is {MAX_VALUES} across all filters."
        )
    return parsed


def lookup(event: Json, key: str) -> Any:
    """The key's value in the event, ABSENT when it has none: envelope names ignore case (the documented
    keys are spelled `ID`, `EventType`); a data field's name must match exactly (not documented: stricter)."""
    first, *rest = key.split(".")
    found = next((v for name, v in event.items() if name.lower() == first.lower()), ABSENT)
    for part in rest:
        if not isinstance(found, dict) or part not in found:
            return ABSENT
        found = found[part]
    return ABSENT if found is None else found


def passes(advanced: Json, event: Json, on_arrays: bool) -> bool:
    operator = str(advanced["operatorType"])
    value = lookup(event, str(advanced["key"]))
    if value is ABSENT:
        return operator in MISSING_MATCHES
    candidates = value if isinstance(value, list) and on_arrays else [value]
    keys = [c.lower() for c in candidates if isinstance(c, str)]  # other types are ignored
    compare = POSITIVE[NEGATIVE.get(operator, operator)]
    hit = any(compare(k, str(v).lower()) for v in advanced["values"] for k in keys)
    return not hit if operator in NEGATIVE else hit


def matches_advanced(filter_: Json | None, event: Json) -> bool:
    """Whether the event passes every advanced filter of the subscription's `filter` (AND)."""
    filter_ = filter_ or {}
    on_arrays = bool(filter_.get("enableAdvancedFilteringOnArrays"))
    return all(passes(advanced, event, on_arrays) for advanced in filter_.get("advancedFilters") or [])
