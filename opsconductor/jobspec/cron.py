"""Five-field cron expressions (crontab(5)) and the @hourly-style aliases, parsed to value sets.

Parsed here rather than handed to Temporal as a cron string, for two reasons: every mistake
is reported with the field it is in, and crontab's rule for day of month and day of week
(both restricted: either may match) is kept. Temporal's own cron strings require both.
"""

import re
from dataclasses import dataclass

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
