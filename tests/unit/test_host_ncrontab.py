"""The timer trigger's six-field NCRONTAB parser and next-occurrence computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.host.ncrontab import CronError, CronSchedule


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def occurrences(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule = CronSchedule.parse(expression)
    found: list[datetime] = []
    moment = start
    for _ in range(count):
        following = schedule.next_after(moment)
        assert following is not None
        found.append(following)
        moment = following
    return found


def test_every_second_is_strictly_after_the_base_time() -> None:
    assert occurrences("* * * * * *", at(2026, 1, 1, 0, 0, 0), 2) == [
        at(2026, 1, 1, 0, 0, 1),
        at(2026, 1, 1, 0, 0, 2),
    ]
    # A fractional base time rounds up to the next whole second.
    base = at(2026, 1, 1, 0, 0, 0).replace(microsecond=500_000)
    assert CronSchedule.parse("*/1 * * * * *").next_after(base) == at(2026, 1, 1, 0, 0, 1)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("0 */5 * * * *", at(2026, 3, 1, 10, 3, 0), [at(2026, 3, 1, 10, 5), at(2026, 3, 1, 10, 10)]),
        ("0 0 * * * *", at(2026, 3, 1, 23, 30), [at(2026, 3, 2, 0, 0), at(2026, 3, 2, 1, 0)]),
        ("10/15 * * * * *", at(2026, 3, 1), [at(2026, 3, 1, 0, 0, 10), at(2026, 3, 1, 0, 0, 25)]),
        ("5,50 0 0 * * *", at(2026, 3, 1, 0, 0, 20), [at(2026, 3, 1, 0, 0, 50), at(2026, 3, 2, 0, 0, 5)]),
        ("0 0 1-10/3 * * *", at(2026, 3, 1, 5), [at(2026, 3, 1, 7), at(2026, 3, 1, 10), at(2026, 3, 2, 1)]),
        # 2026-03-06 is a Friday: weekdays at 09:30 skip the weekend.
        ("0 30 9 * * 1-5", at(2026, 3, 6, 10), [at(2026, 3, 9, 9, 30), at(2026, 3, 10, 9, 30)]),
        ("0 0 12 * * MON,fri", at(2026, 3, 6, 13), [at(2026, 3, 9, 12), at(2026, 3, 13, 12)]),
        ("0 0 0 1 jan,July *", at(2026, 3, 1), [at(2026, 7, 1), at(2027, 1, 1)]),
        ("0 0 0 31 * *", at(2026, 1, 31, 1), [at(2026, 3, 31), at(2026, 5, 31)]),
        ("0 0 0 29 2 *", at(2025, 3, 1), [at(2028, 2, 29)]),
        # NCrontab requires both day fields to match: the first Monday of each month.
        ("0 0 0 1-7 * 1", at(2026, 3, 1), [at(2026, 3, 2), at(2026, 4, 6), at(2026, 5, 4)]),
        ("0 0 0 * * SUN", at(2026, 3, 6), [at(2026, 3, 8)]),
        ("0 15 10 * * *", at(2026, 12, 31, 11), [at(2027, 1, 1, 10, 15)]),
    ],
)
def test_next_occurrences(expression: str, start: datetime, expected: list[datetime]) -> None:
    assert occurrences(expression, start, len(expected)) == expected


def test_fields_expand_as_ncrontab_reads_them() -> None:
    schedule = CronSchedule.parse("*/20 0-10/5 3,4 1 Feb Sat")
    assert schedule.seconds == {0, 20, 40}
    assert schedule.minutes == {0, 5, 10}
    assert schedule.hours == {3, 4}
    assert schedule.days == {1}
    assert schedule.months == {2}
    assert schedule.days_of_week == {6}


def test_time_zone_is_kept() -> None:
    following = CronSchedule.parse("0 0 * * * *").next_after(at(2026, 1, 1, 0, 30))
    assert following is not None
    assert following.tzinfo is UTC


def test_interval_hint() -> None:
    assert CronSchedule.parse("*/1 * * * * *").interval_hint(at(2026, 1, 1)) == timedelta(seconds=1)
    assert CronSchedule.parse("0 0 * * * *").interval_hint(at(2026, 1, 1)) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * *", "six fields"),
        ("* * * * * * *", "six fields"),
        ("60 * * * * *", "out of range"),
        ("* * 24 * * *", "out of range"),
        ("* * * 0 * *", "out of range"),
        ("* * * * 13 *", "out of range"),
        ("* * * * * 7", "out of range"),
        ("* * * * Smarch *", "not a known month"),
        ("* * * * * Funday", "not a known day-of-week"),
        ("*/0 * * * * *", "positive integer"),
        ("*/x * * * * *", "positive integer"),
        ("10-5 * * * * *", "backwards"),
        ("1,,2 * * * * *", "empty value"),
        ("? * * * * *", "not a valid second"),
        ("0 0 0 31 2 *", "never occurs"),
    ],
)
def test_invalid_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression)
