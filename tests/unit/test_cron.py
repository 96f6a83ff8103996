"""Cron expressions: what each field means, the aliases, and the mistakes named by field."""

import re

import pytest

from opsconductor.jobspec.cron import CronError, parse
from opsconductor.services.temporal_schedules import calendars


def test_fields_ranges_steps_lists_and_names() -> None:
    cron = parse("*/15 8-18/5 1,15 jan-mar mon-fri")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 13, 18}
    assert cron.days_of_month == {1, 15}
    assert cron.months == {1, 2, 3}
    assert cron.days_of_week == {1, 2, 3, 4, 5}


def test_sunday_is_0_and_7_and_a_start_with_a_step_runs_to_the_end() -> None:
    assert parse("0 0 * * 7").days_of_week == {0}
    assert parse("0 0 * * 5-7").days_of_week == {5, 6, 0}
    assert parse("50/5 * * * *").minutes == {50, 55}


@pytest.mark.parametrize(
    ("alias", "same_as"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_aliases(alias: str, same_as: str) -> None:
    assert parse(alias.upper()) == parse(same_as)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("0 24 * * *", "hour field: 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month field: 0 is out of range 1-31"),
        ("0 0 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 0 * * 8", "day of week field: 8 is out of range 0-7"),
        ("0 0 * * funday", "day of week field: 'funday' is not a number or a known name"),
        ("5-1 * * * *", "minute field: the range '5-1' runs backwards"),
        ("*/0 * * * *", "minute field: the step in '*/0' must be at least 1"),
        ("* * * *", "has 4 field(s)"),
        ("0 0 * * * 2027", "has 6 field(s)"),
        ("@reboot", "unknown alias '@reboot'"),
        ("1,,2 * * * *", "minute field: '' is not a value"),
    ],
)
def test_mistakes_name_their_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match="^" + re.escape(message)):
        parse(expression)


def test_both_day_fields_restricted_means_either_as_in_crontab() -> None:
    # The 1st of the month or any Monday: one calendar for each, since Temporal requires all
    # of a calendar's fields to match.
    by_day, by_weekday = calendars(parse("0 2 1 * mon"))
    assert [(r.start, r.end) for r in by_day.day_of_month] == [(1, 1)]
    assert [(r.start, r.end) for r in by_day.day_of_week] == [(0, 6)]
    assert [(r.start, r.end) for r in by_weekday.day_of_month] == [(1, 31)]
    assert [(r.start, r.end) for r in by_weekday.day_of_week] == [(1, 1)]
    # A star-led day field does not restrict: both must match, in one calendar.
    (both,) = calendars(parse("0 2 */2 * mon"))
    assert [r.start for r in both.day_of_month] == list(range(1, 32, 2))
    assert [(r.start, r.end) for r in both.day_of_week] == [(1, 1)]


def test_calendars_spell_consecutive_values_as_ranges() -> None:
    (calendar,) = calendars(parse("0-4,10,11 * * * *"))
    assert [(r.start, r.end, r.step) for r in calendar.minute] == [(0, 4, 1), (10, 11, 1)]
    assert [(r.start, r.end) for r in calendar.second] == [(0, 0)]
