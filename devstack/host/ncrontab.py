"""Six-field NCRONTAB schedules, as the timer trigger reads them.

`{second} {minute} {hour} {day} {month} {day-of-week}`; each field takes `*`, a value, a range `a-b`,
a step (`*/n`, `a-b/n`, or `a/n` meaning from a to the field's maximum) and comma lists of those.
Months and days of week also take names, matched by prefix and case-insensitively as NCrontab does
("Jan", "january", "MON"). Days of week run 0-6 from Sunday.

Unlike Vixie cron, NCrontab requires *both* the day of month and the day of week to match when both
are restricted: `0 0 0 1-7 * MON` is the first Monday of each month, not "the 1st-7th and Mondays".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
# (name, lowest, highest, value names)
_FIELDS: tuple[tuple[str, int, int, list[str] | None], ...] = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
# Far enough to find any valid date (29 February recurs within 8 years), near enough to stay quick.
_HORIZON_YEARS = 9


class CronError(ValueError):
    """Not a valid six-field NCRONTAB expression."""


def _value(token: str, name: str, low: int, high: int, names: list[str] | None) -> int:
    if not token:
        raise CronError(f"empty value in the {name} field")
    if token.isdigit():
        number = int(token)
    elif names is not None and token.isalpha():
        lowered = token.lower()
        matches = [index for index, full in enumerate(names) if full.startswith(lowered)]
        if not matches:
            raise CronError(f"{token!r} is not a known {name} name")
        number = matches[0] + low
    else:
        raise CronError(f"{token!r} is not a valid {name} value")
    if not low <= number <= high:
        raise CronError(f"{number} is out of range for the {name} field ({low}-{high})")
    return number


def _field(text: str, name: str, low: int, high: int, names: list[str] | None) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{item!r}: the step in the {name} field must be a positive integer")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, _, end = base.partition("-")
            first = _value(start, name, low, high, names)
            last = _value(end, name, low, high, names)
            if first > last:
                raise CronError(f"{item!r}: the range in the {name} field runs backwards")
        else:
            first = _value(base, name, low, high, names)
            # NCrontab reads `a/n` as "from a to the maximum, every n".
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        tokens = expression.split()
        if len(tokens) != 6:
            raise CronError(
                f"{expression!r} is not a valid NCRONTAB expression: it must have six fields "
                "({second} {minute} {hour} {day} {month} {day-of-week})"
            )
        fields = [_field(token, *spec) for token, spec in zip(tokens, _FIELDS, strict=True)]
        schedule = cls(expression, *fields)
        if schedule.next_after(datetime(2000, 1, 1)) is None:
            raise CronError(f"{expression!r} never occurs")
        return schedule

    def _day_matches(self, moment: datetime) -> bool:
        # Python's weekday() is Monday=0; NCRONTAB's day of week is Sunday=0.
        return moment.day in self.days and (moment.weekday() + 1) % 7 in self.days_of_week

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after `moment` (same tzinfo), or None if there is none."""
        current = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = moment.year + _HORIZON_YEARS
        while current.year <= limit:
            if current.month not in self.months:
                year, month = (
                    (current.year + 1, 1) if current.month == 12 else (current.year, current.month + 1)
                )
                current = current.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
                continue
            if not self._day_matches(current):
                current = current.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if current.hour not in self.hours:
                current = current.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if current.minute not in self.minutes:
                current = current.replace(second=0) + timedelta(minutes=1)
                continue
            if current.second not in self.seconds:
                later = [second for second in self.seconds if second > current.second]
                if later:
                    current = current.replace(second=min(later))
                else:
                    current = current.replace(second=0) + timedelta(minutes=1)
                continue
            return current
        return None

    def interval_hint(self, moment: datetime) -> timedelta | None:
        """The gap between the next two occurrences: how the host decides whether to monitor a schedule."""
        first = self.next_after(moment)
        second = self.next_after(first) if first is not None else None
        if first is None or second is None:
            return None
        return second - first
