"""Five-field cron expressions (crontab(5)) and the @hourly-style aliases, parsed to value sets.

Parsed here rather than handed to Temporal as a cron string, for two reasons: every mistake
is reported with the field it is in, and crontab's rule for day of month and day of week
(both restricted: either may match) is kept. Temporal's own cron strings require both.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    # 7 is Sunday too, as in crontab(5).
    _Field("day of week", 0, 7, {name: number for number, name in enumerate(_WEEKDAYS)}),
)
_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    # crontab(5): a field that starts with `*` does not restrict; when both day fields
    # restrict, a day matches if either does.
    day_of_month_restricted: bool
    day_of_week_restricted: bool


def normalize(expression: str) -> str:
    """The form stored: single spaces, lower case."""
    return " ".join(expression.lower().split())


def parse(expression: str) -> Cron:
    text = normalize(expression)
    if text.startswith("@"):
        if text not in ALIASES:
            known = ", ".join(sorted(ALIASES))
            raise CronError(f"unknown alias {text!r}; known: {known}")
        text = ALIASES[text]
    parts = text.split(" ")
    if len(parts) != len(_FIELDS):
        raise CronError(
            f"has {len(parts)} field(s); write five (minute hour day-of-month month "
            "day-of-week) or an alias such as @daily"
        )
    minutes, hours, days, months, weekdays = (
        _values(field, part) for field, part in zip(_FIELDS, parts, strict=True)
    )
    return Cron(
        minutes=minutes,
        hours=hours,
        days_of_month=days,
        months=months,
        days_of_week=frozenset(day % 7 for day in weekdays),
        day_of_month_restricted=not parts[2].startswith("*"),
        day_of_week_restricted=not parts[4].startswith("*"),
    )


def _values(field: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"{field.name} field: {item!r} is not a value, range or step")
        low, high = _bounds(field, match["range"])
        step = int(match["step"] or 1)
        if step < 1:
            raise CronError(f"{field.name} field: the step in {item!r} must be at least 1")
        if match["step"] and "-" not in match["range"] and match["range"] != "*":
            high = field.high  # `5/15` means from 5 to the end, every 15
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _bounds(field: _Field, text: str) -> tuple[int, int]:
    if text == "*":
        return field.low, field.high
    first, _, last = text.partition("-")
    low = _number(field, first)
    high = _number(field, last) if last else low
    if low > high:
        raise CronError(f"{field.name} field: the range {text!r} runs backwards")
    return low, high


def _number(field: _Field, text: str) -> int:
    if text in field.names:
        return field.names[text]
    if not text.isdigit():
        raise CronError(f"{field.name} field: {text!r} is not a number or a known name")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name} field: {value} is out of range {field.low}-{field.high}")
    return value


# -- the next fires, and the expression in words ---------------------------------------------------

# A day-of-month like 29 February fires at least once in eight years.
_SEARCH_DAYS = 366 * 8
_MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_WEEKDAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def _day_matches(cron: Cron, day: date) -> bool:
    if day.month not in cron.months:
        return False
    by_month = day.day in cron.days_of_month
    by_week = (day.weekday() + 1) % 7 in cron.days_of_week
    if cron.day_of_month_restricted and cron.day_of_week_restricted:
        return by_month or by_week
    return by_month and by_week


def next_fires(cron: Cron, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The first `count` fires strictly after `after`, in UTC, computed here rather than by
    Temporal (a schedule not yet saved has no Temporal schedule to ask). A wall-clock time that
    a daylight-saving change skips does not fire; one it repeats fires once, at its second
    instance (both as Temporal does)."""
    start = after.astimezone(zone)
    times = sorted((hour, minute) for hour in cron.hours for minute in cron.minutes)
    fires: list[datetime] = []
    for offset in range(_SEARCH_DAYS):
        day = start.date() + timedelta(days=offset)
        if not _day_matches(cron, day):
            continue
        for hour, minute in times:
            # fold=1: a repeated wall-clock time fires at its second instance, as Temporal's.
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone, fold=1)
            fire = local.astimezone(UTC)
            skipped = fire.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None)
            if fire > after and not skipped:
                fires.append(fire)
                if len(fires) == count:
                    return fires
    return fires


def _runs(values: frozenset[int]) -> list[tuple[int, int]]:
    """Sorted values as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for value in sorted(values):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _spelled(values: frozenset[int], name: Callable[[int], str]) -> str:
    parts = [
        name(low) if low == high else f"{name(low)} to {name(high)}" for low, high in _runs(values)
    ]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _step(values: frozenset[int], low: int, high: int) -> int | None:
    """N when the values are every Nth from `low` to the end of the field ("*/N")."""
    ordered = sorted(values)
    if len(ordered) < 2 or ordered[0] != low:
        return None
    step = ordered[1] - ordered[0]
    return step if ordered == list(range(low, high + 1, step)) else None


def _time_words(cron: Cron) -> str:
    every_hour = len(cron.hours) == 24
    if len(cron.minutes) * len(cron.hours) <= 4:
        clock = sorted(f"{hour:02}:{minute:02}" for hour in cron.hours for minute in cron.minutes)
        return "at " + _spelled_list(clock)
    if len(cron.minutes) == 60:
        minutes = "every minute"
    elif (step := _step(cron.minutes, 0, 59)) is not None:
        minutes = f"every {step} minutes"
    else:
        minutes = "at minute " + _spelled(cron.minutes, str)
    if every_hour:
        return minutes + (" of every hour" if minutes.startswith("at") else "")
    if (step := _step(cron.hours, 0, 23)) is not None:
        return f"{minutes} of every {step} hours"
    hours = "hours" if len(cron.hours) > 1 else "hour"
    return f"{minutes} during {hours} " + _spelled(cron.hours, lambda hour: f"{hour:02}")


def _spelled_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _day_words(cron: Cron) -> str:
    month_days = "on day " + _spelled(cron.days_of_month, str) + " of the month"
    weekdays = "on " + _spelled(cron.days_of_week, lambda day: _WEEKDAY_NAMES[day])
    if cron.day_of_month_restricted and cron.day_of_week_restricted:
        days = f"{month_days} or {weekdays}"
    elif cron.day_of_month_restricted:
        days = month_days
    elif cron.day_of_week_restricted:
        days = weekdays
    else:
        days = "every day"
    if len(cron.months) < 12:
        days += " in " + _spelled(cron.months, lambda month: _MONTH_NAMES[month - 1])
    return days


def in_words(cron: Cron) -> str:
    """The expression as a sentence, e.g. `30 2 * * *` is "at 02:30 every day"."""
    return f"{_time_words(cron)} {_day_words(cron)}"
